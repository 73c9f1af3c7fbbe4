#include "binding/binding_log.h"

#include <cstdio>
#include <ctime>

namespace mpudp {

std::string rfc3339_ms(WallTime t) {
  using namespace std::chrono;
  // Floor, not truncation toward zero: a time before 1970 (a clock never set on a
  // router) still prints a valid stamp.
  const auto ms = floor<milliseconds>(t.time_since_epoch()).count();
  const std::time_t secs = static_cast<std::time_t>(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
  const int frac = static_cast<int>(ms - static_cast<long long>(secs) * 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[96];  // room for what GCC thinks the fields could hold, not only real dates
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
  return buf;
}

void append_log_value(std::string& out, std::string_view value) {
  bool bare = !value.empty();
  for (char ch : value) {
    const auto c = static_cast<unsigned char>(ch);
    if (c <= 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '=') bare = false;
  }
  if (bare) {
    out += value;
    return;
  }
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  for (char ch : value) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += ch;
    } else if (c < 0x20 || c >= 0x7f) {
      // Certificate names may carry UTF-8 or worse: a log line stays one ASCII line.
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    } else {
      out += ch;
    }
  }
  out += '"';
}

namespace {

void field(std::string& out, const char* key, std::string_view value) {
  if (!out.empty()) out += ' ';
  out += key;
  out += '=';
  append_log_value(out, value);
}

void number(std::string& out, const char* key, unsigned long long value) {
  field(out, key, std::to_string(value));
}

// What both events share, after time= and event=.
std::string head(const BindingLogRecord& r, WallTime at, const char* event) {
  std::string out;
  out.reserve(320);
  field(out, "time", rfc3339_ms(at));
  field(out, "event", event);
  field(out, "identity", r.identity);
  field(out, "peer", r.peer);
  number(out, "session", r.session);
  field(out, "client", r.client.valid() ? r.client.str() : std::string());
  field(out, "external", r.external.valid() ? r.external.str() : std::string());
  return out;
}

}  // namespace

std::string format_binding_open(const BindingLogRecord& r) { return head(r, r.start, "open"); }

std::string format_binding_close(const BindingLogRecord& r) {
  using namespace std::chrono;
  std::string out = head(r, r.end, "close");
  field(out, "start", rfc3339_ms(r.start));
  field(out, "end", rfc3339_ms(r.end));
  const auto ms = duration_cast<milliseconds>(r.end - r.start).count();
  number(out, "duration_ms", static_cast<unsigned long long>(ms > 0 ? ms : 0));
  field(out, "reason", to_string(r.reason));
  number(out, "up_datagrams", r.up.datagrams);
  number(out, "up_bytes", r.up.bytes);
  number(out, "down_datagrams", r.down.datagrams);
  number(out, "down_bytes", r.down.bytes);
  return out;
}

}  // namespace mpudp

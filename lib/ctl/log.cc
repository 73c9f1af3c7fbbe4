#include "ctl/log.h"

// <syslog.h> names its priorities LOG_INFO and LOG_DEBUG too; this file uses only
// syslog's, so ours step aside.
#undef LOG_INFO
#undef LOG_DEBUG
#include <sys/stat.h>
#include <syslog.h>

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>

namespace mpudp::log {
namespace {
Level g_level = Level::Info;
Target g_target = Target::Stderr;
bool g_timestamps = true;
bool g_priority_prefix = false;
bool g_syslog_open = false;
const char* const kNames[] = {"error", "warn", "info", "debug"};

// Appends to out[*off, cap) and keeps *off within the buffer whatever snprintf says it
// wanted (a cut line stays a line).
void append(char* out, std::size_t cap, std::size_t* off, const char* fmt, ...)
    __attribute__((format(printf, 4, 5)));
void append(char* out, std::size_t cap, std::size_t* off, const char* fmt, ...) {
  if (*off + 1 >= cap) return;
  va_list ap;
  va_start(ap, fmt);
  const int n = std::vsnprintf(out + *off, cap - *off, fmt, ap);
  va_end(ap);
  if (n > 0) *off = std::min(cap - 1, *off + static_cast<std::size_t>(n));
}

void emit(Level l, std::string_view peer, const char* fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
void emit(Level l, std::string_view peer, const char* fmt, va_list ap) {
  // Most lines fit the stack buffer; a longer one (SIGUSR1's counters as JSON, several
  // KiB) is formatted again on the heap rather than cut, which would break its JSON.
  // Bounded all the same, whatever a message quotes.
  constexpr std::size_t kMaxMessage = 16 * 1024;
  char small[1024];
  std::string big;
  va_list again;
  va_copy(again, ap);
  const int want = std::vsnprintf(small, sizeof small, fmt, ap);
  const char* message = small;
  if (want >= static_cast<int>(sizeof small)) {
    big.resize(std::min<std::size_t>(static_cast<std::size_t>(want), kMaxMessage - 1) + 1);
    std::vsnprintf(big.data(), big.size(), fmt, again);
    message = big.c_str();
  }
  va_end(again);
  if (g_target == Target::Syslog) {
    const int len = static_cast<int>(std::min<std::size_t>(peer.size(), 256));
    if (peer.empty())
      syslog(syslog_priority(l), "%s", message);
    else
      syslog(syslog_priority(l), "peer=%.*s: %s", len, peer.data(), message);
    return;
  }
  char stamp[64];
  LineFormat f;
  f.priority_prefix = g_priority_prefix;
  if (g_timestamps) {
    timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    tm t{};
    gmtime_r(&ts.tv_sec, &t);
    std::snprintf(stamp, sizeof stamp, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", t.tm_year + 1900,
                  t.tm_mon + 1, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec, ts.tv_nsec / 1000000);
    f.timestamp = stamp;
  }
  char short_line[1400];
  std::string long_line;
  char* line = short_line;
  std::size_t cap = sizeof short_line;
  if (!big.empty()) {
    long_line.resize(big.size() + 400);  // the prefix: stamp, level, a peer of 256 at most
    line = long_line.data();
    cap = long_line.size();
  }
  const std::size_t n = format_line(line, cap - 1, l, f, peer, message);
  line[n] = '\n';
  // One write per line: lines of concurrent writers (and journald's reader) stay whole.
  std::fwrite(line, 1, n + 1, stderr);
}
}  // namespace

void set_level(Level l) { g_level = l; }
Level level() { return g_level; }
void set_timestamps(bool on) { g_timestamps = on; }
void set_priority_prefix(bool on) { g_priority_prefix = on; }
bool enabled(Level l) { return l <= g_level; }
Target target() { return g_target; }

void set_target(Target t) {
  if (t == Target::Syslog && !g_syslog_open) {
    openlog("mpudpd", LOG_PID, LOG_DAEMON);
    g_syslog_open = true;
  } else if (t == Target::Stderr && g_syslog_open) {
    closelog();
    g_syslog_open = false;
  }
  g_target = t;
}

int syslog_priority(Level l) {
  switch (l) {
    case Level::Error: return LOG_ERR;
    case Level::Warn: return LOG_WARNING;
    case Level::Info: return LOG_INFO;
    case Level::Debug: return LOG_DEBUG;
  }
  return LOG_INFO;
}

bool is_journal_stream(const char* journal_stream, int fd) {
  if (journal_stream == nullptr || *journal_stream == '\0') return false;
  unsigned long long dev = 0, ino = 0;
  char extra = 0;
  if (std::sscanf(journal_stream, "%llu:%llu%c", &dev, &ino, &extra) != 2) return false;
  struct stat st {};
  if (fstat(fd, &st) != 0) return false;
  return static_cast<unsigned long long>(st.st_dev) == dev &&
         static_cast<unsigned long long>(st.st_ino) == ino;
}

std::size_t format_line(char* out, std::size_t cap, Level l, const LineFormat& f,
                        std::string_view peer, const char* message) {
  if (cap == 0) return 0;
  out[0] = '\0';
  std::size_t off = 0;
  if (f.priority_prefix) append(out, cap, &off, "<%d>", syslog_priority(l));
  if (f.timestamp != nullptr) append(out, cap, &off, "%s ", f.timestamp);
  append(out, cap, &off, "mpudpd[%s]: ", kNames[static_cast<int>(l)]);
  if (!peer.empty())
    append(out, cap, &off, "peer=%.*s: ", static_cast<int>(std::min<std::size_t>(peer.size(), 256)),
           peer.data());
  append(out, cap, &off, "%s", message);
  return off;
}

void write(Level l, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  emit(l, {}, fmt, ap);
  va_end(ap);
}

void write_peer(Level l, std::string_view peer, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  emit(l, peer, fmt, ap);
  va_end(ap);
}

}  // namespace mpudp::log

#include "ctl/log.h"

#include <cstdarg>
#include <cstdio>
#include <ctime>

namespace mpudp::log {
namespace {
Level g_level = Level::Info;
bool g_timestamps = true;
const char* const kNames[] = {"error", "warn", "info", "debug"};
}  // namespace

void set_level(Level l) { g_level = l; }
Level level() { return g_level; }
void set_timestamps(bool on) { g_timestamps = on; }
bool enabled(Level l) { return l <= g_level; }

void write(Level l, const char* fmt, ...) {
  char line[1024];
  int off = 0;
  if (g_timestamps) {
    timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    tm t{};
    gmtime_r(&ts.tv_sec, &t);
    off = std::snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ ",
                        t.tm_year + 1900, t.tm_mon + 1, t.tm_mday, t.tm_hour, t.tm_min,
                        t.tm_sec, ts.tv_nsec / 1000000);
  }
  off += std::snprintf(line + off, sizeof line - off, "mpudpd[%s]: ",
                       kNames[static_cast<int>(l)]);
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(line + off, sizeof line - off, fmt, ap);
  va_end(ap);
  std::fprintf(stderr, "%s\n", line);
}

}  // namespace mpudp::log

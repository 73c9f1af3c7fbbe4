// Logging to stderr. Under systemd or procd (which stamp lines themselves) timestamps
// are left out. Printf-style so that a disabled level costs one comparison.
#pragma once

#include <cstdint>

namespace mpudp::log {

enum class Level : std::uint8_t { Error, Warn, Info, Debug };

void set_level(Level l);
Level level();
void set_timestamps(bool on);
bool enabled(Level l);
void write(Level l, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

// One kind of line at most once a second, so that a flood of refused datagrams cannot
// become a flood of log lines; `*held` gets how many were left out since the last one.
class Throttle {
 public:
  bool allow(double now_s, std::uint64_t* held) {
    if (now_s - last_ < 1.0) {
      ++held_;
      return false;
    }
    last_ = now_s;
    *held = held_;
    held_ = 0;
    return true;
  }

 private:
  double last_ = -1e9;
  std::uint64_t held_ = 0;
};

}  // namespace mpudp::log

#define MPUDP_LOG(lvl, ...)                                                          \
  do {                                                                               \
    if (::mpudp::log::enabled(::mpudp::log::Level::lvl))                             \
      ::mpudp::log::write(::mpudp::log::Level::lvl, __VA_ARGS__);                    \
  } while (0)
#define LOG_ERROR(...) MPUDP_LOG(Error, __VA_ARGS__)
#define LOG_WARN(...) MPUDP_LOG(Warn, __VA_ARGS__)
#define LOG_INFO(...) MPUDP_LOG(Info, __VA_ARGS__)
#define LOG_DEBUG(...) MPUDP_LOG(Debug, __VA_ARGS__)

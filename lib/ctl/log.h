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

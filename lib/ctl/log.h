// Logging, to stderr or to syslog(3), with priorities journald and syslog understand.
// On stderr under systemd (stderr is the journal: JOURNAL_STREAM names it) each line
// starts with an sd-daemon `<N>` priority prefix and carries no timestamp; under procd
// (which stamps lines itself) timestamps are left out too. Printf-style so that a
// disabled level costs one comparison.
//
// Tunnel lines name their peer in a slot of their own (`peer=...` right after the level):
// today the peer's address, later the identity its TLS handshake proved, so that one
// CPE's lines can be picked out of a concentrator's log.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace mpudp::log {

enum class Level : std::uint8_t { Error, Warn, Info, Debug };
enum class Target : std::uint8_t { Stderr, Syslog };

void set_level(Level l);
Level level();
void set_timestamps(bool on);
// `<N>` prefixes on stderr lines (what journald's stream reader parses).
void set_priority_prefix(bool on);
// Syslog: openlog("mpudpd", LOG_PID, LOG_DAEMON) on first use; Stderr closes it again.
void set_target(Target t);
Target target();
bool enabled(Level l);
void write(Level l, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
void write_peer(Level l, std::string_view peer, const char* fmt, ...)
    __attribute__((format(printf, 3, 4)));

// The syslog(3) priority of a level (LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG), which is
// also the digit of the `<N>` prefix.
int syslog_priority(Level l);

// True when `journal_stream` (the value of $JOURNAL_STREAM, "DEVICE:INODE"; may be null)
// names the file `fd` is open on: systemd connected that descriptor to the journal. A
// variable inherited by a child whose stderr goes elsewhere does not match.
bool is_journal_stream(const char* journal_stream, int fd);

// One stderr line, without the newline, cut to fit `cap` (NUL-terminated); returns its
// length. `timestamp` may be null (no timestamp). The pieces the writers use, for tests.
struct LineFormat {
  bool priority_prefix = false;
  const char* timestamp = nullptr;
};
std::size_t format_line(char* out, std::size_t cap, Level l, const LineFormat& f,
                        std::string_view peer, const char* message);

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

// A tunnel line: `peer` is the peer's identity (a string_view-convertible value).
#define MPUDP_LOG_PEER(lvl, peer, ...)                                         \
  do {                                                                         \
    if (::mpudp::log::enabled(::mpudp::log::Level::lvl))                       \
      ::mpudp::log::write_peer(::mpudp::log::Level::lvl, (peer), __VA_ARGS__); \
  } while (0)
#define PEER_ERROR(peer, ...) MPUDP_LOG_PEER(Error, peer, __VA_ARGS__)
#define PEER_WARN(peer, ...) MPUDP_LOG_PEER(Warn, peer, __VA_ARGS__)
#define PEER_INFO(peer, ...) MPUDP_LOG_PEER(Info, peer, __VA_ARGS__)
#define PEER_DEBUG(peer, ...) MPUDP_LOG_PEER(Debug, peer, __VA_ARGS__)

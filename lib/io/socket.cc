#include "io/socket.h"

#include <sys/resource.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

namespace mpudp {

int family_to_af(Family f) { return f == Family::V6 ? AF_INET6 : AF_INET; }

Fd make_socket(int domain, int type, int protocol) {
  return Fd(::socket(domain, type | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol));
}

int set_int_opt(int fd, int level, int name, int value) {
  return ::setsockopt(fd, level, name, &value, sizeof value) == 0 ? 0 : errno;
}

void set_burst_rcvbuf(int fd, int bytes) {
  // Whether FORCE is allowed does not change while the daemon runs: ask once, not on
  // every socket (the concentrator opens one per binding).
  static bool force_denied = false;
  if (!force_denied) {
    const int e = set_int_opt(fd, SOL_SOCKET, SO_RCVBUFFORCE, bytes);
    if (e == 0) return;
    if (e == EPERM) force_denied = true;
  }
  set_int_opt(fd, SOL_SOCKET, SO_RCVBUF, bytes);
}

int bind_to(int fd, const Endpoint& ep) {
  sockaddr_storage ss;
  socklen_t len = ep.to_sockaddr(ss);
  return ::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) == 0 ? 0 : errno;
}

std::string errno_str(int err) { return std::strerror(err); }

std::size_t descriptor_budget() {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return SIZE_MAX;
  const auto limit = static_cast<std::size_t>(rl.rlim_cur);
  const std::size_t reserve = limit / 4 < 1024 ? limit / 4 : 1024;
  return limit - reserve;
}

}  // namespace mpudp

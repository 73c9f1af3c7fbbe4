#include "ctl/notify.h"

#include <sys/socket.h>
#include <sys/un.h>

#include <cstddef>
#include <cstdlib>
#include <cstring>

#include "io/fd.h"

namespace mpudp {

bool sd_notify_state(std::string_view state) {
  const char* path = std::getenv("NOTIFY_SOCKET");
  if (path == nullptr || path[0] == '\0') return true;
  sockaddr_un sun{};
  sun.sun_family = AF_UNIX;
  const std::size_t len = std::strlen(path);
  if (len >= sizeof sun.sun_path || (path[0] != '/' && path[0] != '@')) return false;
  std::memcpy(sun.sun_path, path, len);
  // "@name" is an abstract socket: its first byte is NUL on the wire.
  if (path[0] == '@') sun.sun_path[0] = '\0';
  Fd fd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd) return false;
  const auto addrlen = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + len);
  return ::sendto(fd.get(), state.data(), state.size(), MSG_NOSIGNAL,
                  reinterpret_cast<sockaddr*>(&sun), addrlen) == static_cast<ssize_t>(state.size());
}

}  // namespace mpudp

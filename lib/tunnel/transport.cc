#include "tunnel/transport.h"

#include <sys/socket.h>

namespace mpudp {

ssize_t PlainTransport::write(int fd, std::span<const iovec> iov) {
  msghdr msg{};
  msg.msg_iov = const_cast<iovec*>(iov.data());
  msg.msg_iovlen = iov.size();
  return ::sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
}

ssize_t PlainTransport::read(int fd, std::span<std::uint8_t> buf) {
  return ::recv(fd, buf.data(), buf.size(), MSG_DONTWAIT);
}

}  // namespace mpudp

#include "io/recv_batch.h"

#include <cerrno>
#include <cstring>

#include "io/socket.h"

namespace mpudp {

RecvBatch::RecvBatch() : slots_(new std::uint8_t[kSlots * kSlotBytes]) {}

int RecvBatch::receive(int fd, bool want_control) {
  for (std::size_t i = 0; i < kSlots; ++i) {
    iov_[i] = {slots_.get() + i * kSlotBytes, kSlotBytes};
    msghdr& h = msgs_[i].msg_hdr;
    h = {};
    h.msg_name = &names_[i];
    h.msg_namelen = sizeof names_[i];
    h.msg_iov = &iov_[i];
    h.msg_iovlen = 1;
    if (want_control) {
      h.msg_control = control_[i].data();
      h.msg_controllen = kControlBytes;
    }
    msgs_[i].msg_len = 0;
  }
  for (;;) {
    int n = ::recvmmsg(fd, msgs_.data(), kSlots, MSG_DONTWAIT, nullptr);
    if (n >= 0) return n;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
    return -1;
  }
}

std::optional<std::uint32_t> RecvBatch::kernel_drops(std::size_t i) const {
  const msghdr& h = msgs_[i].msg_hdr;
  if (h.msg_control == nullptr) return std::nullopt;
  // The kernel puts the socket-level messages (sock_recv_cmsgs) before the IP ones, so
  // the scan ends at the first other one: a datagram of a socket that never dropped
  // (ORIGDSTADDR alone, or nothing) costs one comparison.
  for (const cmsghdr* c = CMSG_FIRSTHDR(&h); c != nullptr && c->cmsg_level == SOL_SOCKET;
       c = CMSG_NXTHDR(const_cast<msghdr*>(&h), const_cast<cmsghdr*>(c))) {
    if (c->cmsg_type == SO_RXQ_OVFL && c->cmsg_len >= CMSG_LEN(sizeof(std::uint32_t))) {
      std::uint32_t v;
      std::memcpy(&v, CMSG_DATA(c), sizeof v);
      return v;
    }
  }
  return std::nullopt;
}

int OverflowCount::enable(int fd) { return set_int_opt(fd, SOL_SOCKET, SO_RXQ_OVFL, 1); }

}  // namespace mpudp

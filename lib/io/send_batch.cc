#include "io/send_batch.h"

#include <cerrno>

namespace mpudp {

void SendBatch::add(int fd, const Endpoint& to, int kind,
                    std::span<const std::uint8_t> payload, std::uint64_t* datagrams,
                    std::uint64_t* bytes) {
  if (n_ == kSlots) flush();
  Item& it = items_[n_++];
  it.fd = fd;
  it.kind = kind;
  it.to_len = to.to_sockaddr(it.to);
  it.data = payload.data();
  it.len = payload.size();
  it.datagrams = datagrams;
  it.bytes = bytes;
}

void SendBatch::flush() {
  // Runs by socket, in the order each socket first appears; a sent item's fd becomes -1.
  for (std::size_t i = 0; i < n_; ++i) {
    const int fd = items_[i].fd;
    if (fd < 0) continue;
    std::size_t count = 0;
    for (std::size_t j = i; j < n_; ++j) {
      if (items_[j].fd != fd) continue;
      run_[count++] = static_cast<std::uint16_t>(j);
    }
    send_run(count);
  }
  n_ = 0;
}

namespace {
// What a pending ICMP error turns into as a socket error (port, host or net unreachable,
// admin prohibited, fragmentation needed, or a parameter problem).
bool icmp_errno(int e) {
  return e == ECONNREFUSED || e == EHOSTUNREACH || e == ENETUNREACH || e == EACCES ||
         e == EMSGSIZE || e == EPROTO;
}
}  // namespace

void SendBatch::send_run(std::size_t count) {
  const int fd = items_[run_[0]].fd;
  for (std::size_t k = 0; k < count; ++k) {
    Item& it = items_[run_[k]];
    iov_[k] = {const_cast<std::uint8_t*>(it.data), it.len};
    msghdr& h = msgs_[k].msg_hdr;
    h = {};
    h.msg_name = &it.to;
    h.msg_namelen = it.to_len;
    h.msg_iov = &iov_[k];
    h.msg_iovlen = 1;
    msgs_[k].msg_len = 0;
  }
  std::size_t at = 0;
  bool retried = false;
  while (at < count) {
    int r = ::sendmmsg(fd, msgs_.data() + at, static_cast<unsigned>(count - at), MSG_DONTWAIT);
    const int err = r > 0 ? 0 : r == 0 ? EAGAIN : errno;  // 0 sent: never for vlen > 0
    if (r < 0 && err == EINTR) continue;
    // A socket with IP_RECVERR (the relay sockets) fails its next send with an ICMP
    // error that came for an earlier datagram, to any remote: the kernel's pending socket
    // error, which that failure consumed. It is not this datagram's, so it gets one more
    // try; a second failure is its own.
    if (r < 0 && !retried && icmp_errno(err)) {
      retried = true;
      continue;
    }
    retried = false;
    if (r == 0) r = -1;
    // A failure belongs to the first datagram not sent; the rest are tried again.
    const std::size_t sent = r < 0 ? 0 : static_cast<std::size_t>(r);
    for (std::size_t k = at; k < at + sent; ++k) {
      Item& it = items_[run_[k]];
      if (it.datagrams != nullptr) ++*it.datagrams;
      if (it.bytes != nullptr) *it.bytes += it.len;
      report_.on_sent(it.kind, it.len);
      it.fd = -1;
    }
    at += sent;
    if (r < 0) {
      Item& it = items_[run_[at]];
      report_.on_send_failed(it.kind, err, reinterpret_cast<const sockaddr*>(&it.to), it.to_len);
      it.fd = -1;
      ++at;
    }
  }
}

}  // namespace mpudp

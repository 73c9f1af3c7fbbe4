// Reusable buffers for recvmmsg(): one set per event loop, shared by every UDP socket the
// loop reads, so reading a datagram never allocates and memory does not grow with the
// number of sockets.
#pragma once

#include <sys/socket.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

namespace mpudp {

class RecvBatch {
 public:
  static constexpr std::size_t kSlots = 16;
  static constexpr std::size_t kSlotBytes = 65536;  // any UDP datagram fits
  static constexpr std::size_t kControlBytes = 128;  // room for IP(V6)_ORIGDSTADDR

  RecvBatch();
  // recvmmsg(MSG_DONTWAIT); returns the count (0 when nothing is waiting), -1 on error
  // with errno set. `want_control` asks for ancillary data.
  int receive(int fd, bool want_control);

  std::span<const std::uint8_t> payload(std::size_t i) const {
    return {slots_.get() + i * kSlotBytes, msgs_[i].msg_len};
  }
  const msghdr& header(std::size_t i) const { return msgs_[i].msg_hdr; }
  const sockaddr* source(std::size_t i) const {
    return reinterpret_cast<const sockaddr*>(&names_[i]);
  }
  socklen_t source_len(std::size_t i) const { return msgs_[i].msg_hdr.msg_namelen; }
  bool truncated(std::size_t i) const { return (msgs_[i].msg_hdr.msg_flags & MSG_TRUNC) != 0; }

 private:
  std::unique_ptr<std::uint8_t[]> slots_;
  std::array<mmsghdr, kSlots> msgs_{};
  std::array<iovec, kSlots> iov_{};
  std::array<sockaddr_storage, kSlots> names_{};
  alignas(cmsghdr) std::array<std::array<std::uint8_t, kControlBytes>, kSlots> control_{};
};

}  // namespace mpudp

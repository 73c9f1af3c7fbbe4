// Reusable buffers for recvmmsg(): one set per event loop, shared by every UDP socket the
// loop reads, so reading a datagram never allocates and memory does not grow with the
// number of sockets.
#pragma once

#include <sys/socket.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>

namespace mpudp {

class RecvBatch {
 public:
  static constexpr std::size_t kSlots = 16;
  static constexpr std::size_t kSlotBytes = 65536;  // any UDP datagram fits
  static constexpr std::size_t kControlBytes = 128;  // IP(V6)_ORIGDSTADDR, SO_RXQ_OVFL, TOS

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
  // How many datagrams the kernel had dropped at the socket (receive buffer full) when it
  // queued the i-th one: SO_RXQ_OVFL, a count since the socket was made. nullopt when the
  // message carries none (option off, no control buffer, or nothing dropped yet).
  std::optional<std::uint32_t> kernel_drops(std::size_t i) const;

 private:
  std::unique_ptr<std::uint8_t[]> slots_;
  std::array<mmsghdr, kSlots> msgs_{};
  std::array<iovec, kSlots> iov_{};
  std::array<sockaddr_storage, kSlots> names_{};
  alignas(cmsghdr) std::array<std::array<std::uint8_t, kControlBytes>, kSlots> control_{};
};

// The datagrams a socket's kernel queue dropped since the last look, from SO_RXQ_OVFL
// (enable_overflow_count). Each datagram carries the running count as it was when the
// datagram was queued, so the last of a batch tells everything before it; drops after the
// last datagram read are told by the next one. One per socket.
class OverflowCount {
 public:
  // Sets SO_RXQ_OVFL on `fd` (receive with control data for it to arrive); 0 or errno.
  static int enable(int fd);
  // New drops up to the last of the `n` datagrams `b` holds.
  std::uint32_t update(const RecvBatch& b, int n) {
    if (n <= 0) return 0;
    const auto now = b.kernel_drops(static_cast<std::size_t>(n) - 1);
    if (!now) return 0;
    const std::uint32_t fresh = *now - seen_;  // unsigned: wraps with the kernel's count
    seen_ = *now;
    return fresh;
  }

 private:
  std::uint32_t seen_ = 0;
};

}  // namespace mpudp

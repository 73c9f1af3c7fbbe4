// Where a tunnel connection's bytes meet its socket: the one place that writes the
// iovecs a WritePlan chose and reads what the peer sent.
//
// Plain today (sendmsg/recv). The TLS record layer takes this place: write() encrypts
// the iovecs into records in its ciphertext buffer and writes what the kernel takes of
// that; read() decrypts. Its ciphertext not yet in the kernel is unsent(), which the
// connection's send limit counts with what the kernel holds unsent.
#pragma once

#include <sys/types.h>
#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <span>

namespace mpudp {

class Transport {
 public:
  virtual ~Transport() = default;
  // As sendmsg(): bytes of the iovecs taken (fewer than all: the kernel is full), or -1
  // with errno set (EAGAIN: nothing taken; EINTR: try again).
  virtual ssize_t write(int fd, std::span<const iovec> iov) = 0;
  // As recv(): bytes read, 0 at the peer's end of stream, or -1 with errno set.
  virtual ssize_t read(int fd, std::span<std::uint8_t> buf) = 0;
  // Bytes taken by write() that the kernel does not have yet.
  virtual std::size_t unsent() const { return 0; }
};

// Clear text: the iovecs go to the kernel as they are, in one sendmsg().
class PlainTransport final : public Transport {
 public:
  ssize_t write(int fd, std::span<const iovec> iov) override;
  ssize_t read(int fd, std::span<std::uint8_t> buf) override;
};

}  // namespace mpudp

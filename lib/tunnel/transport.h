// Where a tunnel connection's bytes meet its socket: the one place that writes the
// iovecs a WritePlan chose and reads what the peer sent.
//
// Two kinds: PlainTransport (sendmsg/recv, encryption: none) and TlsTransport
// (tunnel/tls_transport.h), whose write() encrypts the iovecs into records in its
// ciphertext buffer and writes what the kernel takes of that, and whose read() decrypts.
// Its ciphertext not yet in the kernel is unsent(), which the connection's send limit
// counts with what the kernel holds unsent.
#pragma once

#include <sys/types.h>
#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace mpudp {

class Transport {
 public:
  virtual ~Transport() = default;
  // The connection is up (connected, or accepted): a client transport queues what it
  // says first (a TLS ClientHello). False when it cannot (failure() says why).
  virtual bool start() { return true; }
  // As sendmsg(): bytes of the iovecs taken (fewer than all: the kernel is full), or -1
  // with errno set (EAGAIN: nothing taken; EINTR: try again). Called only when ready().
  virtual ssize_t write(int fd, std::span<const iovec> iov) = 0;
  // As recv(): bytes read, 0 at the peer's end of stream, or -1 with errno set (EPROTO:
  // the transport failed, failure() says why).
  virtual ssize_t read(int fd, std::span<std::uint8_t> buf) = 0;
  // Hands the kernel what the transport itself has to say (handshake messages, alerts,
  // ciphertext a full socket did not take). -1 with errno on a socket error.
  virtual int push(int /*fd*/) { return 0; }
  // Bytes taken by write() (or made by the transport) that the kernel does not have yet.
  virtual std::size_t unsent() const { return 0; }
  // Frames may be written: always for plain; after the handshake for TLS.
  virtual bool ready() const { return true; }
  // Why read() or write() failed with EPROTO, for the close reason and the log.
  virtual std::string failure() const { return {}; }
  // Gives back buffers a burst grew (the connection's trim timer).
  virtual void trim() {}
};

// Clear text: the iovecs go to the kernel as they are, in one sendmsg().
class PlainTransport final : public Transport {
 public:
  ssize_t write(int fd, std::span<const iovec> iov) override;
  ssize_t read(int fd, std::span<std::uint8_t> buf) override;
};

}  // namespace mpudp

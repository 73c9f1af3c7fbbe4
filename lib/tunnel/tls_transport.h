// The TLS 1.3 record layer in a tunnel connection's Transport slot (docs/PROTOCOL.md,
// "TLS layer"): frames in, records out, through one TlsSession per connection.
//
// Ciphertext waits in one buffer per connection until the kernel takes it (unsent(),
// which the send limit counts); a write encrypts at most kMaxBatch of plaintext and only
// into an empty buffer, so a slow path holds one batch of ciphertext here, never a copy
// of the backlog. Reads go through one scratch buffer shared by every connection of the
// (single-threaded) daemon: a connection keeps ciphertext of its own only when the frame
// reader's buffer was too small for what one read decrypted (pending_in_, rare).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "tunnel/tls.h"
#include "tunnel/transport.h"

namespace mpudp {

class TlsTransport final : public Transport {
 public:
  // `accept_cleartext` (server only): a peer whose first byte is not a TLS record is
  // served in clear text (encryption: {accept_cleartext: true}) instead of refused.
  TlsTransport(std::shared_ptr<TlsContext> ctx, bool accept_cleartext = false);

  bool start() override;
  ssize_t write(int fd, std::span<const iovec> iov) override;
  ssize_t read(int fd, std::span<std::uint8_t> buf) override;
  int push(int fd) override;
  std::size_t unsent() const override { return out_.size() - out_sent_; }
  bool ready() const override { return cleartext_ || session_.established(); }
  std::string failure() const override;
  void trim() override;

  TlsSession& session() { return session_; }
  const TlsSession& session() const { return session_; }
  // The peer turned out to speak clear text and accept_cleartext let it.
  bool cleartext() const { return cleartext_; }

  static constexpr std::size_t kMaxBatch = 64 * 1024;

 private:
  // Decrypts `in` into `buf`; what it did not consume goes to pending_in_.
  ssize_t decrypt(std::span<const std::uint8_t> in, std::span<std::uint8_t> buf, int fd);

  TlsSession session_;
  bool accept_cleartext_;
  bool cleartext_ = false;
  bool first_ = true;       // nothing received yet
  bool more_plain_ = false; // the last decrypt filled the caller's buffer: OpenSSL may hold more
  std::vector<std::uint8_t> out_;
  std::size_t out_sent_ = 0;
  std::vector<std::uint8_t> pending_in_;
  std::string socket_error_;
};

// The express connection's token in version 2 (docs/PROTOCOL.md, "Express connection"):
// 64 bits of the main session's TLS exporter value for label "EXPORTER-mpudp-express",
// which only the two ends of that session can compute; 0 when the exporter fails.
std::uint64_t express_token_of(const TlsSession& s);

}  // namespace mpudp

#include "tunnel/tls_transport.h"

#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>

namespace mpudp {
namespace {

// One read's ciphertext, shared: the daemon has one thread and reads one connection at a
// time. A little more than the reader asked for, so that what it decrypts fits.
constexpr std::size_t kScratch = 64 * 1024 + 512;
std::array<std::uint8_t, kScratch> g_scratch;
// Buffers a burst grew past this are given back by trim().
constexpr std::size_t kKeep = 32 * 1024;

}  // namespace

TlsTransport::TlsTransport(std::shared_ptr<TlsContext> ctx, bool accept_cleartext)
    : session_(std::move(ctx)), accept_cleartext_(accept_cleartext) {}

bool TlsTransport::start() { return session_.start(out_); }

std::string TlsTransport::failure() const {
  if (session_.failed()) return "TLS failed: " + session_.failure_text();
  return socket_error_;
}

int TlsTransport::push(int fd) {
  while (out_sent_ < out_.size()) {
    const ssize_t n = ::send(fd, out_.data() + out_sent_, out_.size() - out_sent_,
                             MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
      return -1;
    }
    out_sent_ += static_cast<std::size_t>(n);
  }
  out_.clear();  // keeps its capacity: the next batch encrypts without allocating
  out_sent_ = 0;
  return 0;
}

ssize_t TlsTransport::write(int fd, std::span<const iovec> iov) {
  if (cleartext_) {
    msghdr msg{};
    msg.msg_iov = const_cast<iovec*>(iov.data());
    msg.msg_iovlen = iov.size();
    return ::sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
  }
  if (push(fd) != 0) return -1;
  if (unsent() > 0 || !session_.established()) {
    errno = EAGAIN;
    return -1;
  }
  // At most kMaxBatch of the plan, cut anywhere: records carry a byte stream.
  std::array<std::span<const std::uint8_t>, 16> spans;
  std::size_t count = 0;
  std::size_t taken = 0;
  for (const iovec& v : iov) {
    if (count == spans.size() || taken == kMaxBatch) break;
    const std::size_t len = std::min(v.iov_len, kMaxBatch - taken);
    spans[count++] = {static_cast<const std::uint8_t*>(v.iov_base), len};
    taken += len;
  }
  // Room for this batch's records with their overhead (22 bytes each), so encrypt does
  // not reallocate midway. Sized to the batch, not to kMaxBatch: a light flow's
  // connection (per-binding mode has thousands) holds a few KiB, a bulk one grows to a
  // full batch once and keeps it until trim().
  out_.reserve(taken + (taken / TlsSession::kMaxRecordPlaintext + 1) * 32);
  if (!session_.encrypt({spans.data(), count}, out_)) {
    errno = EPROTO;
    return -1;
  }
  if (push(fd) != 0) return -1;
  return static_cast<ssize_t>(taken);
}

ssize_t TlsTransport::decrypt(std::span<const std::uint8_t> in, std::span<std::uint8_t> buf,
                              int fd) {
  const TlsSession::Received r = session_.receive(in, buf, out_);
  in = in.subspan(std::min(r.consumed, in.size()));
  // pending_in_ may be `in` itself: assign from a copy-safe range.
  if (in.data() >= pending_in_.data() && in.data() <= pending_in_.data() + pending_in_.size()) {
    pending_in_.erase(pending_in_.begin(), pending_in_.begin() + (in.data() - pending_in_.data()));
  } else if (!in.empty()) {
    pending_in_.insert(pending_in_.end(), in.begin(), in.end());
  }
  more_plain_ = r.plaintext == buf.size() && !buf.empty();
  // Handshake flights, KeyUpdate answers and alerts leave at once; a failure's alert is
  // worth one try.
  const int pushed = push(fd);
  if (session_.failed()) {
    errno = EPROTO;
    return -1;
  }
  if (pushed != 0) return -1;
  return static_cast<ssize_t>(r.plaintext);
}

ssize_t TlsTransport::read(int fd, std::span<std::uint8_t> buf) {
  if (cleartext_) {
    if (pending_in_.empty()) return ::recv(fd, buf.data(), buf.size(), MSG_DONTWAIT);
    // What the first read brought beyond the reader's buffer comes first.
    const std::size_t take = std::min(pending_in_.size(), buf.size());
    std::memcpy(buf.data(), pending_in_.data(), take);
    pending_in_.erase(pending_in_.begin(), pending_in_.begin() + static_cast<std::ptrdiff_t>(take));
    return static_cast<ssize_t>(take);
  }
  if (session_.failed()) {
    errno = EPROTO;
    return -1;
  }
  if (!pending_in_.empty() || more_plain_) {
    const ssize_t n = decrypt(pending_in_, buf, fd);
    if (n != 0) return n;
  }
  for (;;) {
    const std::size_t want = std::min(kScratch, buf.size() + 512);
    const ssize_t n = ::recv(fd, g_scratch.data(), want, MSG_DONTWAIT);
    if (n <= 0) return n;  // end of stream, or errno (EAGAIN: wait for more)
    std::span<const std::uint8_t> in(g_scratch.data(), static_cast<std::size_t>(n));
    if (first_) {
      first_ = false;
      // Not a TLS handshake or alert record: a version 1 (cleartext) peer, or noise.
      if (accept_cleartext_ && !TlsSession::starts_tls(in[0])) {
        cleartext_ = true;
        const std::size_t take = std::min(in.size(), buf.size());
        std::memcpy(buf.data(), in.data(), take);
        pending_in_.assign(in.begin() + static_cast<std::ptrdiff_t>(take), in.end());
        return static_cast<ssize_t>(take);
      }
    }
    const ssize_t got = decrypt(in, buf, fd);
    if (got != 0) return got;
    // A whole read went to the handshake or to a partial record: read on until the
    // socket is empty (EAGAIN) or plaintext comes out.
  }
}

void TlsTransport::trim() {
  if (out_.empty() && out_.capacity() > kKeep) std::vector<std::uint8_t>().swap(out_);
  if (pending_in_.empty() && pending_in_.capacity() > kKeep)
    std::vector<std::uint8_t>().swap(pending_in_);
}

std::uint64_t express_token_of(const TlsSession& s) {
  std::array<std::uint8_t, 8> v{};
  if (!s.exporter("EXPORTER-mpudp-express", v)) return 0;
  std::uint64_t t = 0;
  for (std::uint8_t b : v) t = (t << 8) | b;
  return t != 0 ? t : 1;  // 0 asks for a token on the wire
}

}  // namespace mpudp

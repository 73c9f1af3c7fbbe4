// TlsTransport (tunnel/tls_transport.h) between two ends of a real socket pair: what a
// tunnel connection does with it, without the event loop. A small send buffer makes the
// kernel take ciphertext in pieces, so the buffered remainder (unsent()) and the rule
// "encrypt only into an empty buffer" are exercised, not just the happy path.
#include <catch2/catch.hpp>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "tunnel/tls.h"
#include "tunnel/tls_transport.h"

using namespace mpudp;

namespace {

using Bytes = std::vector<std::uint8_t>;

const std::string kKey(32, 'k');

std::shared_ptr<TlsContext> context(TlsRole role) {
  TlsSettings s;
  s.role = role;
  if (role == TlsRole::Client) {
    s.identity = "home-17";
    s.psk = kKey;
  } else {
    s.peers["home-17"] = kKey;
  }
  auto r = TlsContext::create(s);
  if (auto* err = std::get_if<std::string>(&r)) FAIL("TlsContext::create: " << *err);
  return std::get<std::shared_ptr<TlsContext>>(r);
}

struct Pair {
  int fd[2] = {-1, -1};
  explicit Pair(int sndbuf = 0) {
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fd) == 0);
    if (sndbuf > 0)
      for (int f : fd) ::setsockopt(f, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
  }
  ~Pair() {
    for (int f : fd)
      if (f >= 0) ::close(f);
  }
};

// Reads what is there into `got`; returns false when the transport failed or the stream
// ended.
bool drain(TlsTransport& t, int fd, Bytes& got) {
  std::uint8_t buf[8192];
  for (;;) {
    const ssize_t n = t.read(fd, buf);
    if (n > 0) {
      got.insert(got.end(), buf, buf + n);
      continue;
    }
    if (n == 0) return false;
    return errno == EAGAIN || errno == EWOULDBLOCK;
  }
}

// Both ends read and push until both are established (or a bound of rounds passes).
void handshake(TlsTransport& c, TlsTransport& s, Pair& p) {
  REQUIRE(c.start());
  REQUIRE(s.start());
  Bytes junk;
  for (int i = 0; i < 50 && !(c.ready() && s.ready()); ++i) {
    REQUIRE(c.push(p.fd[0]) == 0);
    REQUIRE(drain(s, p.fd[1], junk));
    REQUIRE(s.push(p.fd[1]) == 0);
    REQUIRE(drain(c, p.fd[0], junk));
  }
  REQUIRE(c.ready());
  REQUIRE(s.ready());
  CHECK(junk.empty());
}

Bytes pattern(std::size_t n, std::uint8_t seed) {
  Bytes b(n);
  for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<std::uint8_t>(seed + i * 7);
  return b;
}

}  // namespace

TEST_CASE("tls transport: a stream larger than the socket buffer arrives whole, in order",
          "[tls][transport]") {
  Pair p(4096);
  TlsTransport c(context(TlsRole::Client)), s(context(TlsRole::Server));
  handshake(c, s, p);
  CHECK(c.session().identity() == "home-17");
  CHECK(s.session().identity() == "home-17");

  // 600 KiB of "frames" in iovecs of odd sizes, written as a connection does: whatever
  // write() takes, the rest offered again later.
  const Bytes data = pattern(600 * 1024, 3);
  std::size_t off = 0;
  Bytes got;
  std::size_t max_unsent = 0;
  int eagain = 0;
  for (int round = 0; round < 100000 && got.size() < data.size(); ++round) {
    if (off < data.size()) {
      iovec iov[3];
      std::size_t left = data.size() - off;
      std::size_t a = std::min<std::size_t>(left, 1200), b = std::min<std::size_t>(left - a, 37),
                  d = std::min<std::size_t>(left - a - b, 30000);
      iov[0] = {const_cast<std::uint8_t*>(data.data() + off), a};
      iov[1] = {const_cast<std::uint8_t*>(data.data() + off + a), b};
      iov[2] = {const_cast<std::uint8_t*>(data.data() + off + a + b), d};
      const ssize_t n = c.write(p.fd[0], iov);
      if (n > 0) {
        // Never more than one batch of plaintext per call.
        CHECK(static_cast<std::size_t>(n) <= TlsTransport::kMaxBatch);
        off += static_cast<std::size_t>(n);
      } else {
        REQUIRE(n == -1);
        REQUIRE((errno == EAGAIN || errno == EWOULDBLOCK));
        ++eagain;
      }
    } else {
      REQUIRE(c.push(p.fd[0]) == 0);
    }
    max_unsent = std::max(max_unsent, c.unsent());
    REQUIRE(drain(s, p.fd[1], got));
  }
  REQUIRE(got.size() == data.size());
  CHECK(got == data);
  CHECK(c.unsent() == 0);
  // The kernel took ciphertext in pieces (the buffer waited), and what waited in the
  // transport never exceeded one batch and its records' overhead.
  CHECK(eagain > 0);
  CHECK(max_unsent > 0);
  CHECK(max_unsent <= TlsTransport::kMaxBatch + 5 * 22);
  CHECK(!c.session().failed());
  CHECK(!s.session().failed());
}

TEST_CASE("tls transport: nothing is written before the handshake", "[tls][transport]") {
  Pair p;
  TlsTransport c(context(TlsRole::Client));
  REQUIRE(c.start());
  CHECK(!c.ready());
  Bytes one(10, 1);
  iovec iov{one.data(), one.size()};
  CHECK(c.write(p.fd[0], std::span<const iovec>(&iov, 1)) == -1);
  CHECK(errno == EAGAIN);
}

TEST_CASE("tls transport: a flipped byte on the wire fails the reader as tampering",
          "[tls][transport]") {
  Pair p;
  TlsTransport c(context(TlsRole::Client)), s(context(TlsRole::Server));
  handshake(c, s, p);
  const Bytes data = pattern(1000, 9);
  iovec iov{const_cast<std::uint8_t*>(data.data()), data.size()};
  // Encrypt into a second pair's socket, read the record back, flip a byte, forward it.
  Pair q;
  REQUIRE(c.write(q.fd[0], std::span<const iovec>(&iov, 1)) == static_cast<ssize_t>(data.size()));
  Bytes record(4096);
  const ssize_t n = ::recv(q.fd[1], record.data(), record.size(), 0);
  REQUIRE(n > 40);
  record.resize(static_cast<std::size_t>(n));
  record[20] ^= 0x01;
  REQUIRE(::send(p.fd[0], record.data(), record.size(), 0) == n);
  Bytes got;
  CHECK(!drain(s, p.fd[1], got));
  CHECK(got.empty());
  REQUIRE(s.session().failed());
  CHECK(s.session().failure() == TlsFailure::BadRecord);
  CHECK(s.failure().find("tampered") != std::string::npos);
}

TEST_CASE("tls transport: clear text spliced in after the handshake is tampering too",
          "[tls][transport]") {
  Pair p;
  TlsTransport c(context(TlsRole::Client)), s(context(TlsRole::Server));
  handshake(c, s, p);
  // A version 1 KEEPALIVE frame, as an on-path injector without the keys would write it.
  const std::uint8_t frame[] = {0x06, 0x00, 0x00, 0x01, 0x01};
  REQUIRE(::send(p.fd[0], frame, sizeof frame, 0) == static_cast<ssize_t>(sizeof frame));
  Bytes got;
  CHECK(!drain(s, p.fd[1], got));
  CHECK(got.empty());
  REQUIRE(s.session().failed());
  CHECK(s.session().failure() == TlsFailure::BadRecord);
}

TEST_CASE("tls transport: a clear-text peer is refused, or served with accept_cleartext",
          "[tls][transport]") {
  // A version 1 HELLO header and magic, as a CPE with encryption: none sends first.
  const std::uint8_t hello[] = {0x01, 0x00, 0x00, 0x0a, 0x4d, 0x50, 0x55, 0x44,
                                0x01, 0x01, 0x00, 0x00, 0x00, 0x00};
  SECTION("refused") {
    Pair p;
    TlsTransport s(context(TlsRole::Server));
    REQUIRE(s.start());
    REQUIRE(::send(p.fd[0], hello, sizeof hello, 0) == static_cast<ssize_t>(sizeof hello));
    Bytes got;
    CHECK(!drain(s, p.fd[1], got));
    CHECK(got.empty());
    CHECK(s.session().failure() == TlsFailure::Cleartext);
    CHECK(s.failure().find("cleartext mpudp HELLO") != std::string::npos);
  }
  SECTION("accepted: the bytes come through as they are, both ways") {
    Pair p;
    TlsTransport s(context(TlsRole::Server), true);
    REQUIRE(s.start());
    REQUIRE(::send(p.fd[0], hello, sizeof hello, 0) == static_cast<ssize_t>(sizeof hello));
    Bytes got;
    CHECK(drain(s, p.fd[1], got));
    CHECK(got == Bytes(hello, hello + sizeof hello));
    CHECK(s.cleartext());
    CHECK(s.ready());
    const Bytes reply = pattern(300, 1);
    iovec iov{const_cast<std::uint8_t*>(reply.data()), reply.size()};
    CHECK(s.write(p.fd[1], std::span<const iovec>(&iov, 1)) == static_cast<ssize_t>(reply.size()));
    Bytes back(1024);
    const ssize_t n = ::recv(p.fd[0], back.data(), back.size(), 0);
    REQUIRE(n == static_cast<ssize_t>(reply.size()));
    back.resize(static_cast<std::size_t>(n));
    CHECK(back == reply);
  }
}

TEST_CASE("tls transport: express tokens match on both ends of a session only",
          "[tls][transport][express]") {
  Pair p1, p2;
  TlsTransport c1(context(TlsRole::Client)), s1(context(TlsRole::Server));
  TlsTransport c2(context(TlsRole::Client)), s2(context(TlsRole::Server));
  handshake(c1, s1, p1);
  handshake(c2, s2, p2);
  const std::uint64_t t1 = express_token_of(c1.session());
  CHECK(t1 != 0);
  CHECK(t1 == express_token_of(s1.session()));
  CHECK(express_token_of(c2.session()) == express_token_of(s2.session()));
  CHECK(t1 != express_token_of(c2.session()));
}

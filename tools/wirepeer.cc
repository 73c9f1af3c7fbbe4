// wirepeer: speaks the tunnel protocol (docs/PROTOCOL.md) by hand, one scripted step at a
// time, so integration tests can poke a concentrator with exact frames, including wrong
// ones, and check what it answers.
//
//   wirepeer HOST:PORT STEP...
//
// HOST is numeric ("198.18.0.1:7000", "[2001:db8::1]:7000"). The connection uses
// IPPROTO_MPTCP and falls back to IPPROTO_TCP when the kernel has no MPTCP. Steps:
//   hello                      send HELLO (version 1, role CPE, multiplexed)
//   auth:HEXKEY                the key handshake as a CPE: HELLO with a fresh nonce,
//                              expect the concentrator's HELLO and AUTH, verify its proof
//                              (the step fails on a wrong key), then send our AUTH
//   auth-force:HEXKEY          the same, but send our AUTH even when the concentrator's
//                              proof does not verify (to test the concentrator's check)
//   expect-hello               read frames until a HELLO arrives (3 s)
//   open:FLOW:CLIENT:REMOTE[:HEX]
//                              send OPEN; with ":HEX" (which may be empty) the
//                              has-payload flag is set and HEX is the payload
//   data:FLOW:HEX              send DATA (HEX may be empty)
//   keepalive                  send KEEPALIVE with reply requested
//   expect-keepalive           read frames until a KEEPALIVE arrives (3 s)
//   expect-reset:FLOW          read frames until RESET for FLOW arrives (3 s)
//   expect-close               the peer must close or reset the connection within 3 s
//   raw:HEX                    send the bytes as they are
//   sleep:MS                   wait
// TLS (protocol version 2, docs/PROTOCOL.md "TLS layer"), through lib/tunnel/tls.h:
//   tls:IDENTITY:HEXKEY        TLS 1.3 handshake as a CPE with that external PSK; it must
//                              complete (3 s). From then on every frame step, raw: too,
//                              goes inside the TLS stream, and HELLO says version 2
//   tls-refused:IDENTITY:HEXKEY
//                              the same handshake must fail; prints why
//   hello-express              HELLO with EXPRESS, token 0 (a main connection asking
//                              for an express connection)
//   expect-hello-express       read frames until a HELLO with EXPRESS arrives (3 s)
//   hello-icmp                 HELLO with the ICMP capability (ICMP frames welcome)
//   expect-icmp:FLOW           read frames until an ICMP frame for FLOW arrives (3 s)
//   connect                    open another connection to HOST:PORT; the ones before stay
//                              open (their sessions live on), later steps use the new one
//   join:N                     HELLO with EXPRESS and, as token, 64 bits of connection
//                              N's (1 = the first) TLS exporter: an express connection
//                              joining that session (whatever identity this one has)
//   join-token:HEX16           the same with a token of our choosing
// The connect itself also gives up after 3 s.
// FLOW is decimal or 0x-prefixed hex; CLIENT and REMOTE are endpoints as HOST is.
// Frames read while waiting for something else are printed and skipped.
//
// Prints every step and every received frame on stdout. Exit status: 0 when every step
// passed, 1 when one failed (a line "wirepeer: FAIL step N (STEP): why" says which), 2 on
// a usage error. Steps are all checked before connecting, so a typo costs no connection.
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <variant>
#include <vector>

#include "net/endpoint.h"
#include "tunnel/tls.h"
#include "wire/auth.h"
#include "wire/frame.h"

#ifndef IPPROTO_MPTCP
#define IPPROTO_MPTCP 262
#endif

namespace {

using mpudp::Endpoint;
namespace wire = mpudp::wire;
using Bytes = std::vector<std::uint8_t>;
using Clock = std::chrono::steady_clock;

constexpr auto kExpectTimeout = std::chrono::seconds(3);
constexpr std::uint8_t kTlsVersion = 2;
constexpr std::string_view kExpressLabel = "EXPORTER-mpudp-express";

struct Step {
  enum class Kind {
    Hello, ExpectHello, Open, Data, Keepalive, ExpectKeepalive, ExpectReset, ExpectClose, Raw,
    Sleep, Auth, AuthForce, Tls, TlsRefused, HelloExpress, ExpectHelloExpress, HelloIcmp, ExpectIcmp, Connect,
    Join, JoinToken,
  };
  Kind kind;
  std::string text;  // as given, for messages
  std::uint32_t flow_id = 0;
  Endpoint client;
  Endpoint remote;
  bool has_payload = false;
  Bytes bytes;  // payload, or the raw bytes (the key of tls:)
  unsigned ms = 0;
  std::string identity;  // tls:
  std::uint64_t token = 0;  // join-token:
  std::size_t conn = 0;     // join: (1-based)
};

std::optional<Bytes> parse_hex(std::string_view s) {
  if (s.size() % 2 != 0) return std::nullopt;
  Bytes out;
  out.reserve(s.size() / 2);
  for (std::size_t i = 0; i < s.size(); i += 2) {
    std::uint8_t b = 0;
    auto [p, ec] = std::from_chars(s.data() + i, s.data() + i + 2, b, 16);
    if (ec != std::errc() || p != s.data() + i + 2) return std::nullopt;
    out.push_back(b);
  }
  return out;
}

template <typename T>
std::optional<T> parse_number(std::string_view s) {
  int base = 10;
  if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
    s.remove_prefix(2);
    base = 16;
  }
  T v{};
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v, base);
  if (s.empty() || ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

// Takes one endpoint off the front of `s` ("a.b.c.d:port" or "[v6]:port"), leaving the
// rest, which must be empty or start with ':'. Endpoints contain colons themselves, so a
// plain split on ':' cannot find where they end.
std::optional<Endpoint> take_endpoint(std::string_view& s) {
  std::size_t end;
  if (!s.empty() && s.front() == '[') {
    const std::size_t close = s.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    end = s.find(':', close + 2);
  } else {
    const std::size_t colon = s.find(':');
    if (colon == std::string_view::npos) return std::nullopt;
    end = s.find(':', colon + 1);
  }
  if (end == std::string_view::npos) end = s.size();
  auto e = Endpoint::parse(s.substr(0, end));
  s.remove_prefix(end);
  return e;
}

std::optional<Step> parse_step(std::string_view arg) {
  Step st{};
  st.text = std::string(arg);
  const std::size_t colon = arg.find(':');
  const std::string_view verb = arg.substr(0, colon);
  std::string_view rest = colon == std::string_view::npos ? "" : arg.substr(colon + 1);
  const bool has_arg = colon != std::string_view::npos;

  auto simple = [&](Step::Kind k) -> std::optional<Step> {
    if (has_arg) return std::nullopt;
    st.kind = k;
    return st;
  };
  if (verb == "hello") return simple(Step::Kind::Hello);
  if (verb == "expect-hello") return simple(Step::Kind::ExpectHello);
  if (verb == "keepalive") return simple(Step::Kind::Keepalive);
  if (verb == "expect-keepalive") return simple(Step::Kind::ExpectKeepalive);
  if (verb == "expect-close") return simple(Step::Kind::ExpectClose);
  if (verb == "hello-express") return simple(Step::Kind::HelloExpress);
  if (verb == "expect-hello-express") return simple(Step::Kind::ExpectHelloExpress);
  if (verb == "hello-icmp") return simple(Step::Kind::HelloIcmp);
  if (verb == "connect") return simple(Step::Kind::Connect);
  if (!has_arg) return std::nullopt;

  if (verb == "tls" || verb == "tls-refused") {
    const std::size_t c2 = rest.rfind(':');
    if (c2 == std::string_view::npos || c2 == 0) return std::nullopt;
    auto key = parse_hex(rest.substr(c2 + 1));
    if (!key || key->empty()) return std::nullopt;
    st.kind = verb == "tls" ? Step::Kind::Tls : Step::Kind::TlsRefused;
    st.identity = std::string(rest.substr(0, c2));
    st.bytes = std::move(*key);
    return st;
  }
  if (verb == "join") {
    auto n = parse_number<std::size_t>(rest);
    if (!n || *n == 0) return std::nullopt;
    st.kind = Step::Kind::Join;
    st.conn = *n;
    return st;
  }
  if (verb == "join-token") {
    auto b = parse_hex(rest);
    if (!b || b->size() != wire::kTokenSize) return std::nullopt;
    st.kind = Step::Kind::JoinToken;
    for (std::uint8_t x : *b) st.token = (st.token << 8) | x;
    return st;
  }

  if (verb == "expect-reset" || verb == "expect-icmp") {
    auto id = parse_number<std::uint32_t>(rest);
    if (!id) return std::nullopt;
    st.kind = verb == "expect-reset" ? Step::Kind::ExpectReset : Step::Kind::ExpectIcmp;
    st.flow_id = *id;
    return st;
  }
  if (verb == "auth" || verb == "auth-force") {
    auto b = parse_hex(rest);
    if (!b || b->empty()) return std::nullopt;
    st.kind = verb == "auth" ? Step::Kind::Auth : Step::Kind::AuthForce;
    st.bytes = std::move(*b);
    return st;
  }
  if (verb == "sleep") {
    auto ms = parse_number<unsigned>(rest);
    if (!ms) return std::nullopt;
    st.kind = Step::Kind::Sleep;
    st.ms = *ms;
    return st;
  }
  if (verb == "raw") {
    auto b = parse_hex(rest);
    if (!b || b->empty()) return std::nullopt;
    st.kind = Step::Kind::Raw;
    st.bytes = std::move(*b);
    return st;
  }
  // data and open both start with a flow id.
  const std::size_t c2 = rest.find(':');
  if (c2 == std::string_view::npos) return std::nullopt;
  auto id = parse_number<std::uint32_t>(rest.substr(0, c2));
  if (!id) return std::nullopt;
  st.flow_id = *id;
  rest.remove_prefix(c2 + 1);
  if (verb == "data") {
    auto b = parse_hex(rest);
    if (!b) return std::nullopt;
    st.kind = Step::Kind::Data;
    st.bytes = std::move(*b);
    return st;
  }
  if (verb == "open") {
    auto client = take_endpoint(rest);
    if (!client || rest.empty() || rest.front() != ':') return std::nullopt;
    rest.remove_prefix(1);
    auto remote = take_endpoint(rest);
    if (!remote) return std::nullopt;
    // A mismatched OPEN cannot be encoded; send one with raw: to test the peer with it.
    if (client->family != remote->family) return std::nullopt;
    st.kind = Step::Kind::Open;
    st.client = *client;
    st.remote = *remote;
    if (!rest.empty()) {
      if (rest.front() != ':') return std::nullopt;
      auto b = parse_hex(rest.substr(1));
      if (!b) return std::nullopt;
      st.has_payload = true;
      st.bytes = std::move(*b);
    }
    return st;
  }
  return std::nullopt;
}

std::string hex(std::span<const std::uint8_t> b, std::size_t max = 32) {
  static const char digits[] = "0123456789abcdef";
  std::string s;
  for (std::size_t i = 0; i < b.size() && i < max; ++i) {
    s += digits[b[i] >> 4];
    s += digits[b[i] & 0xf];
  }
  if (b.size() > max) s += "...";
  return s;
}

// Concentrator-allocated ids read better in hex, which is also how the docs write them.
std::string flow_str(std::uint32_t id) {
  if ((id & wire::kConcentratorFlowBit) == 0) return std::to_string(id);
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", static_cast<unsigned>(id));
  return buf;
}

const char* role_name(wire::Role r) {
  switch (r) {
    case wire::Role::Cpe: return "cpe";
    case wire::Role::Concentrator: return "concentrator";
  }
  return "?";
}

const char* mode_name(wire::SessionMode m) {
  switch (m) {
    case wire::SessionMode::Multiplexed: return "multiplexed";
    case wire::SessionMode::PerBinding: return "per-binding";
  }
  return "?";
}

std::string describe(const wire::Frame& f) {
  char buf[256];
  if (auto* h = std::get_if<wire::Hello>(&f)) {
    std::snprintf(buf, sizeof buf, "HELLO version=%u role=%s mode=%s caps=0x%04x",
                  unsigned{h->version}, role_name(h->role), mode_name(h->mode),
                  unsigned{h->capabilities});
    std::string s = buf;
    if ((h->capabilities & wire::kCapAuth) != 0) s += " nonce=" + hex(h->nonce, 8);
    if ((h->capabilities & wire::kCapExpress) != 0) {
      std::snprintf(buf, sizeof buf, " express_token=%016llx",
                    static_cast<unsigned long long>(h->express_token));
      s += buf;
    }
    return s;
  }
  if (auto* a = std::get_if<wire::Auth>(&f)) return "AUTH mac=" + hex(a->mac, 8);
  if (auto* o = std::get_if<wire::Open>(&f)) {
    std::string s = "OPEN flow=" + flow_str(o->flow_id) + " " + o->client.str() +
                    " -> " + o->remote.str();
    if (o->has_payload)
      s += " len=" + std::to_string(o->payload.size()) + " [" + hex(o->payload) + "]";
    return s;
  }
  if (auto* d = std::get_if<wire::Data>(&f))
    return "DATA flow=" + flow_str(d->flow_id) + " len=" +
           std::to_string(d->payload.size()) + " [" + hex(d->payload) + "]";
  if (auto* c = std::get_if<wire::Close>(&f))
    return "CLOSE client=" + c->client.str() +
           " reason=" + std::to_string(static_cast<unsigned>(c->reason));
  if (auto* r = std::get_if<wire::Reset>(&f))
    return "RESET flow=" + flow_str(r->flow_id) +
           " reason=" + std::to_string(static_cast<unsigned>(r->reason));
  if (auto* m = std::get_if<wire::Icmp>(&f))
    return "ICMP flow=" + flow_str(m->flow_id) + " kind=" + wire::to_string(m->kind) +
           " mtu=" + std::to_string(m->mtu) + " length=" + std::to_string(m->length);
  const auto& k = std::get<wire::Keepalive>(f);
  return k.reply_requested ? "KEEPALIVE reply-requested" : "KEEPALIVE";
}

int connect_to(const Endpoint& peer, std::string& err) {
  sockaddr_storage ss;
  const socklen_t len = peer.to_sockaddr(ss);
  const int family = peer.is_v4() ? AF_INET : AF_INET6;
  int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_MPTCP);
  const char* proto = "mptcp";
  if (fd < 0) {
    // Kernels without MPTCP (or with net.mptcp.enabled=0) refuse the protocol outright.
    fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP);
    proto = "tcp";
  }
  if (fd < 0) {
    err = std::string("socket: ") + std::strerror(errno);
    return -1;
  }
  // Non-blocking connect only to bound the wait: a black-holed address would otherwise
  // stall a test for the kernel's SYN retry time (minutes).
  const int fl = fcntl(fd, F_GETFL);
  fcntl(fd, F_SETFL, fl | O_NONBLOCK);
  int rc = connect(fd, reinterpret_cast<const sockaddr*>(&ss), len);
  if (rc != 0 && errno == EINPROGRESS) {
    pollfd p{fd, POLLOUT, 0};
    const int pr = poll(&p, 1, static_cast<int>(
        std::chrono::duration_cast<std::chrono::milliseconds>(kExpectTimeout).count()));
    int soerr = 0;
    socklen_t slen = sizeof soerr;
    if (pr == 0) {
      soerr = ETIMEDOUT;
    } else if (pr < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &slen) != 0) {
      soerr = errno;
    }
    errno = soerr;
    rc = soerr == 0 ? 0 : -1;
  }
  if (rc != 0) {
    err = "connect " + peer.str() + ": " + std::strerror(errno);
    close(fd);
    return -1;
  }
  fcntl(fd, F_SETFL, fl);
  std::printf("connected to %s over %s\n", peer.str().c_str(), proto);
  return fd;
}

class Peer {
 public:
  explicit Peer(int fd) : fd_(fd) {}
  ~Peer() { close(fd_); }
  Peer(const Peer&) = delete;
  Peer& operator=(const Peer&) = delete;

  // The stream's bytes: inside TLS once tls: ran, as they are before.
  bool send_bytes(std::span<const std::uint8_t> b, std::string& err) {
    if (!tls_) return send_raw(b, err);
    const std::span<const std::uint8_t> spans[] = {b};
    Bytes out;
    if (!tls_->encrypt(spans, out)) {
      err = "TLS encrypt failed: " + tls_->failure_text();
      return false;
    }
    return send_raw(out, err);
  }

  // The TLS handshake as a CPE (docs/PROTOCOL.md "TLS layer"); true when it completed.
  // `err` says why not: the session's failure text, or what the connection did.
  bool start_tls(const std::string& identity, const Bytes& key, std::string& err) {
    mpudp::TlsSettings ts;
    ts.role = mpudp::TlsRole::Client;
    ts.identity = identity;
    ts.psk.assign(key.begin(), key.end());
    ts.resumption = false;
    auto made = mpudp::TlsContext::create(ts);
    if (auto* why = std::get_if<std::string>(&made)) {
      err = "TLS context: " + *why;
      return false;
    }
    tls_ = std::make_unique<mpudp::TlsSession>(std::get<0>(std::move(made)));
    Bytes out;
    if (!tls_->start(out)) {
      err = "TLS start: " + tls_->failure_text();
      return false;
    }
    if (!send_raw(out, err)) return false;
    const auto deadline = Clock::now() + kExpectTimeout;
    while (!tls_->established()) {
      switch (read_more(deadline, err)) {
        case Read::Got: break;
        case Read::Timeout: err = "timed out in the TLS handshake"; return false;
        case Read::Closed:
          if (!tls_->failed()) err = "connection closed in the TLS handshake" + err;
          return false;
      }
    }
    std::printf("  TLS established: identity %s, cipher %s, group %s\n",
                tls_->identity().c_str(), tls_->cipher().c_str(),
                tls_->key_exchange_group().c_str());
    return true;
  }

  const mpudp::TlsSession* tls() const { return tls_.get(); }

 private:
  bool send_raw(std::span<const std::uint8_t> b, std::string& err) {
    while (!b.empty()) {
      const ssize_t n = send(fd_, b.data(), b.size(), MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EINTR) continue;
        err = std::string("send: ") + std::strerror(errno);
        return false;
      }
      b = b.subspan(static_cast<std::size_t>(n));
    }
    return true;
  }


 public:
  bool send_frame(const wire::Frame& f, std::string& err) {
    Bytes out(wire::encoded_size(f));
    if (out.empty() || wire::encode(f, out) != out.size()) {
      err = "frame cannot be encoded (too large, or endpoint families differ)";
      return false;
    }
    std::printf("  sent: %s\n", describe(f).c_str());
    return send_bytes(out, err);
  }

  // Reads frames until `want` accepts one, printing every frame on the way. Returns
  // false with `err` set on timeout, close, or a frame the decoder rejects.
  template <typename Want>
  bool expect(Want want, const char* what, std::string& err) {
    const auto deadline = Clock::now() + kExpectTimeout;
    for (;;) {
      for (;;) {
        const wire::Decoded d = wire::decode(buf_);
        if (d.status == wire::DecodeStatus::NeedMore) break;
        if (d.status != wire::DecodeStatus::Ok) {
          err = std::string("peer sent a bad frame: ") + wire::to_string(d.status) +
                " (bytes " + hex(buf_, 16) + ")";
          buf_.clear();
          return false;
        }
        std::printf("  recv: %s\n", describe(d.frame).c_str());
        // Decide before erasing: the frame's spans point into buf_.
        const bool matched = want(d.frame);
        buf_.erase(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(d.consumed));
        if (matched) return true;
      }
      switch (read_more(deadline, err)) {
        case Read::Got: break;
        case Read::Timeout: err = std::string("timed out waiting for ") + what; return false;
        case Read::Closed:
          err = std::string("connection closed while waiting for ") + what + err;
          return false;
      }
    }
  }

  bool expect_close(std::string& err) {
    const auto deadline = Clock::now() + kExpectTimeout;
    for (;;) {
      // Whatever the peer still sends before closing is shown but not judged.
      for (;;) {
        const wire::Decoded d = wire::decode(buf_);
        if (d.status == wire::DecodeStatus::NeedMore) break;
        if (d.status != wire::DecodeStatus::Ok) {
          std::printf("  recv: undecodable bytes (%s)\n", wire::to_string(d.status));
          buf_.clear();
          break;
        }
        std::printf("  recv: %s\n", describe(d.frame).c_str());
        buf_.erase(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(d.consumed));
      }
      switch (read_more(deadline, err)) {
        case Read::Got: break;
        case Read::Timeout: err = "the peer kept the connection open"; return false;
        case Read::Closed: std::printf("  closed by peer%s\n", err.c_str()); return true;
      }
    }
  }

 private:
  enum class Read { Got, Timeout, Closed };

  // Closed covers both an orderly close and a reset; `err` then says which (", reset").
  Read read_more(Clock::time_point deadline, std::string& err) {
    for (;;) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) return Read::Timeout;
      pollfd p{fd_, POLLIN, 0};
      const int r = poll(&p, 1, static_cast<int>(left.count()));
      if (r < 0 && errno == EINTR) continue;
      if (r == 0) return Read::Timeout;
      std::uint8_t chunk[65536];
      const ssize_t n = recv(fd_, chunk, sizeof chunk, 0);
      if (n > 0 && tls_) return decrypt({chunk, static_cast<std::size_t>(n)}, err);
      if (n > 0) {
        buf_.insert(buf_.end(), chunk, chunk + n);
        return Read::Got;
      }
      if (n == 0) {
        err = " (orderly close)";
        return Read::Closed;
      }
      if (errno == EINTR || errno == EAGAIN) continue;
      err = std::string(" (") + std::strerror(errno) + ")";
      return Read::Closed;
    }
  }

  // Feeds ciphertext to the TLS session: plaintext to buf_, and whatever the session has
  // to say (handshake, alerts, KeyUpdate answers) to the peer. A TLS failure ends the
  // connection as far as the steps are concerned (`err` says why).
  Read decrypt(std::span<const std::uint8_t> in, std::string& err) {
    cipher_in_.insert(cipher_in_.end(), in.begin(), in.end());
    for (;;) {
      std::uint8_t plain[65536];
      Bytes out;
      const auto r = tls_->receive(cipher_in_, plain, out);
      cipher_in_.erase(cipher_in_.begin(),
                       cipher_in_.begin() + static_cast<std::ptrdiff_t>(r.consumed));
      buf_.insert(buf_.end(), plain, plain + r.plaintext);
      if (!out.empty()) {
        std::string ignored;
        send_raw(out, ignored);
      }
      if (tls_->failed()) {
        err = " (TLS failed: " + tls_->failure_text() + ")";
        return Read::Closed;
      }
      if (r.consumed == 0 && r.plaintext == 0) return Read::Got;
    }
  }

  int fd_;
  Bytes buf_;
  std::unique_ptr<mpudp::TlsSession> tls_;
  Bytes cipher_in_;  // ciphertext the session has not consumed yet
};

// The HELLO a CPE sends: version 2 inside TLS, version 1 outside.
wire::Hello cpe_hello(const Peer& peer, std::uint16_t caps, std::uint64_t token) {
  wire::Hello h{peer.tls() != nullptr ? kTlsVersion : wire::kVersion, wire::Role::Cpe,
                wire::SessionMode::Multiplexed, caps};
  h.express_token = token;
  return h;
}

// What an express connection of a TLS session carries in its HELLO: the main session's
// exporter value, 8 bytes of it, big endian (0 is "ask for a token": 1 then), as the
// daemons compute it (express_token_of in tunnel/tls_transport.h, which replaces this
// once that header is on this branch).
std::optional<std::uint64_t> express_token_of(const Peer& main) {
  if (main.tls() == nullptr || !main.tls()->established()) return std::nullopt;
  std::array<std::uint8_t, wire::kTokenSize> v{};
  if (!main.tls()->exporter(kExpressLabel, v)) return std::nullopt;
  std::uint64_t t = 0;
  for (std::uint8_t b : v) t = (t << 8) | b;
  return t != 0 ? t : 1;
}

// The CPE's side of the key handshake (docs/PROTOCOL.md, "Authentication").
bool run_auth(Peer& peer, const Step& st, bool force, std::string& err) {
  wire::Handshake hs(wire::Role::Cpe, st.bytes);
  if (!peer.send_frame(hs.first_hello(wire::SessionMode::Multiplexed), err)) return false;
  bool failed = false;
  auto want = [&](const wire::Frame& f) {
    const auto step = hs.on_frame(f);
    failed = step == wire::Handshake::Step::Failed;
    return failed || step == wire::Handshake::Step::Authenticated;
  };
  if (!peer.expect(want, "the concentrator's HELLO and AUTH", err)) return false;
  if (!failed) return peer.send_frame(wire::Auth{hs.proof()}, err);
  if (!force || hs.failure() != wire::AuthFailure::WrongKey) {
    err = std::string("handshake failed: ") + wire::to_string(hs.failure());
    return false;
  }
  // auth-force: answer with the proof a CPE holding this key would send.
  std::printf("  the concentrator's proof does not verify; sending ours anyway\n");
  return peer.send_frame(
      wire::Auth{wire::cpe_proof(st.bytes, hs.peer_hello().nonce, hs.own_nonce())}, err);
}

bool run_step(std::vector<std::unique_ptr<Peer>>& conns, const Endpoint& to, const Step& st,
              std::string& err) {
  using K = Step::Kind;
  Peer& peer = *conns.back();
  auto is_express_hello = [](const wire::Frame& f) {
    auto* h = std::get_if<wire::Hello>(&f);
    return h != nullptr && (h->capabilities & wire::kCapExpress) != 0;
  };
  switch (st.kind) {
    case K::Tls:
      return peer.start_tls(st.identity, st.bytes, err);
    case K::TlsRefused:
      if (peer.start_tls(st.identity, st.bytes, err)) {
        err = "the TLS handshake completed";
        return false;
      }
      std::printf("  refused, as expected:%s\n", err.c_str());
      err.clear();
      return true;
    case K::HelloExpress:
      return peer.send_frame(cpe_hello(peer, wire::kCapExpress, 0), err);
    case K::ExpectHelloExpress:
      return peer.expect(is_express_hello, "HELLO with EXPRESS", err);
    case K::HelloIcmp:
      return peer.send_frame(cpe_hello(peer, wire::kCapIcmp, 0), err);
    case K::ExpectIcmp: {
      const std::uint32_t id = st.flow_id;
      return peer.expect(
          [id](const wire::Frame& f) {
            auto* m = std::get_if<wire::Icmp>(&f);
            return m != nullptr && m->flow_id == id;
          },
          "ICMP", err);
    }
    case K::Connect: {
      const int fd = connect_to(to, err);
      if (fd < 0) return false;
      conns.push_back(std::make_unique<Peer>(fd));
      return true;
    }
    case K::Join: {
      if (st.conn > conns.size()) {
        err = "no connection " + std::to_string(st.conn) + " yet";
        return false;
      }
      const auto token = express_token_of(*conns[st.conn - 1]);
      if (!token) {
        err = "connection " + std::to_string(st.conn) + " has no established TLS session";
        return false;
      }
      return peer.send_frame(cpe_hello(peer, wire::kCapExpress, *token), err);
    }
    case K::JoinToken:
      return peer.send_frame(cpe_hello(peer, wire::kCapExpress, st.token), err);
    case K::Auth:
      return run_auth(peer, st, false, err);
    case K::AuthForce:
      return run_auth(peer, st, true, err);
    case K::Hello:
      return peer.send_frame(cpe_hello(peer, 0, 0), err);
    case K::ExpectHello:
      return peer.expect(
          [](const wire::Frame& f) { return std::holds_alternative<wire::Hello>(f); },
          "HELLO", err);
    case K::Open:
      return peer.send_frame(
          wire::Open{st.flow_id, st.client, st.remote, st.has_payload, st.bytes}, err);
    case K::Data:
      return peer.send_frame(wire::Data{st.flow_id, st.bytes}, err);
    case K::Keepalive:
      return peer.send_frame(wire::Keepalive{true}, err);
    case K::ExpectKeepalive:
      return peer.expect(
          [](const wire::Frame& f) { return std::holds_alternative<wire::Keepalive>(f); },
          "KEEPALIVE", err);
    case K::ExpectReset: {
      const std::uint32_t id = st.flow_id;
      return peer.expect(
          [id](const wire::Frame& f) {
            auto* r = std::get_if<wire::Reset>(&f);
            return r != nullptr && r->flow_id == id;
          },
          "RESET", err);
    }
    case K::ExpectClose:
      return peer.expect_close(err);
    case K::Raw:
      std::printf("  sent: raw %zu bytes [%s]\n", st.bytes.size(), hex(st.bytes).c_str());
      return peer.send_bytes(st.bytes, err);
    case K::Sleep:
      std::this_thread::sleep_for(std::chrono::milliseconds(st.ms));
      return true;
  }
  err = "unknown step";
  return false;
}

int usage() {
  std::fprintf(stderr,
               "usage: wirepeer HOST:PORT STEP...\n"
               "steps: hello expect-hello open:FLOW:CLIENT:REMOTE[:HEX] data:FLOW:HEX\n"
               "       keepalive expect-keepalive expect-reset:FLOW expect-close raw:HEX "
               "sleep:MS\n"
               "       auth:HEXKEY auth-force:HEXKEY\n"
               "       tls:IDENTITY:HEXKEY tls-refused:IDENTITY:HEXKEY hello-express\n"
               "       expect-hello-express hello-icmp expect-icmp:FLOW connect join:N\n"
               "       join-token:HEX16\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) return usage();
  const auto peer_ep = Endpoint::parse(argv[1]);
  if (!peer_ep) {
    std::fprintf(stderr, "wirepeer: bad endpoint '%s' (numeric HOST:PORT)\n", argv[1]);
    return usage();
  }
  if (!wire::auth_init()) {
    std::fprintf(stderr, "wirepeer: OpenSSL has no HMAC-SHA256 or no entropy source\n");
    return 1;
  }
  std::vector<Step> steps;
  for (int i = 2; i < argc; ++i) {
    auto st = parse_step(argv[i]);
    if (!st) {
      std::fprintf(stderr, "wirepeer: bad step '%s'\n", argv[i]);
      return usage();
    }
    steps.push_back(std::move(*st));
  }
  // Test logs interleave our output with the daemons'; line buffering keeps it readable.
  std::setvbuf(stdout, nullptr, _IOLBF, 0);

  std::string err;
  const int fd = connect_to(*peer_ep, err);
  if (fd < 0) {
    std::printf("wirepeer: FAIL connect: %s\n", err.c_str());
    return 1;
  }
  std::vector<std::unique_ptr<Peer>> conns;
  conns.push_back(std::make_unique<Peer>(fd));
  for (std::size_t i = 0; i < steps.size(); ++i) {
    std::printf("step %zu: %s\n", i + 1, steps[i].text.c_str());
    err.clear();
    if (!run_step(conns, *peer_ep, steps[i], err)) {
      std::printf("wirepeer: FAIL step %zu (%s): %s\n", i + 1, steps[i].text.c_str(),
                  err.c_str());
      return 1;
    }
  }
  std::printf("wirepeer: all %zu steps passed\n", steps.size());
  return 0;
}

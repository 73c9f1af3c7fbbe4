// The key handshake as pure logic: proofs, and which frames each state accepts.
#include <catch2/catch.hpp>

#include <array>
#include <cstdint>
#include <vector>

#include "wire/auth.h"
#include "wire/frame.h"

using namespace mpudp::wire;

namespace {

std::vector<std::uint8_t> key_of(std::uint8_t fill) { return std::vector<std::uint8_t>(32, fill); }

// Round-trips a frame through the codec, as a connection would see it.
Frame via_wire(const Frame& f) {
  std::vector<std::uint8_t> b(encoded_size(f));
  REQUIRE(encode(f, b) == b.size());
  Decoded d = decode(b);
  REQUIRE(d.status == DecodeStatus::Ok);
  return d.frame;
}

struct Pair {
  Handshake cpe;
  Handshake conc;
  Pair(const std::vector<std::uint8_t>& kc, const std::vector<std::uint8_t>& ks)
      : cpe(Role::Cpe, kc), conc(Role::Concentrator, ks) {}
};

}  // namespace

TEST_CASE("right key: both sides authenticate", "[auth]") {
  REQUIRE(auth_init());
  auto k = key_of(7);
  Pair p(k, k);
  const Hello h = p.cpe.first_hello(SessionMode::PerBinding);
  CHECK(h.capabilities == kCapAuth);
  REQUIRE(p.conc.on_frame(via_wire(h)) == Handshake::Step::SendChallenge);
  CHECK(p.conc.peer_hello().mode == SessionMode::PerBinding);
  CHECK(!p.conc.done());
  const Hello reply = p.conc.reply_hello(SessionMode::PerBinding);
  CHECK(reply.role == Role::Concentrator);
  CHECK(reply.nonce != h.nonce);
  CHECK(p.cpe.on_frame(via_wire(reply)) == Handshake::Step::Consumed);
  REQUIRE(p.cpe.on_frame(via_wire(Auth{p.conc.proof()})) == Handshake::Step::Authenticated);
  CHECK(p.cpe.done());
  CHECK(p.conc.on_frame(via_wire(Auth{p.cpe.proof()})) == Handshake::Step::Consumed);
  CHECK(p.conc.done());
  // After the handshake, ordinary frames are delivered; HELLO and AUTH are not again.
  CHECK(p.conc.on_frame(Keepalive{true}) == Handshake::Step::Deliver);
  CHECK(p.cpe.on_frame(Data{1, {}}) == Handshake::Step::Deliver);
  CHECK(p.conc.on_frame(Auth{p.cpe.proof()}) == Handshake::Step::Failed);
  CHECK(p.conc.failure() == AuthFailure::Unexpected);
  CHECK(p.cpe.on_frame(reply) == Handshake::Step::Failed);
}

TEST_CASE("the two proofs differ and depend on key and nonces", "[auth]") {
  auto k = key_of(1);
  Nonce a{}, b{};
  a[0] = 1;
  b[0] = 2;
  CHECK(concentrator_proof(k, a, b) != cpe_proof(k, b, a));
  CHECK(concentrator_proof(k, a, b) != concentrator_proof(k, b, a));
  CHECK(concentrator_proof(k, a, b) != concentrator_proof(key_of(2), a, b));
  CHECK(same_mac(cpe_proof(k, a, b), cpe_proof(k, a, b)));
  CHECK(random_nonce() != random_nonce());
}

TEST_CASE("wrong key fails on both sides", "[auth]") {
  Pair p(key_of(1), key_of(2));
  REQUIRE(p.conc.on_frame(p.cpe.first_hello(SessionMode::Multiplexed)) ==
          Handshake::Step::SendChallenge);
  CHECK(p.cpe.on_frame(p.conc.reply_hello(SessionMode::Multiplexed)) == Handshake::Step::Consumed);
  // The CPE refuses the concentrator's proof and never sends its own.
  CHECK(p.cpe.on_frame(Auth{p.conc.proof()}) == Handshake::Step::Failed);
  CHECK(p.cpe.failure() == AuthFailure::WrongKey);
  CHECK(!p.cpe.done());
  // A CPE with the wrong key that answered anyway is refused by the concentrator.
  Pair q(key_of(1), key_of(2));
  q.conc.on_frame(q.cpe.first_hello(SessionMode::Multiplexed));
  const Hello reply = q.conc.reply_hello(SessionMode::Multiplexed);
  CHECK(q.conc.on_frame(Auth{cpe_proof(key_of(1), reply.nonce, Nonce{})}) ==
        Handshake::Step::Failed);
  CHECK(q.conc.failure() == AuthFailure::WrongKey);
  // Failed is final.
  CHECK(q.conc.on_frame(Keepalive{}) == Handshake::Step::Failed);
}

TEST_CASE("a replayed proof from an earlier connection fails", "[auth]") {
  auto k = key_of(9);
  Pair first(k, k);
  const Hello h1 = first.cpe.first_hello(SessionMode::Multiplexed);
  first.conc.on_frame(h1);
  first.cpe.on_frame(first.conc.reply_hello(SessionMode::Multiplexed));
  REQUIRE(first.cpe.on_frame(Auth{first.conc.proof()}) == Handshake::Step::Authenticated);
  const Auth recorded{first.cpe.proof()};
  // An attacker replays the recorded HELLO and AUTH on a new connection: the
  // concentrator's nonce is fresh, so the old proof does not verify.
  Handshake conc(Role::Concentrator, k);
  REQUIRE(conc.on_frame(h1) == Handshake::Step::SendChallenge);
  CHECK(conc.on_frame(recorded) == Handshake::Step::Failed);
  CHECK(conc.failure() == AuthFailure::WrongKey);
  // And a recorded concentrator proof does not fool a CPE with a fresh nonce either.
  Handshake cpe(Role::Cpe, k);
  cpe.first_hello(SessionMode::Multiplexed);
  cpe.on_frame(first.conc.reply_hello(SessionMode::Multiplexed));
  CHECK(cpe.on_frame(Auth{first.conc.proof()}) == Handshake::Step::Failed);
}

TEST_CASE("frames before authentication are rejected", "[auth]") {
  auto k = key_of(3);
  SECTION("concentrator: data instead of HELLO") {
    Handshake c(Role::Concentrator, k);
    CHECK(c.on_frame(Data{1, {}}) == Handshake::Step::Failed);
    CHECK(c.failure() == AuthFailure::Unexpected);
  }
  SECTION("concentrator: OPEN between HELLO and AUTH") {
    Handshake cpe(Role::Cpe, k), c(Role::Concentrator, k);
    c.on_frame(cpe.first_hello(SessionMode::Multiplexed));
    CHECK(c.on_frame(Keepalive{true}) == Handshake::Step::Failed);
    CHECK(c.failure() == AuthFailure::Unexpected);
  }
  SECTION("a HELLO from the wrong role") {
    Handshake c(Role::Concentrator, k);
    CHECK(c.on_frame(Hello{kVersion, Role::Concentrator, SessionMode::Multiplexed, kCapAuth, {}}) ==
          Handshake::Step::Failed);
  }
  SECTION("CPE: AUTH before the concentrator's HELLO, data before its AUTH") {
    Handshake cpe(Role::Cpe, k);
    cpe.first_hello(SessionMode::Multiplexed);
    CHECK(cpe.on_frame(Auth{}) == Handshake::Step::Failed);
    Handshake cpe2(Role::Cpe, k), c(Role::Concentrator, k);
    c.on_frame(cpe2.first_hello(SessionMode::Multiplexed));
    cpe2.on_frame(c.reply_hello(SessionMode::Multiplexed));
    CHECK(cpe2.on_frame(Data{5, {}}) == Handshake::Step::Failed);
  }
}

TEST_CASE("a key on one side only", "[auth]") {
  const std::vector<std::uint8_t> none;
  Handshake cpe_none(Role::Cpe, none), conc_key(Role::Concentrator, key_of(4));
  const Hello plain = cpe_none.first_hello(SessionMode::Multiplexed);
  CHECK(plain.capabilities == 0);
  CHECK(conc_key.on_frame(plain) == Handshake::Step::Failed);
  CHECK(conc_key.failure() == AuthFailure::PeerNoAuth);

  Handshake cpe_key(Role::Cpe, key_of(4)), conc_none(Role::Concentrator, none);
  CHECK(conc_none.on_frame(cpe_key.first_hello(SessionMode::Multiplexed)) ==
        Handshake::Step::Failed);
  CHECK(conc_none.failure() == AuthFailure::PeerWantsAuth);

  // auth: none on both: HELLOs only, as in protocol version 1 without the capability.
  Handshake a(Role::Cpe, none), b(Role::Concentrator, none);
  CHECK(b.on_frame(a.first_hello(SessionMode::Multiplexed)) == Handshake::Step::SendChallenge);
  CHECK(b.done());
  CHECK(!b.authenticating());
  CHECK(a.on_frame(b.reply_hello(SessionMode::Multiplexed)) == Handshake::Step::Consumed);
  CHECK(a.done());
}

TEST_CASE("AUTH and HELLO framing", "[auth][wire]") {
  Auth a;
  a.mac.fill(0xab);
  std::vector<std::uint8_t> b(encoded_size(a));
  REQUIRE(b.size() == 36);
  REQUIRE(encode(a, b) == 36);
  CHECK(b[0] == 7);
  CHECK(b[2] == 0);
  CHECK(b[3] == 32);
  SECTION("truncated AUTH waits, then a short length is refused") {
    CHECK(decode(std::span(b).first(20)).status == DecodeStatus::NeedMore);
    auto t = b;
    t[3] = 31;
    CHECK(decode(t).status == DecodeStatus::BadLength);
  }
  SECTION("oversized AUTH is refused from the header alone") {
    auto t = b;
    t[3] = 33;
    CHECK(decode(std::span(t).first(4)).status == DecodeStatus::BadLength);
  }
  SECTION("AUTH with flags") {
    auto t = b;
    t[1] = 1;
    CHECK(decode(t).status == DecodeStatus::BadFlags);
  }
  SECTION("HELLO with the AUTH bit carries the nonce") {
    Hello h{kVersion, Role::Cpe, SessionMode::Multiplexed, kCapAuth, {}};
    h.nonce.fill(0x5a);
    std::vector<std::uint8_t> hb(encoded_size(h));
    REQUIRE(hb.size() == 4 + 42);
    REQUIRE(encode(h, hb) == hb.size());
    Decoded d = decode(hb);
    REQUIRE(d.status == DecodeStatus::Ok);
    CHECK(std::get<Hello>(d.frame).nonce == h.nonce);
    // The bit without room for the nonce is malformed.
    hb[3] = 10;
    hb.resize(14);
    CHECK(decode(hb).status == DecodeStatus::BadLength);
  }
}

TEST_CASE("log limiter: one line per second per reason", "[auth]") {
  LogLimiter l;
  std::uint64_t held = 99;
  CHECK(l.allow(AuthFailure::WrongKey, 100.0, &held));
  CHECK(held == 0);
  CHECK(!l.allow(AuthFailure::WrongKey, 100.2, &held));
  CHECK(!l.allow(AuthFailure::WrongKey, 100.9, &held));
  CHECK(l.allow(AuthFailure::Timeout, 100.9, &held));  // another reason, its own budget
  CHECK(l.allow(AuthFailure::WrongKey, 101.0, &held));
  CHECK(held == 2);
  CHECK(LogLimiter::note(0).empty());
  CHECK(LogLimiter::note(2) == " (2 more like it not logged)");
}

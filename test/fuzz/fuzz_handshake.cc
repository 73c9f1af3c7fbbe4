// The key handshake (wire/auth.h) against arbitrary frames. The input's first byte picks
// a scenario, the rest is a frame stream as a connection would decode it:
//   0: an attacker without the key talks to a concentrator that has one. Whatever it
//      sends, the handshake must never complete and nothing may be delivered.
//   1: an attacker plays the concentrator to a CPE with a key: the CPE must never
//      authenticate, and never before the attacker's HELLO.
//   2: an honest exchange (same key, or keys differing in one byte, per the second byte)
//      followed by the stream fed to the concentrator: the right key completes and the
//      wrong one fails with WrongKey; after completion HELLO and AUTH are refused and
//      everything else is delivered.
//   3: `auth: none` on the concentrator: done exactly when a CPE HELLO without the AUTH
//      bit arrives first.
// In every scenario Failed is final.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <variant>
#include <vector>

#include "wire/auth.h"
#include "wire/frame.h"

using namespace mpudp::wire;

namespace {

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "fuzz_handshake: %s\n", what);
  std::abort();
}

// Calls f(frame) for each frame of `in`, as Connection::read_frames would, until the
// stream ends or stops decoding (the connection would be closed there).
template <typename F>
void each_frame(std::span<const std::uint8_t> in, F&& f) {
  while (!in.empty()) {
    const Decoded d = decode(in);
    if (d.status != DecodeStatus::Ok) return;
    if (!f(d.frame)) return;
    in = in.subspan(d.consumed);
  }
}

// Feeds one frame and checks the invariants every state machine keeps.
Handshake::Step feed(Handshake& hs, const Frame& f) {
  const bool was_done = hs.done();
  const bool was_failed = hs.failed();
  const Handshake::Step s = hs.on_frame(f);
  if (was_failed && s != Handshake::Step::Failed) fail("Failed is not final");
  if (s == Handshake::Step::Deliver && !was_done) fail("delivered before the handshake");
  if (s == Handshake::Step::Failed && hs.failure() == AuthFailure::None) fail("no reason");
  if (was_done && (std::holds_alternative<Hello>(f) || std::holds_alternative<Auth>(f)) &&
      s != Handshake::Step::Failed)
    fail("a second HELLO or AUTH was accepted");
  return s;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const bool init = auth_init();
  if (!init) fail("auth_init");
  if (size < 2) return 0;
  const std::uint8_t scenario = data[0] % 4;
  const std::uint8_t variant = data[1];
  std::span<const std::uint8_t> in(data + 2, size - 2);
  const std::vector<std::uint8_t> key(32, 0x42);

  switch (scenario) {
    case 0: {
      Handshake conc(Role::Concentrator, key);
      each_frame(in, [&](const Frame& f) {
        const auto s = feed(conc, f);
        if (conc.done()) fail("an attacker without the key completed the handshake");
        return s != Handshake::Step::Failed;
      });
      break;
    }
    case 1: {
      Handshake cpe(Role::Cpe, key);
      cpe.first_hello(SessionMode::Multiplexed);
      bool saw_hello = false;
      each_frame(in, [&](const Frame& f) {
        const auto s = feed(cpe, f);
        if (s == Handshake::Step::Authenticated) fail("a CPE trusted a forged proof");
        if (std::holds_alternative<Hello>(f) && s != Handshake::Step::Failed) saw_hello = true;
        if (!saw_hello && s != Handshake::Step::Failed && std::holds_alternative<Auth>(f))
          fail("AUTH accepted before HELLO");
        return s != Handshake::Step::Failed;
      });
      break;
    }
    case 2: {
      std::vector<std::uint8_t> cpe_key = key;
      const bool wrong = (variant & 1) != 0;
      if (wrong) cpe_key[variant % 32] ^= 0x01;
      const auto mode = (variant & 2) ? SessionMode::PerBinding : SessionMode::Multiplexed;
      Handshake cpe(Role::Cpe, cpe_key), conc(Role::Concentrator, key);
      if (feed(conc, cpe.first_hello(mode)) != Handshake::Step::SendChallenge)
        fail("an honest HELLO was refused");
      if (feed(cpe, conc.reply_hello(mode)) != Handshake::Step::Consumed)
        fail("the concentrator's HELLO was refused");
      const auto s = feed(cpe, Auth{conc.proof()});
      if (wrong) {
        if (s != Handshake::Step::Failed || cpe.failure() != AuthFailure::WrongKey)
          fail("a wrong key was not detected by the CPE");
        // A CPE that answers anyway (with its own key) is refused as well.
        if (feed(conc, Auth{cpe_proof(cpe_key, conc.reply_hello(mode).nonce,
                                      cpe.own_nonce())}) != Handshake::Step::Failed)
          fail("a wrong key was not detected by the concentrator");
        break;
      }
      if (s != Handshake::Step::Authenticated) fail("the right key was refused by the CPE");
      if (feed(conc, Auth{cpe.proof()}) != Handshake::Step::Consumed || !conc.done())
        fail("the right key was refused by the concentrator");
      each_frame(in, [&](const Frame& f) {
        const auto st = feed(conc, f);
        const bool handshake_frame =
            std::holds_alternative<Hello>(f) || std::holds_alternative<Auth>(f);
        if (!handshake_frame && st != Handshake::Step::Deliver) fail("data refused after auth");
        return st != Handshake::Step::Failed;
      });
      break;
    }
    default: {
      Handshake conc(Role::Concentrator, std::span<const std::uint8_t>{});
      bool first = true;
      each_frame(in, [&](const Frame& f) {
        const auto s = feed(conc, f);
        if (first) {
          const auto* h = std::get_if<Hello>(&f);
          // Version 1 only: this handshake is the clear-text one; the decoder also passes
          // version 2 (the HELLO inside TLS), which it must refuse.
          const bool good = h != nullptr && h->version == kVersion && h->role == Role::Cpe &&
                            (h->capabilities & kCapAuth) == 0;
          if (good != (s == Handshake::Step::SendChallenge && conc.done()))
            fail("auth: none accepted the wrong first frame, or refused the right one");
        }
        first = false;
        return s != Handshake::Step::Failed;
      });
      break;
    }
  }
  return 0;
}

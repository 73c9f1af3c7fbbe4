// Mutual authentication with a pre-shared key, as pure logic: the proofs and the
// per-connection handshake state machine (which frames are allowed in which state). No
// sockets, no clock: the connection code feeds decoded frames in and acts on the answer,
// so the whole exchange is unit-tested and fuzzed on its own. docs/PROTOCOL.md,
// "Authentication", is the description.
//
//   CPE -> HELLO(kCapAuth, nonce_c)
//   concentrator -> HELLO(kCapAuth, nonce_s), AUTH(HMAC(psk, "mpudp concentrator" | nonce_c | nonce_s))
//   CPE verifies, then -> AUTH(HMAC(psk, "mpudp cpe" | nonce_s | nonce_c)), data frames
//   concentrator verifies, and only then acts on OPEN, DATA, ...
//
// Crypto is OpenSSL's libcrypto, as for TLS (HMAC-SHA256, CRYPTO_memcmp, RAND_bytes).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "wire/frame.h"

namespace mpudp::wire {

// Shortest key accepted: 256 bits, the HMAC-SHA256 block of strength.
inline constexpr std::size_t kMinKeySize = 32;

// False when OpenSSL has no HMAC or no entropy source; nothing here is usable then.
bool auth_init();

// A fresh random nonce (RAND_bytes).
Nonce random_nonce();
// A fresh random express token (RAND_bytes), never 0 (0 asks for one).
std::uint64_t random_token();

// The two proofs. Distinct labels and nonce orders, so neither side's proof can be
// reflected back as the other's.
Mac concentrator_proof(std::span<const std::uint8_t> key, const Nonce& nonce_c,
                       const Nonce& nonce_s);
Mac cpe_proof(std::span<const std::uint8_t> key, const Nonce& nonce_s, const Nonce& nonce_c);
// Constant-time comparison.
bool same_mac(const Mac& a, const Mac& b);

// Why a handshake failed; also the rate-limit bucket of the log line that reports it.
enum class AuthFailure : std::uint8_t {
  None,
  WrongKey,       // the peer's proof did not verify: another key
  PeerNoAuth,     // we have a key, the peer's HELLO does not announce kCapAuth
  PeerWantsAuth,  // we run `auth: none`, the peer announces kCapAuth
  Unexpected,     // a frame not allowed in this state (no HELLO first, data before AUTH)
  WrongVersion,   // the peer's HELLO says version 1 inside TLS, or 2 in clear text
  Timeout,        // not reported by Handshake: the caller's deadline passed first
  Closed,         // not reported by Handshake: the connection ended (framing error,
                  // peer gone) before the handshake completed
  kCount
};
const char* to_string(AuthFailure f);

class Handshake {
 public:
  enum class Step : std::uint8_t {
    Deliver,        // handshake complete earlier: the caller handles the frame as usual
    Consumed,       // part of the handshake, nothing to do
    SendChallenge,  // concentrator: HELLO accepted; send reply_hello() then, if
                    // authenticating(), AUTH{proof()}
    Authenticated,  // CPE: the concentrator proved the key; send AUTH{proof()}, release
    Failed,         // close the connection; failure() says why
  };

  Handshake() = default;  // a CPE with `auth: none`; assign a real one before use
  // `key` empty: `auth: none`. The key is copied: a reload may replace the configured
  // one while connections made with the old key still finish their handshake.
  // `version`: kVersionTls on a TLS connection (then `key` is empty: TLS authenticated
  // both ends), kVersion in clear text.
  Handshake(Role self, std::span<const std::uint8_t> key, std::uint8_t version = kVersion);

  // The CPE's first frame (with a fresh nonce when authenticating).
  Hello first_hello(SessionMode mode);
  // The concentrator's answer to the CPE's HELLO (valid after SendChallenge).
  Hello reply_hello(SessionMode mode) const;

  Step on_frame(const Frame& f);

  bool authenticating() const { return !key_.empty(); }
  // Handshake finished: the peer may now send anything.
  bool done() const { return state_ == State::Done; }
  bool failed() const { return state_ == State::Failed; }
  AuthFailure failure() const { return failure_; }
  // Our proof, once SendChallenge or Authenticated has been returned.
  const Mac& proof() const { return proof_; }
  // Our nonce (for tools that play a misbehaving peer).
  const Nonce& own_nonce() const { return own_nonce_; }
  // The peer's HELLO (mode, version), once seen.
  const Hello& peer_hello() const { return peer_hello_; }

 private:
  enum class State : std::uint8_t { AwaitHello, AwaitAuth, Done, Failed };
  Step fail(AuthFailure why);
  Step on_hello(const Hello& h);

  Role self_ = Role::Cpe;
  std::uint8_t version_ = kVersion;
  std::vector<std::uint8_t> key_;
  State state_ = State::AwaitHello;
  AuthFailure failure_ = AuthFailure::None;
  Nonce own_nonce_{};
  Nonce peer_nonce_{};
  Mac proof_{};
  Hello peer_hello_{};
};

// At most one log line per second per reason; the rest are counted and reported with
// the next line that is let through. Time is passed in, so this stays pure.
class LogLimiter {
 public:
  // True when a line may be logged now; `*suppressed` is the number of lines held back
  // for this reason since the last one (then reset).
  bool allow(AuthFailure why, double now_s, std::uint64_t* suppressed);
  // " (N more like it not logged)", or "" when N is 0: the tail of the line let through.
  static std::string note(std::uint64_t suppressed);

 private:
  struct Bucket {
    double last = -1e9;
    std::uint64_t held = 0;
  };
  Bucket buckets_[static_cast<std::size_t>(AuthFailure::kCount)];
};

}  // namespace mpudp::wire

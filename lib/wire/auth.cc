#include "wire/auth.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include <cstdlib>
#include <cstring>
#include <string_view>

namespace mpudp::wire {
namespace {

constexpr std::string_view kConcentratorLabel = "mpudp concentrator";
constexpr std::string_view kCpeLabel = "mpudp cpe";

// The HMAC implementation, fetched once (OpenSSL 3's provider lookup is not free).
EVP_MAC* hmac_impl() {
  static EVP_MAC* mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  return mac;
}

// HMAC-SHA256(key, label | first | second). A MAC that cannot be computed (OpenSSL
// failing inside) comes out as all zeros, which no peer's proof equals by chance: the
// handshake then fails as a wrong key instead of passing.
Mac hmac(std::span<const std::uint8_t> key, std::string_view label, const Nonce& first,
         const Nonce& second) {
  Mac out{};
  EVP_MAC_CTX* ctx = hmac_impl() != nullptr ? EVP_MAC_CTX_new(hmac_impl()) : nullptr;
  if (ctx == nullptr) return out;
  char digest[] = "SHA256";
  const OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0), OSSL_PARAM_construct_end()};
  std::size_t len = 0;
  const bool ok =
      EVP_MAC_init(ctx, key.data(), key.size(), params) == 1 &&
      EVP_MAC_update(ctx, reinterpret_cast<const unsigned char*>(label.data()), label.size()) == 1 &&
      EVP_MAC_update(ctx, first.data(), first.size()) == 1 &&
      EVP_MAC_update(ctx, second.data(), second.size()) == 1 &&
      EVP_MAC_final(ctx, out.data(), &len, out.size()) == 1 && len == out.size();
  EVP_MAC_CTX_free(ctx);  // cleanses the key schedule
  if (!ok) out.fill(0);
  return out;
}

void random_bytes(void* p, std::size_t n) {
  // RAND_bytes fails only without an entropy source, which auth_init() checked at start.
  if (RAND_bytes(static_cast<unsigned char*>(p), static_cast<int>(n)) != 1) std::abort();
}

}  // namespace

bool auth_init() {
  unsigned char probe[16];
  return hmac_impl() != nullptr && RAND_bytes(probe, sizeof probe) == 1;
}

Nonce random_nonce() {
  Nonce n{};
  random_bytes(n.data(), n.size());
  return n;
}

std::uint64_t random_token() {
  std::uint64_t t = 0;
  while (t == 0) random_bytes(&t, sizeof t);
  return t;
}

Mac concentrator_proof(std::span<const std::uint8_t> key, const Nonce& nonce_c,
                       const Nonce& nonce_s) {
  return hmac(key, kConcentratorLabel, nonce_c, nonce_s);
}

Mac cpe_proof(std::span<const std::uint8_t> key, const Nonce& nonce_s, const Nonce& nonce_c) {
  return hmac(key, kCpeLabel, nonce_s, nonce_c);
}

bool same_mac(const Mac& a, const Mac& b) { return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0; }

const char* to_string(AuthFailure f) {
  switch (f) {
    case AuthFailure::None: return "none";
    case AuthFailure::WrongKey: return "wrong key (the peer's proof does not verify)";
    case AuthFailure::PeerNoAuth:
      return "the peer does not authenticate (auth: none on its side?)";
    case AuthFailure::PeerWantsAuth:
      return "the peer requires a pre-shared key and this side has auth: none";
    case AuthFailure::Unexpected: return "unexpected frame before authentication";
    case AuthFailure::WrongVersion:
      return "the peer's HELLO is of the other protocol version (1 is clear text, 2 inside TLS)";
    case AuthFailure::Timeout: return "no handshake before the deadline";
    case AuthFailure::Closed: return "connection ended before authentication";
    case AuthFailure::kCount: break;
  }
  return "?";
}

Handshake::Handshake(Role self, std::span<const std::uint8_t> key, std::uint8_t version)
    : self_(self), version_(version), key_(key.begin(), key.end()) {}

Hello Handshake::first_hello(SessionMode mode) {
  Hello h{version_, self_, mode, 0, {}};
  if (authenticating()) {
    own_nonce_ = random_nonce();
    h.capabilities = kCapAuth;
    h.nonce = own_nonce_;
  }
  return h;
}

Hello Handshake::reply_hello(SessionMode mode) const {
  Hello h{version_, self_, mode, 0, {}};
  if (authenticating()) {
    h.capabilities = kCapAuth;
    h.nonce = own_nonce_;
  }
  return h;
}

Handshake::Step Handshake::fail(AuthFailure why) {
  state_ = State::Failed;
  failure_ = why;
  return Step::Failed;
}

Handshake::Step Handshake::on_hello(const Hello& h) {
  const Role expected = self_ == Role::Cpe ? Role::Concentrator : Role::Cpe;
  if (h.role != expected) return fail(AuthFailure::Unexpected);
  if (h.version != version_) return fail(AuthFailure::WrongVersion);
  peer_hello_ = h;
  const bool peer_auth = (h.capabilities & kCapAuth) != 0;
  if (authenticating() && !peer_auth) return fail(AuthFailure::PeerNoAuth);
  if (!authenticating() && peer_auth) return fail(AuthFailure::PeerWantsAuth);
  if (!authenticating()) {
    state_ = State::Done;
    return self_ == Role::Concentrator ? Step::SendChallenge : Step::Consumed;
  }
  peer_nonce_ = h.nonce;
  state_ = State::AwaitAuth;
  if (self_ == Role::Concentrator) {
    // A fresh nonce per connection: a CPE proof recorded on an earlier connection was
    // computed over another nonce_s and does not verify here.
    own_nonce_ = random_nonce();
    proof_ = concentrator_proof(key_, peer_nonce_, own_nonce_);
    return Step::SendChallenge;
  }
  return Step::Consumed;
}

Handshake::Step Handshake::on_frame(const Frame& f) {
  switch (state_) {
    case State::AwaitHello: {
      const auto* h = std::get_if<Hello>(&f);
      if (h == nullptr) return fail(AuthFailure::Unexpected);
      return on_hello(*h);
    }
    case State::AwaitAuth: {
      const auto* a = std::get_if<Auth>(&f);
      if (a == nullptr) return fail(AuthFailure::Unexpected);
      const Mac want = self_ == Role::Cpe ? concentrator_proof(key_, own_nonce_, peer_nonce_)
                                          : cpe_proof(key_, own_nonce_, peer_nonce_);
      if (!same_mac(want, a->mac)) return fail(AuthFailure::WrongKey);
      state_ = State::Done;
      if (self_ == Role::Cpe) {
        proof_ = cpe_proof(key_, peer_nonce_, own_nonce_);
        return Step::Authenticated;
      }
      return Step::Consumed;
    }
    case State::Done:
      // HELLO and AUTH happen once per connection, in the handshake.
      if (std::holds_alternative<Hello>(f) || std::holds_alternative<Auth>(f))
        return fail(AuthFailure::Unexpected);
      return Step::Deliver;
    case State::Failed:
      return Step::Failed;
  }
  return fail(AuthFailure::Unexpected);
}

bool LogLimiter::allow(AuthFailure why, double now_s, std::uint64_t* suppressed) {
  auto i = static_cast<std::size_t>(why);
  if (i >= static_cast<std::size_t>(AuthFailure::kCount)) i = 0;
  Bucket& b = buckets_[i];
  if (now_s - b.last < 1.0) {
    ++b.held;
    return false;
  }
  b.last = now_s;
  if (suppressed != nullptr) *suppressed = b.held;
  b.held = 0;
  return true;
}

std::string LogLimiter::note(std::uint64_t suppressed) {
  if (suppressed == 0) return {};
  return " (" + std::to_string(suppressed) + " more like it not logged)";
}

}  // namespace mpudp::wire

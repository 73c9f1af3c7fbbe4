#include "tunnel/tls.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cstring>
#include <mutex>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#elif defined(__aarch64__) || defined(__arm__)
#include <sys/auxv.h>
#endif

namespace mpudp {

namespace {

constexpr const char* kAes = "TLS_AES_128_GCM_SHA256";
constexpr const char* kChaCha = "TLS_CHACHA20_POLY1305_SHA256";
// Both suites hash with SHA-256, so one external PSK serves either; AES-256 (SHA-384)
// would need a second binder per identity and buys nothing against a 256-bit PSK.
constexpr unsigned char kPskCipherId[2] = {0x13, 0x01};

// Names from certificates and identities from ClientHellos end up in log lines.
std::string printable(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size() && i < 128; ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    out += (c >= 0x20 && c < 0x7f) ? static_cast<char>(c) : '?';
  }
  if (s.size() > 128) out += "...";
  return out;
}

// The CPE's name in its certificate: the first DNS subjectAltName, else the commonName.
std::string certificate_name(X509* cert) {
  if (cert == nullptr) return {};
  auto* names =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  std::string out;
  if (names != nullptr) {
    for (int i = 0; i < sk_GENERAL_NAME_num(names) && out.empty(); ++i) {
      const GENERAL_NAME* n = sk_GENERAL_NAME_value(names, i);
      if (n->type != GEN_DNS) continue;
      const auto* s = n->d.dNSName;
      out.assign(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                 static_cast<std::size_t>(ASN1_STRING_length(s)));
    }
    GENERAL_NAMES_free(names);
  }
  if (out.empty()) {
    X509_NAME* subject = X509_get_subject_name(cert);
    int idx = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
    if (idx >= 0) {
      ASN1_STRING* s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, idx));
      unsigned char* utf8 = nullptr;
      int n = ASN1_STRING_to_UTF8(&utf8, s);
      if (n > 0) out.assign(reinterpret_cast<char*>(utf8), static_cast<std::size_t>(n));
      OPENSSL_free(utf8);
    }
  }
  return printable(out);
}

std::string openssl_error() {
  unsigned long e = ERR_peek_last_error();
  std::string out;
  if (e != 0) {
    const char* r = ERR_reason_error_string(e);
    out = r != nullptr ? r : "error " + std::to_string(ERR_GET_REASON(e));
  }
  ERR_clear_error();
  return out;
}

TlsFailure from_verify_result(long v) {
  switch (v) {
    case X509_V_OK: return TlsFailure::None;
    case X509_V_ERR_CERT_HAS_EXPIRED:
    case X509_V_ERR_CERT_NOT_YET_VALID: return TlsFailure::CertExpired;
    case X509_V_ERR_CERT_REVOKED: return TlsFailure::CertRevoked;
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_CERT_SIGNATURE_FAILURE: return TlsFailure::UnknownCa;
    default: return TlsFailure::BadCertificate;
  }
}

// A TLS alert the peer sent, as a reason. Which ones OpenSSL sends for what is in
// ssl/statem (ssl_x509err2alert for certificates, SSL_AD_DECRYPT_ERROR for a binder).
TlsFailure from_alert(int desc, bool certificate_mode) {
  switch (desc) {
    case SSL3_AD_CLOSE_NOTIFY: return TlsFailure::Closed;
    case SSL3_AD_BAD_RECORD_MAC: return TlsFailure::BadRecord;
    case SSL3_AD_CERTIFICATE_EXPIRED: return TlsFailure::CertExpired;
    case SSL3_AD_CERTIFICATE_REVOKED: return TlsFailure::CertRevoked;
    case TLS1_AD_UNKNOWN_CA: return TlsFailure::UnknownCa;
    case SSL3_AD_BAD_CERTIFICATE:
    case SSL3_AD_UNSUPPORTED_CERTIFICATE:
    case SSL3_AD_CERTIFICATE_UNKNOWN:
    case TLS13_AD_CERTIFICATE_REQUIRED: return TlsFailure::BadCertificate;
    // A PSK server that finds no identity it knows has no other way in, and says only this.
    case SSL3_AD_HANDSHAKE_FAILURE:
      return certificate_mode ? TlsFailure::Protocol : TlsFailure::UnknownIdentity;
    case TLS1_AD_UNKNOWN_PSK_IDENTITY: return TlsFailure::UnknownIdentity;
    // OpenSSL 3.0 answers a binder that does not verify with illegal_parameter (the RFC
    // says decrypt_error, which later versions send); between two mpudp ends in PSK
    // mode, the binder is what it refers to.
    case TLS1_AD_DECRYPT_ERROR:
    case SSL3_AD_ILLEGAL_PARAMETER:
      return certificate_mode ? TlsFailure::BadCertificate : TlsFailure::WrongKey;
    default: return TlsFailure::Protocol;
  }
}

// One BIO method for every session: reads from the span the current call handed in,
// appends to the buffer it named. Nothing is buffered here; partial records are
// OpenSSL's to keep.
BIO_METHOD* transport_method();

}  // namespace

struct TlsCallbacks {
  static TlsSession* session(SSL* ssl) { return static_cast<TlsSession*>(SSL_get_app_data(ssl)); }

  static int bio_write(BIO* b, const char* data, int len) {
    auto* s = static_cast<TlsSession*>(BIO_get_data(b));
    BIO_clear_retry_flags(b);
    if (s == nullptr || s->out_ == nullptr || len < 0) return -1;
    const auto* p = reinterpret_cast<const std::uint8_t*>(data);
    s->out_->insert(s->out_->end(), p, p + len);
    return len;
  }

  static int bio_read(BIO* b, char* data, int len) {
    auto* s = static_cast<TlsSession*>(BIO_get_data(b));
    BIO_clear_retry_flags(b);
    if (s == nullptr || len <= 0) return 0;
    std::size_t left = s->in_.size() - s->in_used_;
    if (left == 0) {
      BIO_set_retry_read(b);
      return -1;
    }
    std::size_t n = std::min(left, static_cast<std::size_t>(len));
    std::memcpy(data, s->in_.data() + s->in_used_, n);
    s->in_used_ += n;
    return static_cast<int>(n);
  }

  static long bio_ctrl(BIO*, int cmd, long, void*) {
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;
  }

  static int bio_create(BIO* b) {
    BIO_set_init(b, 1);
    return 1;
  }

  static void info(const SSL* ssl, int where, int ret) {
    if ((where & SSL_CB_ALERT) == 0) return;
    auto* s = session(const_cast<SSL*>(ssl));
    if (s == nullptr) return;
    if ((where & SSL_CB_READ) != 0) s->alert_received_ = ret & 0xff;
    else s->alert_sent_ = ret & 0xff;
  }

  static SSL_SESSION* psk_session(SSL* ssl, const std::string& key) {
    const SSL_CIPHER* cipher = SSL_CIPHER_find(ssl, kPskCipherId);
    SSL_SESSION* sess = SSL_SESSION_new();
    if (cipher == nullptr || sess == nullptr ||
        !SSL_SESSION_set1_master_key(sess, reinterpret_cast<const unsigned char*>(key.data()),
                                     key.size()) ||
        !SSL_SESSION_set_cipher(sess, cipher) ||
        !SSL_SESSION_set_protocol_version(sess, TLS1_3_VERSION)) {
      SSL_SESSION_free(sess);
      return nullptr;
    }
    return sess;
  }

  // Client: the external PSK to offer. OpenSSL owns the returned session.
  static int psk_use(SSL* ssl, const EVP_MD* md, const unsigned char** id, std::size_t* idlen,
                     SSL_SESSION** out) {
    *out = nullptr;
    TlsSession* s = session(ssl);
    if (s == nullptr) return 0;
    const TlsSettings& cfg = s->ctx_->settings_;
    // A HelloRetryRequest fixes the hash; ours is always SHA-256.
    if (md != nullptr && EVP_MD_get_type(md) != NID_sha256) return 1;
    SSL_SESSION* sess = psk_session(ssl, cfg.psk);
    if (sess == nullptr) return 0;
    *id = reinterpret_cast<const unsigned char*>(cfg.identity.data());
    *idlen = cfg.identity.size();
    *out = sess;
    return 1;
  }

  // Server: the key of an identity. An unknown one (or a ticket, which OpenSSL also shows
  // us first) gets no session; the handshake then fails unless a ticket matches.
  static int psk_find(SSL* ssl, const unsigned char* id, std::size_t idlen, SSL_SESSION** out) {
    *out = nullptr;
    TlsSession* s = session(ssl);
    if (s == nullptr) return 0;
    std::string name(reinterpret_cast<const char*>(id), idlen);
    const auto& peers = s->ctx_->settings_.peers;
    auto it = peers.find(name);
    if (it == peers.end()) {
      if (s->unknown_identity_.empty()) s->unknown_identity_ = printable(name);
      s->pending_ = TlsFailure::UnknownIdentity;
      return 1;
    }
    *out = psk_session(ssl, it->second);
    if (*out == nullptr) return 0;
    s->identity_ = name;
    return 1;
  }

  // Server: tickets carry the identity they were issued to, so a resumed session knows
  // it, and an identity since removed cannot resume.
  static int ticket_gen(SSL* ssl, void*) {
    TlsSession* s = session(ssl);
    if (s == nullptr) return 0;
    // Tickets go out before SSL_do_handshake returns, so before on_established.
    if (s->identity_.empty()) s->identity_ = certificate_name(SSL_get0_peer_certificate(ssl));
    return SSL_SESSION_set1_ticket_appdata(SSL_get_session(ssl), s->identity_.data(),
                                           s->identity_.size());
  }

  static SSL_TICKET_RETURN ticket_dec(SSL* ssl, SSL_SESSION* sess, const unsigned char*,
                                      std::size_t, SSL_TICKET_STATUS status, void*) {
    switch (status) {
      case SSL_TICKET_EMPTY:
      case SSL_TICKET_NO_DECRYPT: return SSL_TICKET_RETURN_IGNORE_RENEW;
      case SSL_TICKET_SUCCESS:
      case SSL_TICKET_SUCCESS_RENEW: break;
      default: return SSL_TICKET_RETURN_ABORT;
    }
    TlsSession* s = session(ssl);
    void* data = nullptr;
    std::size_t len = 0;
    if (s == nullptr || !SSL_SESSION_get0_ticket_appdata(sess, &data, &len) || len == 0)
      return SSL_TICKET_RETURN_IGNORE_RENEW;
    std::string name(static_cast<const char*>(data), len);
    if (!s->ctx_->certificate_mode() && s->ctx_->settings_.peers.count(name) == 0)
      return SSL_TICKET_RETURN_IGNORE_RENEW;
    s->identity_ = name;
    s->ticket_accepted_ = true;
    return SSL_TICKET_RETURN_USE;
  }

  // Client: keep the newest ticket for the next connection.
  static int new_session(SSL* ssl, SSL_SESSION* sess) {
    TlsSession* s = session(ssl);
    if (s == nullptr || !s->ctx_->settings_.resumption) return 0;
    SSL_SESSION_free(s->ctx_->ticket_);
    s->ctx_->ticket_ = sess;
    return 1;  // we keep the reference
  }
};

namespace {

BIO_METHOD* transport_method() {
  static BIO_METHOD* method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "mpudp-transport");
    if (m != nullptr) {
      BIO_meth_set_write(m, TlsCallbacks::bio_write);
      BIO_meth_set_read(m, TlsCallbacks::bio_read);
      BIO_meth_set_ctrl(m, TlsCallbacks::bio_ctrl);
      BIO_meth_set_create(m, TlsCallbacks::bio_create);
    }
    return m;
  }();
  return method;
}

bool load_crls(X509_STORE* store, const std::string& path, std::string& error) {
  BIO* in = BIO_new_file(path.c_str(), "r");
  if (in == nullptr) {
    error = "crl_file " + path + ": cannot read: " + openssl_error();
    return false;
  }
  int count = 0;
  while (X509_CRL* crl = PEM_read_bio_X509_CRL(in, nullptr, nullptr, nullptr)) {
    X509_STORE_add_crl(store, crl);
    X509_CRL_free(crl);
    ++count;
  }
  BIO_free(in);
  ERR_clear_error();  // the loop ends on "no start line"
  if (count == 0) {
    error = "crl_file " + path + ": no PEM CRL in it";
    return false;
  }
  X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK);
  return true;
}

}  // namespace

bool cpu_has_aes() {
#if defined(__x86_64__) || defined(__i386__)
  unsigned a = 0, b = 0, c = 0, d = 0;
  // CPUID.1:ECX bit 25 is AES-NI; GCM needs PCLMULQDQ (bit 1) to be fast as well.
  if (__get_cpuid(1, &a, &b, &c, &d) == 0) return false;
  return (c & (1u << 25)) != 0 && (c & (1u << 1)) != 0;
#elif defined(__aarch64__)
  return (getauxval(AT_HWCAP) & (1ul << 3)) != 0;  // HWCAP_AES
#elif defined(__arm__)
  return (getauxval(AT_HWCAP2) & 1ul) != 0;  // HWCAP2_AES
#else
  return false;  // MIPS routers and the rest: table AES, much slower than ChaCha20
#endif
}

const char* to_string(TlsFailure f) {
  switch (f) {
    case TlsFailure::None: return "none";
    case TlsFailure::UnknownIdentity: return "unknown identity";
    case TlsFailure::WrongKey: return "wrong key (PSK binder does not verify)";
    case TlsFailure::CertExpired: return "certificate expired or not yet valid";
    case TlsFailure::CertRevoked: return "certificate revoked";
    case TlsFailure::UnknownCa: return "certificate from an unknown CA";
    case TlsFailure::BadCertificate: return "certificate not acceptable";
    case TlsFailure::BadRecord: return "record failed authentication (tampered or replayed)";
    case TlsFailure::Cleartext: return "peer does not speak TLS (cleartext peer?)";
    case TlsFailure::Protocol: return "TLS protocol error";
    case TlsFailure::Closed: return "peer closed the TLS session";
    case TlsFailure::Internal: return "internal TLS error";
    case TlsFailure::kCount: break;
  }
  return "?";
}

TlsContext::~TlsContext() {
  SSL_SESSION_free(ticket_);
  SSL_CTX_free(ctx_);
}

void TlsContext::forget_ticket() {
  SSL_SESSION_free(ticket_);
  ticket_ = nullptr;
}

TlsContext::Result TlsContext::create(const TlsSettings& s) {
  std::shared_ptr<TlsContext> c(new TlsContext(s));
  const bool client = s.role == TlsRole::Client;
  const bool certs = !s.cert_file.empty();
  if (certs) {
    if (s.key_file.empty() || s.ca_file.empty())
      return std::string("certificate mode needs cert_file, key_file and ca_file");
  } else if (client) {
    if (s.identity.empty() || s.psk.empty()) return std::string("PSK mode needs an identity and a key");
  } else if (s.peers.empty()) {
    return std::string("PSK mode needs at least one peer (identity and key)");
  }
  // Tickets pay only where a full handshake costs more than a resumption: certificates
  // (a signature and a chain to verify on each side). An external PSK handshake is
  // already a PSK one with ECDHE, exactly what resuming from a ticket would be; issuing,
  // storing and offering tickets only adds work to every per-binding connection.
  if (!certs) c->settings_.resumption = false;
  const bool tickets = c->settings_.resumption;

  ERR_clear_error();
  c->ctx_ = SSL_CTX_new(client ? TLS_client_method() : TLS_server_method());
  if (c->ctx_ == nullptr) return "cannot create a TLS context: " + openssl_error();
  SSL_CTX* ctx = c->ctx_;
  SSL_CTX_set_app_data(ctx, c.get());
  SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
  SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
  // Without SSL_OP_ALLOW_NO_DHE_KEX OpenSSL offers and accepts psk_dhe_ke only; cleared
  // explicitly because the header comment's promises rest on it.
  SSL_CTX_clear_options(ctx, SSL_OP_ALLOW_NO_DHE_KEX);
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);

  bool aes_first = s.ciphers == TlsCipherPreference::AesGcm ||
                   (s.ciphers == TlsCipherPreference::Auto && cpu_has_aes());
  c->ciphersuites_ = aes_first ? std::string(kAes) + ":" + kChaCha : std::string(kChaCha) + ":" + kAes;
  if (!SSL_CTX_set_ciphersuites(ctx, c->ciphersuites_.c_str()) ||
      !SSL_CTX_set1_groups_list(ctx, "X25519:P-256"))
    return "cannot set the TLS parameters: " + openssl_error();
  // The server follows the client's order (OpenSSL's default): the CPE chose by its CPU.

  if (certs) {
    if (SSL_CTX_use_certificate_chain_file(ctx, s.cert_file.c_str()) != 1)
      return "cert_file " + s.cert_file + ": " + openssl_error();
    if (SSL_CTX_use_PrivateKey_file(ctx, s.key_file.c_str(), SSL_FILETYPE_PEM) != 1)
      return "key_file " + s.key_file + ": " + openssl_error();
    if (SSL_CTX_check_private_key(ctx) != 1)
      return "key_file " + s.key_file + " does not match cert_file " + s.cert_file;
    if (SSL_CTX_load_verify_locations(ctx, s.ca_file.c_str(), nullptr) != 1)
      return "ca_file " + s.ca_file + ": " + openssl_error();
    std::string error;
    if (!s.crl_file.empty() && !load_crls(SSL_CTX_get_cert_store(ctx), s.crl_file, error))
      return error;
    SSL_CTX_set_verify(ctx, client ? SSL_VERIFY_PEER : SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                       nullptr);
  } else if (client) {
    SSL_CTX_set_psk_use_session_callback(ctx, TlsCallbacks::psk_use);
  } else {
    SSL_CTX_set_psk_find_session_callback(ctx, TlsCallbacks::psk_find);
  }

  if (client) {
    // Tickets go to new_session (the context's slot), never to OpenSSL's cache.
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, TlsCallbacks::new_session);
  } else {
    // Stateless tickets only: no server-side cache to grow with the number of CPEs.
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_num_tickets(ctx, tickets ? 1 : 0);
    // OpenSSL refuses to resume a session with a verified client certificate unless
    // the session says which application it belongs to.
    static constexpr unsigned char kSid[] = "mpudp";
    SSL_CTX_set_session_id_context(ctx, kSid, sizeof kSid - 1);
    if (tickets)
      SSL_CTX_set_session_ticket_cb(ctx, TlsCallbacks::ticket_gen, TlsCallbacks::ticket_dec, nullptr);
    else
      SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
  }
  SSL_CTX_set_max_early_data(ctx, 0);  // 0-RTT data is replayable: never
  ERR_clear_error();
  return c;
}

TlsSession::TlsSession(std::shared_ptr<TlsContext> ctx) : ctx_(std::move(ctx)) {}

bool TlsSession::create_ssl() {
  if (ssl_ != nullptr) return true;
  ERR_clear_error();
  BIO_METHOD* method = transport_method();
  ssl_ = method != nullptr ? SSL_new(ctx_->ctx_) : nullptr;
  if (ssl_ != nullptr) bio_ = BIO_new(method);
  if (ssl_ == nullptr || bio_ == nullptr) {
    SSL_free(ssl_);
    ssl_ = nullptr;
    BIO_free(bio_);
    bio_ = nullptr;
    failure_detail_ = openssl_error();
    fail(TlsFailure::Internal, false);
    return false;
  }
  BIO_set_data(bio_, this);
  SSL_set_bio(ssl_, bio_, bio_);  // one reference, now the SSL's
  SSL_set_app_data(ssl_, this);
  SSL_set_info_callback(ssl_, TlsCallbacks::info);
  // Read and write buffers (~17 KiB each) are freed whenever they are empty: a half-open
  // connection holds only what its current flight needs, and so does a light one after
  // the handshake (per-binding sessions number in the thousands, most carry a few
  // datagrams). note_traffic() stops it once a session has carried bulk.
  SSL_set_mode(ssl_, SSL_MODE_RELEASE_BUFFERS);
  const TlsSettings& cfg = ctx_->settings_;
  if (cfg.role == TlsRole::Client) {
    SSL_set_connect_state(ssl_);
    if (!cfg.server_name.empty()) SSL_set1_host(ssl_, cfg.server_name.c_str());
    if (cfg.resumption && ctx_->ticket_ != nullptr && SSL_set_session(ssl_, ctx_->ticket_) == 1)
      offered_ticket_ = ctx_->ticket_;
  } else {
    SSL_set_accept_state(ssl_);
  }
  return true;
}

TlsSession::~TlsSession() { SSL_free(ssl_); }

void TlsSession::fail(TlsFailure f, bool from_peer) {
  if (failure_ != TlsFailure::None) return;
  failure_ = f;
  failure_from_peer_ = from_peer;
}

void TlsSession::fail_from_ssl_error(int ssl_error) {
  std::string detail = openssl_error();
  if (ssl_error == SSL_ERROR_ZERO_RETURN) {
    fail(TlsFailure::Closed, true);
    return;
  }
  failure_detail_ = detail;
  const bool certs = ctx_->certificate_mode();
  if (alert_received_ >= 0) {
    TlsFailure f = from_alert(alert_received_, certs);
    // After the handshake these say the peer got bytes that were not ours: tampering on
    // the way to it.
    if (established_ && (alert_received_ == SSL3_AD_UNEXPECTED_MESSAGE ||
                         alert_received_ == TLS1_AD_DECODE_ERROR ||
                         alert_received_ == TLS1_AD_RECORD_OVERFLOW ||
                         alert_received_ == TLS1_AD_PROTOCOL_VERSION))
      f = TlsFailure::BadRecord;
    fail(f, true);
    return;
  }
  if (!established_ && detail.find("binder") != std::string::npos) {
    failure_detail_ = "identity \"" + printable(identity_) + "\": " + detail;
    fail(TlsFailure::WrongKey, false);
    return;
  }
  if (!established_ && pending_ == TlsFailure::UnknownIdentity && identity_.empty()) {
    failure_detail_ = "identity \"" + unknown_identity_ + "\"";
    fail(TlsFailure::UnknownIdentity, false);
    return;
  }
  if (certs) {
    TlsFailure v = from_verify_result(SSL_get_verify_result(ssl_));
    if (v != TlsFailure::None) {
      failure_detail_ = X509_verify_cert_error_string(SSL_get_verify_result(ssl_));
      fail(v, false);
      return;
    }
  }
  // Once keys are in use, anything OpenSSL rejects on its own (a record that does not
  // decrypt, a clear-text frame spliced in: "wrong version number", a record too long) is
  // bytes someone changed on the way: tampering, counted and named as such.
  if (established_ && ssl_error == SSL_ERROR_SSL) {
    fail(TlsFailure::BadRecord, false);
    return;
  }
  if (detail.find("bad record mac") != std::string::npos ||
      detail.find("decryption failed") != std::string::npos) {
    fail(TlsFailure::BadRecord, false);
    return;
  }
  fail(ssl_error == SSL_ERROR_SSL ? TlsFailure::Protocol : TlsFailure::Internal, false);
}

std::string TlsSession::failure_text() const {
  std::string out = to_string(failure_);
  if (failure_from_peer_ && failure_ != TlsFailure::Closed) out += " (reported by the peer)";
  if (!failure_detail_.empty()) out += ": " + failure_detail_;
  return out;
}

void TlsSession::on_established() {
  established_ = true;
  // Server: the ticket callback said so. Client: a resumed handshake keeps the offered
  // ticket as its session, an external-PSK one swaps in the PSK's (and a NewSessionTicket
  // that would replace it comes only after this point).
  if (SSL_session_reused(ssl_) == 1)
    resumed_ = ctx_->settings_.role == TlsRole::Server
                   ? ticket_accepted_
                   : offered_ticket_ != nullptr && SSL_get0_session(ssl_) == offered_ticket_;
  last_update_ = Clock::now();
  const TlsSettings& cfg = ctx_->settings_;
  if (ctx_->certificate_mode()) {
    X509* peer = SSL_get0_peer_certificate(ssl_);
    peer_cert_name_ = certificate_name(peer);
    if (cfg.role == TlsRole::Client) identity_ = certificate_name(SSL_get_certificate(ssl_));
    else if (identity_.empty()) identity_ = peer_cert_name_;
  } else if (cfg.role == TlsRole::Client) {
    identity_ = cfg.identity;
  }
  pending_ = TlsFailure::None;
}

bool TlsSession::collect_first_record(std::span<const std::uint8_t> in, std::size_t& taken) {
  // Header first (5 bytes), then exactly the body it announces, never more than the cap:
  // the buffer's size is ours, not the peer's.
  std::size_t want = 5;
  if (first_record_.size() >= 5)
    want = 5 + ((std::size_t{first_record_[3]} << 8) | first_record_[4]);
  while (taken < in.size() && first_record_.size() < want) {
    std::size_t n = std::min(in.size() - taken, want - first_record_.size());
    first_record_.insert(first_record_.end(), in.begin() + static_cast<long>(taken),
                         in.begin() + static_cast<long>(taken + n));
    taken += n;
    if (first_record_.size() == 5) {
      std::size_t body = (std::size_t{first_record_[3]} << 8) | first_record_[4];
      if (body == 0 || body > kMaxFirstRecord) {
        failure_detail_ = "first record of " + std::to_string(body) + " bytes";
        fail(TlsFailure::Protocol, false);
        taken = in.size();
        return false;
      }
      want = 5 + body;  // no reserve(): grows only with bytes that came
    }
  }
  return first_record_.size() == want && want > 5;
}

bool TlsSession::drive_handshake() {
  ERR_clear_error();
  int rc = SSL_do_handshake(ssl_);
  if (rc == 1) {
    on_established();
    return true;
  }
  int err = SSL_get_error(ssl_, rc);
  if (err != SSL_ERROR_WANT_READ) fail_from_ssl_error(err);
  ERR_clear_error();
  return false;
}

bool TlsSession::start(std::vector<std::uint8_t>& out) {
  if (failed()) return false;
  if (ctx_->settings_.role != TlsRole::Client) return true;
  if (!create_ssl()) return false;
  out_ = &out;
  drive_handshake();
  out_ = nullptr;
  return !failed();
}

TlsSession::Received TlsSession::receive(std::span<const std::uint8_t> ciphertext,
                                         std::span<std::uint8_t> plaintext,
                                         std::vector<std::uint8_t>& out) {
  Received r;
  if (failed()) return r;
  // The cleartext protocol's HELLO, or anything else not TLS, is refused here by name.
  if (!saw_input_ && !ciphertext.empty()) {
    saw_input_ = true;
    if (!starts_tls(ciphertext[0])) {
      static constexpr std::uint8_t kMagic[] = {0x4d, 0x50, 0x55, 0x44};  // "MPUD"
      if (ciphertext.size() >= 8 && ciphertext[0] == 1 &&
          std::memcmp(ciphertext.data() + 4, kMagic, sizeof kMagic) == 0)
        failure_detail_ = "a cleartext mpudp HELLO (the peer runs encryption: none?)";
      else
        failure_detail_ = std::string("first byte 0x") + "0123456789abcdef"[ciphertext[0] >> 4] +
                          "0123456789abcdef"[ciphertext[0] & 15];
      fail(TlsFailure::Cleartext, false);
      r.consumed = ciphertext.size();
      return r;
    }
  }
  if (ssl_ == nullptr) {
    // Server: no OpenSSL state until a whole first record (the ClientHello) is here.
    std::size_t taken = 0;
    if (!collect_first_record(ciphertext, taken)) {
      r.consumed = taken;
      return r;
    }
    r.consumed = taken;
    if (!create_ssl()) return r;
    // The collected record first, then whatever followed it in this call.
    std::vector<std::uint8_t> first;
    first.swap(first_record_);
    in_ = first;
    in_used_ = 0;
    out_ = &out;
    drive_handshake();
    in_ = {};
    out_ = nullptr;
    ciphertext = ciphertext.subspan(taken);
    if (failed()) {
      r.consumed += ciphertext.size();
      return r;
    }
    Received rest = receive(ciphertext, plaintext, out);
    rest.consumed += r.consumed;
    return rest;
  }
  in_ = ciphertext;
  in_used_ = 0;
  out_ = &out;
  if (!established_) drive_handshake();
  while (established_ && !failed() && r.plaintext < plaintext.size()) {
    ERR_clear_error();
    std::size_t n = 0;
    int rc = SSL_read_ex(ssl_, plaintext.data() + r.plaintext, plaintext.size() - r.plaintext, &n);
    if (rc == 1) {
      r.plaintext += n;
      continue;
    }
    int err = SSL_get_error(ssl_, rc);
    if (err != SSL_ERROR_WANT_READ) fail_from_ssl_error(err);
    break;
  }
  ERR_clear_error();
  note_traffic(r.plaintext);
  r.consumed = in_used_;
  in_ = {};
  in_used_ = 0;
  out_ = nullptr;
  return r;
}

void TlsSession::note_traffic(std::size_t n) {
  if (keeps_buffers_) return;
  traffic_ += n;
  // Past this a session is a bulk carrier: freeing and reallocating 17 KiB around every
  // record would cost more than the memory it saves.
  if (traffic_ >= kKeepBuffersAfter) {
    SSL_clear_mode(ssl_, SSL_MODE_RELEASE_BUFFERS);
    keeps_buffers_ = true;
  }
}

bool TlsSession::encrypt(std::span<const std::span<const std::uint8_t>> spans,
                         std::vector<std::uint8_t>& out, Clock::time_point now) {
  if (!established_ || failed()) return false;
  const TlsSettings& cfg = ctx_->settings_;
  bool due = (cfg.key_update_bytes != 0 && bytes_since_update_ >= cfg.key_update_bytes) ||
             (cfg.key_update_interval.count() > 0 && now - last_update_ >= cfg.key_update_interval);
  // SSL_key_update refuses while one is still unsent; it goes out with the next record.
  if (due && SSL_get_key_update_type(ssl_) == SSL_KEY_UPDATE_NONE &&
      SSL_key_update(ssl_, SSL_KEY_UPDATE_REQUESTED) == 1) {
    ++key_updates_;
    bytes_since_update_ = 0;
    last_update_ = now;
  }
  out_ = &out;
  bool ok = true;
  auto write_record = [&](const std::uint8_t* data, std::size_t len) {
    ERR_clear_error();
    std::size_t written = 0;
    int rc = SSL_write_ex(ssl_, data, len, &written);
    if (rc != 1 || written != len) {
      fail_from_ssl_error(SSL_get_error(ssl_, rc));
      ok = false;
    }
  };
  // Small frames are coalesced here into whole records. One buffer per thread, not per
  // session: a batch is staged and written within this call, and thousands of idle
  // sessions need not hold 16 KiB each. Written before it is read, never zeroed.
  static thread_local std::unique_ptr<std::uint8_t[]> staging;
  if (!staging) staging.reset(new std::uint8_t[kMaxRecordPlaintext]);
  std::size_t fill = 0;
  std::size_t total = 0;
  for (auto span : spans) {
    total += span.size();
    while (ok && !span.empty()) {
      // A whole record's worth from one span needs no copy.
      if (fill == 0 && span.size() >= kMaxRecordPlaintext) {
        write_record(span.data(), kMaxRecordPlaintext);
        span = span.subspan(kMaxRecordPlaintext);
        continue;
      }
      std::size_t n = std::min(span.size(), kMaxRecordPlaintext - fill);
      std::memcpy(staging.get() + fill, span.data(), n);
      fill += n;
      span = span.subspan(n);
      if (fill == kMaxRecordPlaintext) {
        write_record(staging.get(), fill);
        fill = 0;
      }
    }
  }
  if (ok && fill > 0) write_record(staging.get(), fill);
  out_ = nullptr;
  if (ok) {
    bytes_since_update_ += total;
    bytes_total_ += total;
    note_traffic(total);
  }
  return ok;
}

void TlsSession::close(std::vector<std::uint8_t>& out) {
  if (ssl_ == nullptr || !established_) return;
  out_ = &out;
  ERR_clear_error();
  SSL_shutdown(ssl_);
  ERR_clear_error();
  out_ = nullptr;
}

bool TlsSession::resumed() const { return resumed_; }

std::string TlsSession::cipher() const {
  const SSL_CIPHER* c = ssl_ != nullptr ? SSL_get_current_cipher(ssl_) : nullptr;
  return c != nullptr ? SSL_CIPHER_get_name(c) : "";
}

std::string TlsSession::key_exchange_group() const {
  const char* name = ssl_ != nullptr ? SSL_group_to_name(ssl_, SSL_get_negotiated_group(ssl_)) : nullptr;
  return name != nullptr ? name : "";
}

bool TlsSession::exporter(std::string_view label, std::span<std::uint8_t> out) const {
  if (!established_ || failed()) return false;
  return SSL_export_keying_material(ssl_, out.data(), out.size(), label.data(), label.size(),
                                    nullptr, 0, 0) == 1;
}

bool TlsSession::still_accepted_by(const TlsContext& ctx) const {
  if (!established_ || ctx.role() != TlsRole::Server) return false;
  if (!ctx.certificate_mode()) {
    if (ctx_->certificate_mode()) return false;
    auto now = ctx.settings_.peers.find(identity_);
    auto then = ctx_->settings_.peers.find(identity_);
    return now != ctx.settings_.peers.end() && then != ctx_->settings_.peers.end() &&
           now->second == then->second;
  }
  X509* cert = SSL_get0_peer_certificate(ssl_);
  if (cert == nullptr) return false;
  X509_STORE_CTX* store = X509_STORE_CTX_new();
  bool ok = store != nullptr &&
            X509_STORE_CTX_init(store, SSL_CTX_get_cert_store(ctx.ctx_), cert,
                                SSL_get_peer_cert_chain(ssl_)) == 1 &&
            X509_STORE_CTX_set_purpose(store, X509_PURPOSE_SSL_CLIENT) == 1 &&
            X509_verify_cert(store) == 1;
  X509_STORE_CTX_free(store);
  ERR_clear_error();
  return ok;
}

}  // namespace mpudp

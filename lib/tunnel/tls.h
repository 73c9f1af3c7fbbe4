// The TLS 1.3 record layer between the tunnel's frame queues and its socket (OpenSSL 3,
// issue 18; docs/PROTOCOL.md, "TLS layer"). No file descriptors: a session is fed the
// ciphertext the socket delivered and hands back plaintext, and it encrypts a gather list
// of plaintext spans into ciphertext appended to a caller-owned buffer, which the
// connection then writes. kTLS cannot be attached to MPTCP sockets, hence user space.
//
//   TlsContext   one per role and configuration: identities, keys, CA/CRL, ticket keys.
//                Immutable once built; reload builds a new one (old sessions keep theirs,
//                and recheck() tells which of them the new one would refuse).
//   TlsSession   one per connection: handshake, then receive()/encrypt().
//
// What the design guarantees (each point has a unit test in test/unit/test_tls.cc):
//   - TLS 1.3 only; every key exchange is ECDHE (X25519, P-256), PSK included: only
//     psk_dhe_ke is offered or accepted, so recorded traffic stays secret if a key leaks
//     later, and nothing the concentrator sends is keyed by the PSK alone (a passive
//     observer cannot test key guesses against its messages; the client's binder is
//     the one PSK-keyed value on the wire, which is why keys must be full-entropy).
//   - A whole write batch goes out in as few records as possible (16 KiB of plaintext
//     each), copied once into one staging buffer per thread; OpenSSL's own buffers are
//     released whenever empty, so a half-open connection holds a few KiB (see
//     pre_auth_bytes in test_tls.cc) and an idle established one not much more.
//   - Failures carry a reason (TlsFailure) for the log lines of both sides.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

// OpenSSL's types, without its headers in every includer.
typedef struct ssl_st SSL;
typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_session_st SSL_SESSION;
typedef struct bio_st BIO;

namespace mpudp {

enum class TlsRole : std::uint8_t { Client /* the CPE */, Server /* the concentrator */ };

// Which AEAD to ask for first. Auto: AES-128-GCM when this CPU has AES instructions (then
// it is the fastest AEAD by far), ChaCha20-Poly1305 otherwise (several times faster than
// table-based AES on routers without them). The client's order wins: the CPE is
// usually the weaker CPU, and every concentrator CPU does both fast enough.
enum class TlsCipherPreference : std::uint8_t { Auto, AesGcm, ChaCha20 };

struct TlsSettings {
  TlsRole role = TlsRole::Client;

  // External PSK mode (both keys at least 32 bytes of key).
  std::string identity;                     // client: the CPE's identity
  std::string psk;                          // client: its key
  std::map<std::string, std::string> peers; // server: identity -> key

  // Certificate mode (set instead of the PSK fields): PEM files. The CPE's identity is
  // its certificate's first DNS subjectAltName, else its commonName.
  std::string cert_file;
  std::string key_file;
  std::string ca_file;
  std::string crl_file;     // optional; when set, the peer's certificate is checked
  std::string server_name;  // client, optional: the name the concentrator's cert must carry

  TlsCipherPreference ciphers = TlsCipherPreference::Auto;
  // KeyUpdate (RFC 8446 4.6.3) after this much plaintext sent or this much time since the
  // last one (0: never); the peer answers with its own.
  std::uint64_t key_update_bytes = std::uint64_t{1} << 30;
  std::chrono::milliseconds key_update_interval = std::chrono::hours(1);
  // Server: issue session tickets; client: offer the last one received. Tickets are
  // encrypted under keys of the context, so a rebuilt context (reload) voids them all.
  // Certificate mode only: with an external PSK every handshake is already as cheap as a
  // resumption, so the context turns this off.
  bool resumption = true;
};

enum class TlsFailure : std::uint8_t {
  None,
  UnknownIdentity,     // server: no such PSK identity; client: the server refused it
  WrongKey,            // the PSK binder did not verify (another key)
  CertExpired,         // (or not yet valid)
  CertRevoked,         // listed in the CRL
  UnknownCa,           // not signed by the configured CA
  BadCertificate,      // any other certificate problem (name, usage, missing)
  BadRecord,           // a record failed authentication: tampered, replayed, reordered
  Cleartext,           // the peer does not speak TLS (a cleartext mpudp peer, or noise)
  Protocol,            // anything else the peer got wrong, or a TLS alert we did not map
  Closed,              // the peer closed the TLS stream (close_notify)
  Internal,            // our side: out of memory, OpenSSL internal error
  kCount
};
const char* to_string(TlsFailure f);

class TlsSession;

class TlsContext {
 public:
  using Result = std::variant<std::shared_ptr<TlsContext>, std::string>;
  // Reads the key/cert/CA/CRL files; the string is the reason it could not (naming the file).
  static Result create(const TlsSettings& settings);
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  const TlsSettings& settings() const { return settings_; }
  TlsRole role() const { return settings_.role; }
  bool certificate_mode() const { return !settings_.cert_file.empty(); }
  // The ciphersuite list handed to OpenSSL, most preferred first.
  const std::string& ciphersuites() const { return ciphersuites_; }
  // Client: the ticket the next session offers (the newest received), if any.
  bool has_ticket() const { return ticket_ != nullptr; }
  void forget_ticket();

 private:
  explicit TlsContext(const TlsSettings& s) : settings_(s) {}
  friend class TlsSession;
  friend struct TlsCallbacks;
  TlsSettings settings_;
  SSL_CTX* ctx_ = nullptr;
  std::string ciphersuites_;
  SSL_SESSION* ticket_ = nullptr;  // client
};

// True when this CPU has AES instructions OpenSSL uses (x86 AES-NI, ARMv8 AES).
bool cpu_has_aes();

class TlsSession {
 public:
  using Clock = std::chrono::steady_clock;

  explicit TlsSession(std::shared_ptr<TlsContext> ctx);
  ~TlsSession();
  TlsSession(const TlsSession&) = delete;
  TlsSession& operator=(const TlsSession&) = delete;

  // Client: the ClientHello, appended to `out`. Server: nothing to do. False (with
  // failure() Internal) when OpenSSL cannot allocate the session.
  bool start(std::vector<std::uint8_t>& out);

  struct Received {
    std::size_t consumed = 0;   // of the ciphertext given; the rest is for the next call
    std::size_t plaintext = 0;  // bytes written to the plaintext buffer
  };
  // Takes ciphertext, decrypts into `plaintext` (as much as fits), and appends to `out`
  // whatever the handshake makes us send. On failure, failed() turns true, failure()
  // says why, and `out` may hold an alert worth sending. When the plaintext buffer came
  // back full, call again (even with no new ciphertext): OpenSSL may hold more.
  Received receive(std::span<const std::uint8_t> ciphertext, std::span<std::uint8_t> plaintext,
                   std::vector<std::uint8_t>& out);

  // Encrypts the spans (after the handshake) into records of up to 16 KiB of plaintext,
  // as few as their total needs, appended to `out`; reserve capacity in `out` to keep
  // this free of allocation. False on failure (then nothing more can be sent).
  bool encrypt(std::span<const std::span<const std::uint8_t>> spans, std::vector<std::uint8_t>& out,
               Clock::time_point now = Clock::now());

  // A close_notify alert, appended to `out`.
  void close(std::vector<std::uint8_t>& out);

  bool established() const { return established_; }
  bool failed() const { return failure_ != TlsFailure::None; }
  TlsFailure failure() const { return failure_; }
  // True when the failure is what the peer's alert reported (its side of the story).
  bool failure_from_peer() const { return failure_from_peer_; }
  // One line for the log: reason, who said so, and OpenSSL's detail.
  std::string failure_text() const;

  // After the handshake: the CPE's identity on both sides (the PSK identity, or its
  // certificate's name), and the peer's certificate name in certificate mode.
  // Empty until established: a name a peer claimed is not an identity yet (failure_text
  // names it).
  const std::string& identity() const { return established_ ? identity_ : kNoIdentity; }
  const std::string& peer_certificate_name() const { return peer_cert_name_; }
  bool resumed() const;
  std::string cipher() const;
  std::string key_exchange_group() const;  // "x25519": the ECDHE every handshake has

  // RFC 8446 7.5 / RFC 5705: a value both ends derive from the session's secrets and
  // nobody else can; binds another connection (the express one) to this session.
  bool exporter(std::string_view label, std::span<std::uint8_t> out) const;

  // Whether a context built later (reload) would still accept this session's peer: its
  // identity still in the peers table with the same key, or its certificate still valid
  // against the new CA and CRL. Server side.
  bool still_accepted_by(const TlsContext& ctx) const;

  std::uint64_t key_updates_sent() const { return key_updates_; }
  std::uint64_t bytes_encrypted() const { return bytes_total_; }

  // A TLS stream starts with a handshake (22) or an alert (21) record; anything else
  // is a cleartext peer or noise.
  static constexpr bool starts_tls(std::uint8_t first_byte) {
    return first_byte == 22 || first_byte == 21;
  }
  static constexpr std::size_t kMaxRecordPlaintext = 16384;
  static inline const std::string kNoIdentity;
  // The server makes no OpenSSL state until the first record (the ClientHello, a few
  // hundred bytes; 1-2 KiB with a ticket holding a certificate) is complete, and buffers
  // it up to this size: idle and 5-byte connections cost this object and no more.
  static constexpr std::size_t kMaxFirstRecord = 4096;

 private:
  friend struct TlsCallbacks;
  void fail(TlsFailure f, bool from_peer);
  void fail_from_ssl_error(int ssl_error);
  void on_established();
  bool drive_handshake();
  bool create_ssl();
  bool collect_first_record(std::span<const std::uint8_t> in, std::size_t& taken);

  std::shared_ptr<TlsContext> ctx_;
  SSL* ssl_ = nullptr;
  BIO* bio_ = nullptr;
  // The span the transport BIO reads from and the buffer it appends to, for one call.
  std::span<const std::uint8_t> in_;
  std::size_t in_used_ = 0;
  std::vector<std::uint8_t>* out_ = nullptr;
  bool saw_input_ = false;
  std::vector<std::uint8_t> first_record_;  // server, until the SSL exists

  bool established_ = false;
  // By a session ticket, not the external PSK (OpenSSL's "reused" says yes to both).
  bool resumed_ = false;
  bool ticket_accepted_ = false;            // server: ticket_dec took one
  const SSL_SESSION* offered_ticket_ = nullptr;  // client: compared, never dereferenced
  TlsFailure failure_ = TlsFailure::None;
  bool failure_from_peer_ = false;
  std::string failure_detail_;
  int alert_received_ = -1;
  int alert_sent_ = -1;
  TlsFailure pending_ = TlsFailure::None;  // what a callback learned before OpenSSL failed
  std::string identity_;
  std::string peer_cert_name_;
  std::string unknown_identity_;
  std::uint64_t key_updates_ = 0;
  std::uint64_t bytes_since_update_ = 0;
  std::uint64_t bytes_total_ = 0;
  // Plaintext both ways until keeps_buffers_ (see note_traffic).
  std::uint64_t traffic_ = 0;
  bool keeps_buffers_ = false;
  static constexpr std::uint64_t kKeepBuffersAfter = 1 << 20;
  void note_traffic(std::size_t n);
  Clock::time_point last_update_{};
};

}  // namespace mpudp

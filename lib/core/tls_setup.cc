#include "core/tls_setup.h"

namespace mpudp {

std::optional<TlsSettings> tls_settings(const Config& cfg) {
  if (cfg.encryption == Config::Encryption::None) return std::nullopt;
  TlsSettings s;
  const bool cpe = cfg.role == ProxyRole::Cpe;
  s.role = cpe ? TlsRole::Client : TlsRole::Server;
  const Config::Auth& a = cfg.auth;
  switch (a.mode) {
    case Config::AuthMode::None: return std::nullopt;  // the loader refuses TLS without keys
    case Config::AuthMode::SharedKey:
      if (cpe) {
        s.identity = kSharedKeyIdentity;
        s.psk = a.psk;
      } else {
        s.peers.emplace(kSharedKeyIdentity, a.psk);
      }
      break;
    case Config::AuthMode::Psk:
      s.identity = a.identity;
      s.psk = a.psk;
      s.peers = a.peers;
      break;
    case Config::AuthMode::Certificate:
      s.cert_file = a.cert_file;
      s.key_file = a.key_file;
      s.ca_file = a.ca_file;
      s.crl_file = a.crl_file;
      s.server_name = a.server_name;
      break;
  }
  switch (cfg.tls.cipher) {
    case Config::Cipher::Auto: s.ciphers = TlsCipherPreference::Auto; break;
    case Config::Cipher::AesGcm: s.ciphers = TlsCipherPreference::AesGcm; break;
    case Config::Cipher::ChaCha20: s.ciphers = TlsCipherPreference::ChaCha20; break;
  }
  s.key_update_bytes = cfg.tls.key_update_bytes;
  s.key_update_interval = cfg.tls.key_update_interval;
  return s;
}

}  // namespace mpudp

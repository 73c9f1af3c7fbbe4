// From the Config to the TLS layer's settings: the one place that knows how auth modes
// map onto TLS identities, so that the CPE, the concentrator and reload agree.
#pragma once

#include <optional>

#include "config/config.h"
#include "tunnel/tls.h"

namespace mpudp {

// The PSK identity both ends use in SharedKey mode (auth: {psk_file} alone), the
// migration path from protocol v1: one key for every CPE, so no CPE can be told apart.
inline constexpr const char* kSharedKeyIdentity = "shared";

// nullopt when the configuration runs encryption: none.
std::optional<TlsSettings> tls_settings(const Config& cfg);

}  // namespace mpudp

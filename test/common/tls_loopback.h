// Two TLS sessions (tunnel/tls.h) handshaking through memory, for the fuzz target and
// the bench tool (the unit tests keep what each end read, with their own End type).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "tunnel/tls.h"

namespace mpudp {

// True when both ends completed the handshake; `scratch` takes any plaintext.
inline bool loopback_handshake(TlsSession& client, TlsSession& server,
                               std::span<std::uint8_t> scratch) {
  std::vector<std::uint8_t> to_server, to_client;
  if (!client.start(to_server)) return false;
  for (int i = 0; i < 4 && !(to_server.empty() && to_client.empty()); ++i) {
    std::vector<std::uint8_t> a;
    a.swap(to_server);
    server.receive(a, scratch, to_client);
    std::vector<std::uint8_t> b;
    b.swap(to_client);
    client.receive(b, scratch, to_server);
  }
  return client.established() && server.established() && !server.failed();
}

}  // namespace mpudp

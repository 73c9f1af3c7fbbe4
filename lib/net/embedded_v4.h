// IPv4 addresses carried inside IPv6 ones. A datagram for 64:ff9b::7f00:1 leaves a NAT64
// gateway for 127.0.0.1, one for ::ffff:10.0.0.1 leaves a dual-stack socket for 10.0.0.1,
// one for 2002:c612:0202:: reaches 198.18.2.2 through a 6to4 relay: a rule about IPv4
// destinations must judge these forms by the IPv4 address inside. Pure.
#pragma once

#include <array>
#include <cstddef>

#include "net/endpoint.h"

namespace mpudp {

struct EmbeddedV4 {
  // The IPv4 endpoints (port kept) the address may stand for. The local-use NAT64 prefix
  // 64:ff9b:1::/48 may be cut at /48, /56, /64 or /96 (RFC 6052 §2.2, RFC 8215), and the
  // address does not say which: every placement is a candidate.
  std::array<Endpoint, 4> candidates{};
  std::size_t count = 0;
  const Endpoint* begin() const { return candidates.data(); }
  const Endpoint* end() const { return candidates.data() + count; }
};

// IPv4-mapped (::ffff:0:0/96), NAT64 well-known (64:ff9b::/96) and local-use
// (64:ff9b:1::/48), 6to4 (2002::/16). Nothing for an IPv4 endpoint or any other IPv6 one.
EmbeddedV4 embedded_v4(const Endpoint& e);

}  // namespace mpudp

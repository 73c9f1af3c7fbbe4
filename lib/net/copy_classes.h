// Which flows the CPE copies on every uplink whatever their rate (cpe.copy_classes):
// the real-time traffic an operator can name ahead of time. A flow is in a class when
// one of its datagrams carries a listed DSCP (EF for voice), when either end's port is
// in a listed range (3478 STUN/TURN, 5060 SIP, a game's server port), or when its LAN
// client is in a listed prefix (a games console, a desk phone). Pure value type, shared
// by the configuration loader and the CPE.
#pragma once

#include <cstdint>
#include <vector>

#include "net/cidr.h"
#include "net/endpoint.h"

namespace mpudp {

struct PortRange {
  std::uint16_t lo = 0;
  std::uint16_t hi = 0;
  friend bool operator==(const PortRange&, const PortRange&) = default;
};

struct CopyClasses {
  std::uint64_t dscp = 0;  // bit n: DSCP n is listed
  std::vector<PortRange> ports;
  std::vector<Cidr> hosts;

  bool empty() const { return dscp == 0 && ports.empty() && hosts.empty(); }
  // By the flow's two ends, once, when the flow begins.
  bool matches(const Endpoint& client, const Endpoint& remote) const;
  // By one datagram's DSCP (the upper six bits of the TOS / traffic class byte).
  bool matches_dscp(std::uint8_t dscp_value) const {
    return dscp_value < 64 && ((dscp >> dscp_value) & 1u) != 0;
  }
  friend bool operator==(const CopyClasses&, const CopyClasses&) = default;
};

}  // namespace mpudp

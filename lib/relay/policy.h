// Which destinations the concentrator relays to. It listens on the Internet, so it must
// never become a way into its own host or network: loopback, link-local, multicast,
// unspecified and its own addresses are always refused; private ranges (RFC 1918, ULA,
// CGNAT) only when listed in allow_destinations; deny_destinations refuses more. Pure.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "net/cidr.h"
#include "net/endpoint.h"

namespace mpudp {

enum class PolicyVerdict : std::uint8_t {
  Allow,
  Loopback,
  LinkLocal,
  Multicast,
  Unspecified,
  Broadcast,
  OwnAddress,
  Private,   // a private range not listed in allow_destinations
  Denied,    // listed in deny_destinations
};
const char* to_string(PolicyVerdict v);

class DestinationPolicy {
 public:
  DestinationPolicy() = default;
  DestinationPolicy(std::vector<Cidr> allow, std::vector<Cidr> deny)
      : allow_(std::move(allow)), deny_(std::move(deny)) {}
  // The concentrator's own addresses (refreshed from the interfaces at start).
  void set_own_addresses(std::vector<Endpoint> own) { own_ = std::move(own); }
  PolicyVerdict check(const Endpoint& dst) const;

 private:
  std::vector<Cidr> allow_;
  std::vector<Cidr> deny_;
  std::vector<Endpoint> own_;
};

}  // namespace mpudp

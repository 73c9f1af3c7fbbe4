// Which destinations the concentrator relays to. It listens on the Internet, so it must
// never become a way into its own host or network, nor a loop: loopback, link-local,
// multicast, unspecified, port 0, its own addresses and its connected CPEs' addresses
// are always refused; private ranges (RFC 1918, ULA, CGNAT) only when listed in
// allow_destinations; deny_destinations refuses more. An IPv6 address that carries an
// IPv4 one (IPv4-mapped, NAT64, 6to4: net/embedded_v4.h) must pass as that IPv4 address
// too. Pure: the address sets are kept up to date by their owner.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "net/address_set.h"
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
  PortZero,
  OwnAddress,  // one of the concentrator's addresses
  CpeAddress,  // the address a connected CPE's tunnel comes from
  Private,     // a private range not listed in allow_destinations
  Denied,      // listed in deny_destinations
};
const char* to_string(PolicyVerdict v);
// The datagram would come back into a proxy (and through the tunnel again).
inline bool is_loop(PolicyVerdict v) {
  return v == PolicyVerdict::OwnAddress || v == PolicyVerdict::CpeAddress;
}

class DestinationPolicy {
 public:
  DestinationPolicy() = default;
  DestinationPolicy(std::vector<Cidr> allow, std::vector<Cidr> deny)
      : allow_(std::move(allow)), deny_(std::move(deny)) {}
  // Followed, not copied, so that address changes apply at once; either may be null.
  void follow(const AddressSet* own, const AddressSet* cpes) {
    own_ = own;
    cpes_ = cpes;
  }
  PolicyVerdict check(const Endpoint& dst) const;
  // An OPEN's client endpoint: OwnAddress when it is (or carries) one of the
  // concentrator's addresses, which no LAN behind a CPE can hold.
  PolicyVerdict check_client(const Endpoint& client) const;

 private:
  PolicyVerdict check_address(const Endpoint& dst) const;

  std::vector<Cidr> allow_;
  std::vector<Cidr> deny_;
  const AddressSet* own_ = nullptr;
  const AddressSet* cpes_ = nullptr;
};

}  // namespace mpudp

// The concentrator's NAT behaviour beyond the mapping itself (docs/NAT.md): which remotes
// may reach a binding's external port (filtering, RFC 4787 section 5), and which
// destinations are the public mapping of one of its own bindings (hairpinning, RFC 4787
// REQ-9). Pure: the owner adds and removes the relay sockets' ports as bindings come and
// go, and passes in its own addresses.
#pragma once

#include <cstddef>
#include <cstdint>
#include <unordered_map>

#include "binding/binding_table.h"
#include "config/config.h"
#include "net/address_set.h"
#include "net/endpoint.h"

namespace mpudp {

// May a datagram from `from` reach binding `b`, which holds no flow for it that its
// client sent on? Always with
// endpoint-independent filtering; with address-dependent filtering only when the client
// has sent to that address (any port) before (Flow::client_sent): a flow that a remote
// began while filtering was endpoint-independent does not open the address.
bool filter_admits(FilteringConfig mode, const Binding& b, const Endpoint& from);

// The live bindings by their relay socket's port. The sockets are bound to the wildcard
// address, so binding B's public mapping is any of the concentrator's own addresses of
// its family with B's port: a datagram to it from another binding stays inside.
class Mappings {
 public:
  void add(Family family, std::uint16_t port, Binding& b);
  // Forgets the port if it is still `b`'s (a new socket may have the port by now).
  void remove(Family family, std::uint16_t port, const Binding& b);
  // The binding whose public mapping `dst` is, or null. Only the concentrator's own
  // addresses themselves count: an IPv6 form that carries one (IPv4-mapped, NAT64)
  // stays a loop for the destination policy to refuse, as does every port that is not a
  // live binding's (the concentrator's other services, a quarantined socket).
  Binding* hairpin_target(const Endpoint& dst, const AddressSet& own) const;
  // Several concentrator daemons on this host (concentrator.reuse_port, docs/SCALE.md):
  // their relay sockets take ports from the same range (the kernel's ephemeral ports), so
  // a port in it on one of our own addresses that is no binding of ours may be another
  // daemon's public mapping. Such a destination is sent through the kernel, which
  // delivers it to that daemon's socket or answers port unreachable. [lo, hi]; lo 0
  // (the default): no siblings, every such port stays a loop.
  void set_sibling_ports(std::uint16_t lo, std::uint16_t hi) {
    sibling_lo_ = lo;
    sibling_hi_ = hi;
  }
  bool sibling_mapping(const Endpoint& dst, const AddressSet& own) const;
  std::size_t size() const { return by_port_.size(); }

 private:
  static std::uint32_t key(Family family, std::uint16_t port) {
    return (static_cast<std::uint32_t>(family) << 16) | port;
  }
  std::unordered_map<std::uint32_t, Binding*> by_port_;
  std::uint16_t sibling_lo_ = 0, sibling_hi_ = 0;
};

}  // namespace mpudp

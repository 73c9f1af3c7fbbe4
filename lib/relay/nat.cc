#include "relay/nat.h"

namespace mpudp {
bool filter_admits(FilteringConfig mode, const Binding& b, const Endpoint& from) {
  if (mode == FilteringConfig::EndpointIndependent) return true;
  // At most bindings.max_remotes flows, and only for a remote the binding has no flow
  // for yet: a scan costs less than an index kept on every flow change.
  for (const Flow& f : b.flows)
    if (f.client_sent && f.remote.same_address(from)) return true;
  return false;
}

void Mappings::add(Family family, std::uint16_t port, Binding& b) {
  by_port_[key(family, port)] = &b;
}

void Mappings::remove(Family family, std::uint16_t port, const Binding& b) {
  auto it = by_port_.find(key(family, port));
  if (it != by_port_.end() && it->second == &b) by_port_.erase(it);
}

Binding* Mappings::hairpin_target(const Endpoint& dst, const AddressSet& own) const {
  if (dst.port == 0 || !own.contains(dst)) return nullptr;
  auto it = by_port_.find(key(dst.family, dst.port));
  return it == by_port_.end() ? nullptr : it->second;
}

bool Mappings::sibling_mapping(const Endpoint& dst, const AddressSet& own) const {
  if (sibling_lo_ == 0 || dst.port < sibling_lo_ || dst.port > sibling_hi_) return false;
  return own.contains(dst) && by_port_.find(key(dst.family, dst.port)) == by_port_.end();
}

}  // namespace mpudp

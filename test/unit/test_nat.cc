// The concentrator's NAT behaviour as pure decisions: inbound filtering and the hairpin
// look-up (docs/NAT.md).
#include <catch2/catch.hpp>

#include "net/address_set.h"
#include "relay/nat.h"

using namespace mpudp;

namespace {
Endpoint ep(const char* s) { return *Endpoint::parse(s); }
Binding binding_talking_to(std::initializer_list<const char*> remotes) {
  Binding b;
  b.client = ep("198.18.0.2:41000");
  for (const char* r : remotes) {
    Flow f;
    f.remote = ep(r);
    f.client_sent = true;
    b.flows.push_back(f);
  }
  return b;
}
}  // namespace

TEST_CASE("endpoint-independent filtering admits any remote", "[nat]") {
  const Binding none = binding_talking_to({});
  CHECK(filter_admits(FilteringConfig::EndpointIndependent, none, ep("203.0.113.9:5000")));
  CHECK(filter_admits(FilteringConfig::EndpointIndependent, none, ep("[2001:db8::9]:5000")));
}

TEST_CASE("address-dependent filtering admits the addresses sent to, any port", "[nat]") {
  const Binding b = binding_talking_to({"198.18.4.2:3478", "[2001:db8:4::2]:53"});
  const auto ad = FilteringConfig::AddressDependent;
  CHECK(filter_admits(ad, b, ep("198.18.4.2:3478")));
  CHECK(filter_admits(ad, b, ep("198.18.4.2:9999")));  // another port of that address
  CHECK(filter_admits(ad, b, ep("[2001:db8:4::2]:1")));
  CHECK_FALSE(filter_admits(ad, b, ep("198.18.4.3:3478")));  // an unrelated remote
  CHECK_FALSE(filter_admits(ad, b, ep("[2001:db8:4::3]:53")));
  // An IPv4-mapped form is another address: the binding never sent to it.
  CHECK_FALSE(filter_admits(ad, b, ep("[::ffff:198.18.4.2]:3478")));
  CHECK_FALSE(filter_admits(ad, binding_talking_to({}), ep("198.18.4.2:3478")));
}

TEST_CASE("address-dependent: a flow the remote began does not open its address", "[nat]") {
  Binding b = binding_talking_to({"198.18.4.2:3478"});
  Flow unsolicited;
  unsolicited.remote = ep("198.18.4.3:5000");  // admitted while endpoint-independent
  b.flows.push_back(unsolicited);
  CHECK_FALSE(filter_admits(FilteringConfig::AddressDependent, b, ep("198.18.4.3:5000")));
  CHECK(filter_admits(FilteringConfig::EndpointIndependent, b, ep("198.18.4.3:5000")));
  b.flows.back().client_sent = true;  // the client answered it
  CHECK(filter_admits(FilteringConfig::AddressDependent, b, ep("198.18.4.3:5001")));
}

TEST_CASE("hairpin target: an own address and a live binding's port", "[nat]") {
  AddressSet own;
  own.add(1, ep("198.18.4.1:0"));
  own.add(1, ep("[2001:db8:4::1]:0"));
  Binding a, b6;
  Mappings m;
  m.add(Family::V4, 40000, a);
  m.add(Family::V6, 40000, b6);
  CHECK(m.hairpin_target(ep("198.18.4.1:40000"), own) == &a);
  CHECK(m.hairpin_target(ep("[2001:db8:4::1]:40000"), own) == &b6);
  // Not a mapping: another port (the concentrator's own services), another address,
  // the v4 address in an IPv6 form (left to the loop check), port 0.
  CHECK(m.hairpin_target(ep("198.18.4.1:53"), own) == nullptr);
  CHECK(m.hairpin_target(ep("198.18.4.2:40000"), own) == nullptr);
  CHECK(m.hairpin_target(ep("[::ffff:198.18.4.1]:40000"), own) == nullptr);
  CHECK(m.hairpin_target(ep("[64:ff9b::198.18.4.1]:40000"), own) == nullptr);
  CHECK(m.hairpin_target(ep("198.18.4.1:0"), own) == nullptr);
  // An address that goes is no mapping any more.
  own.remove(1, ep("198.18.4.1:0"));
  CHECK(m.hairpin_target(ep("198.18.4.1:40000"), own) == nullptr);
}

TEST_CASE("a port given to a new binding is not taken back by the old one's end", "[nat]") {
  AddressSet own;
  own.add(1, ep("198.18.4.1:0"));
  Binding old_b, new_b;
  Mappings m;
  m.add(Family::V4, 40000, old_b);
  m.add(Family::V4, 40000, new_b);  // the kernel reused the port
  m.remove(Family::V4, 40000, old_b);
  CHECK(m.hairpin_target(ep("198.18.4.1:40000"), own) == &new_b);
  m.remove(Family::V4, 40000, new_b);
  CHECK(m.hairpin_target(ep("198.18.4.1:40000"), own) == nullptr);
  CHECK(m.size() == 0);
}

TEST_CASE("sibling mappings: own address, a port of the shared range that is not ours", "[nat]") {
  AddressSet own;
  own.add(1, ep("198.18.4.1:0"));
  own.add(1, ep("[2001:db8:4::1]:0"));
  Binding a;
  Mappings m;
  m.add(Family::V4, 40000, a);
  // Without siblings (no reuse_port) there are none.
  CHECK_FALSE(m.sibling_mapping(ep("198.18.4.1:40001"), own));
  m.set_sibling_ports(32768, 60999);
  CHECK(m.sibling_mapping(ep("198.18.4.1:40001"), own));
  CHECK(m.sibling_mapping(ep("[2001:db8:4::1]:60999"), own));
  // Ours (hairpinned inside), outside the range (the host's services), not our address.
  CHECK_FALSE(m.sibling_mapping(ep("198.18.4.1:40000"), own));
  CHECK_FALSE(m.sibling_mapping(ep("198.18.4.1:53"), own));
  CHECK_FALSE(m.sibling_mapping(ep("198.18.4.1:32767"), own));
  CHECK_FALSE(m.sibling_mapping(ep("198.18.4.1:61000"), own));
  CHECK_FALSE(m.sibling_mapping(ep("198.18.4.2:40001"), own));
  CHECK_FALSE(m.sibling_mapping(ep("[::ffff:198.18.4.1]:40001"), own));
  // Our port on the v6 side is free: a v6 sibling may hold it.
  CHECK(m.sibling_mapping(ep("[2001:db8:4::1]:40000"), own));
}

#include "relay/policy.h"

namespace mpudp {
namespace {

Cidr cidr(std::string_view s) { return *Cidr::parse(s); }

// Private and shared ranges: fine on a LAN, never the Internet's business.
const std::vector<Cidr>& private_ranges() {
  static const std::vector<Cidr> r = {cidr("10.0.0.0/8"),     cidr("172.16.0.0/12"),
                                      cidr("192.168.0.0/16"), cidr("100.64.0.0/10"),
                                      cidr("fc00::/7")};
  return r;
}

}  // namespace

const char* to_string(PolicyVerdict v) {
  switch (v) {
    case PolicyVerdict::Allow: return "allowed";
    case PolicyVerdict::Loopback: return "loopback";
    case PolicyVerdict::LinkLocal: return "link-local";
    case PolicyVerdict::Multicast: return "multicast";
    case PolicyVerdict::Unspecified: return "unspecified";
    case PolicyVerdict::Broadcast: return "broadcast";
    case PolicyVerdict::OwnAddress: return "own address";
    case PolicyVerdict::Private: return "private range not in allow_destinations";
    case PolicyVerdict::Denied: return "in deny_destinations";
  }
  return "?";
}

PolicyVerdict DestinationPolicy::check(const Endpoint& dst) const {
  static const Cidr v4_loop = cidr("127.0.0.0/8"), v6_loop = cidr("::1/128"),
                    v4_ll = cidr("169.254.0.0/16"), v6_ll = cidr("fe80::/10"),
                    v4_mc = cidr("224.0.0.0/4"), v6_mc = cidr("ff00::/8"),
                    v4_this = cidr("0.0.0.0/8"), v4_bcast = cidr("255.255.255.255/32"),
                    v4_mapped = cidr("::ffff:0:0/96");
  if (dst.is_unspecified() || v4_this.contains(dst)) return PolicyVerdict::Unspecified;
  if (v4_loop.contains(dst) || v6_loop.contains(dst)) return PolicyVerdict::Loopback;
  // An IPv4-mapped IPv6 destination would reach IPv4 hosts around the IPv4 checks.
  if (v4_mapped.contains(dst)) return PolicyVerdict::Denied;
  if (v4_ll.contains(dst) || v6_ll.contains(dst)) return PolicyVerdict::LinkLocal;
  if (v4_mc.contains(dst) || v6_mc.contains(dst)) return PolicyVerdict::Multicast;
  if (v4_bcast.contains(dst)) return PolicyVerdict::Broadcast;
  for (const Endpoint& own : own_)
    if (own.family == dst.family && own.addr == dst.addr) return PolicyVerdict::OwnAddress;
  for (const Cidr& c : deny_)
    if (c.contains(dst)) return PolicyVerdict::Denied;
  for (const Cidr& c : private_ranges()) {
    if (!c.contains(dst)) continue;
    for (const Cidr& a : allow_)
      if (a.contains(dst)) return PolicyVerdict::Allow;
    return PolicyVerdict::Private;
  }
  return PolicyVerdict::Allow;
}

}  // namespace mpudp

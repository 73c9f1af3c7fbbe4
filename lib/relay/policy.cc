#include "relay/policy.h"

#include "net/embedded_v4.h"

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
    case PolicyVerdict::PortZero: return "port 0";
    case PolicyVerdict::OwnAddress: return "own address";
    case PolicyVerdict::CpeAddress: return "a connected CPE's address";
    case PolicyVerdict::Private: return "private range not in allow_destinations";
    case PolicyVerdict::Denied: return "in deny_destinations";
  }
  return "?";
}

PolicyVerdict DestinationPolicy::check(const Endpoint& dst) const {
  if (dst.port == 0) return PolicyVerdict::PortZero;
  // Judged as the IPv4 address inside first, then as itself: an IPv6 deny entry (say
  // 64:ff9b::/96) still counts.
  for (const Endpoint& v4 : embedded_v4(dst))
    if (const auto v = check_address(v4); v != PolicyVerdict::Allow) return v;
  return check_address(dst);
}

PolicyVerdict DestinationPolicy::check_client(const Endpoint& client) const {
  return own_ != nullptr && own_->covers(client) ? PolicyVerdict::OwnAddress
                                                 : PolicyVerdict::Allow;
}

PolicyVerdict DestinationPolicy::check_address(const Endpoint& dst) const {
  static const Cidr v4_loop = cidr("127.0.0.0/8"), v6_loop = cidr("::1/128"),
                    v4_ll = cidr("169.254.0.0/16"), v6_ll = cidr("fe80::/10"),
                    v4_mc = cidr("224.0.0.0/4"), v6_mc = cidr("ff00::/8"),
                    v4_this = cidr("0.0.0.0/8"), v4_bcast = cidr("255.255.255.255/32");
  if (dst.is_unspecified() || v4_this.contains(dst)) return PolicyVerdict::Unspecified;
  if (v4_loop.contains(dst) || v6_loop.contains(dst)) return PolicyVerdict::Loopback;
  if (v4_ll.contains(dst) || v6_ll.contains(dst)) return PolicyVerdict::LinkLocal;
  if (v4_mc.contains(dst) || v6_mc.contains(dst)) return PolicyVerdict::Multicast;
  if (v4_bcast.contains(dst)) return PolicyVerdict::Broadcast;
  if (own_ != nullptr && own_->contains(dst)) return PolicyVerdict::OwnAddress;
  if (cpes_ != nullptr && cpes_->contains(dst)) return PolicyVerdict::CpeAddress;
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

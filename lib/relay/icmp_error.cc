#include "relay/icmp_error.h"

#include <cerrno>

namespace mpudp {

IcmpError classify_icmp_error(const sock_extended_err& ee) {
  using K = wire::IcmpKind;
  IcmpError c;
  auto as = [&c](K k) {
    c.relayed = true;
    c.kind = k;
  };
  if (ee.ee_origin == SO_EE_ORIGIN_ICMP && ee.ee_type == 3) {  // destination unreachable
    switch (ee.ee_code) {
      case 3: as(K::PortUnreachable); break;
      case 0: case 6: case 11: as(K::NetUnreachable); break;
      case 1: case 7: case 12: as(K::HostUnreachable); break;
      case 9: case 10: case 13: as(K::AdminProhibited); break;
      case 4: as(K::TooBig); break;
      default: break;
    }
  } else if (ee.ee_origin == SO_EE_ORIGIN_ICMP6 && ee.ee_type == 1) {
    switch (ee.ee_code) {
      case 4: as(K::PortUnreachable); break;
      case 0: as(K::NetUnreachable); break;
      case 3: as(K::HostUnreachable); break;
      case 1: case 5: case 6: as(K::AdminProhibited); break;
      default: break;
    }
  } else if (ee.ee_origin == SO_EE_ORIGIN_ICMP6 && ee.ee_type == 2) {
    as(K::TooBig);
  } else if (ee.ee_origin == SO_EE_ORIGIN_LOCAL && ee.ee_errno == EMSGSIZE) {
    as(K::TooBig);  // this host's own link is the narrow one
  }
  if (c.relayed && c.kind == K::TooBig) {
    // A bogus MTU (0, or above 16 bits) tells the client nothing it could use.
    if (ee.ee_info == 0 || ee.ee_info > 0xffff) c.relayed = false;
    c.mtu = static_cast<std::uint16_t>(ee.ee_info);
  }
  return c;
}

}  // namespace mpudp

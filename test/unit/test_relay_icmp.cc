// Which relay-socket errors become ICMP frames, and as what: the kernel's extended errors
// (linux/errqueue.h) as IP_RECVERR / IPV6_RECVERR deliver them, built by hand.
#include <catch2/catch.hpp>
#include <cerrno>

#include "relay/icmp_error.h"

using mpudp::classify_icmp_error;
using K = mpudp::wire::IcmpKind;

namespace {
sock_extended_err icmp(std::uint8_t origin, std::uint8_t type, std::uint8_t code,
                       std::uint32_t info = 0, std::uint32_t err = ECONNREFUSED) {
  sock_extended_err e{};
  e.ee_errno = err;
  e.ee_origin = origin;
  e.ee_type = type;
  e.ee_code = code;
  e.ee_info = info;
  return e;
}
bool is(const mpudp::IcmpError& c, K kind, std::uint16_t mtu = 0) {
  return c.relayed && c.kind == kind && c.mtu == mtu;
}
}  // namespace

TEST_CASE("ICMPv4 destination unreachable codes map to the frame's kinds", "[relay][icmp]") {
  CHECK(is(classify_icmp_error(icmp(SO_EE_ORIGIN_ICMP, 3, 3)), K::PortUnreachable));
  CHECK(is(classify_icmp_error(icmp(SO_EE_ORIGIN_ICMP, 3, 1)), K::HostUnreachable));
  CHECK(is(classify_icmp_error(icmp(SO_EE_ORIGIN_ICMP, 3, 0)), K::NetUnreachable));
  CHECK(is(classify_icmp_error(icmp(SO_EE_ORIGIN_ICMP, 3, 13)), K::AdminProhibited));
  CHECK(is(classify_icmp_error(icmp(SO_EE_ORIGIN_ICMP, 3, 4, 1280, EMSGSIZE)), K::TooBig, 1280));
  // Protocol unreachable and time exceeded mean nothing to a UDP client here.
  CHECK_FALSE(classify_icmp_error(icmp(SO_EE_ORIGIN_ICMP, 3, 2)).relayed);
  CHECK_FALSE(classify_icmp_error(icmp(SO_EE_ORIGIN_ICMP, 11, 0)).relayed);
}

TEST_CASE("ICMPv6 errors map to the frame's kinds", "[relay][icmp]") {
  CHECK(is(classify_icmp_error(icmp(SO_EE_ORIGIN_ICMP6, 1, 4)), K::PortUnreachable));
  CHECK(is(classify_icmp_error(icmp(SO_EE_ORIGIN_ICMP6, 1, 3)), K::HostUnreachable));
  CHECK(is(classify_icmp_error(icmp(SO_EE_ORIGIN_ICMP6, 1, 0)), K::NetUnreachable));
  CHECK(is(classify_icmp_error(icmp(SO_EE_ORIGIN_ICMP6, 1, 1)), K::AdminProhibited));
  CHECK(is(classify_icmp_error(icmp(SO_EE_ORIGIN_ICMP6, 2, 0, 1400, EMSGSIZE)), K::TooBig, 1400));
  CHECK_FALSE(classify_icmp_error(icmp(SO_EE_ORIGIN_ICMP6, 3, 0)).relayed);  // time exceeded
}

TEST_CASE("too big needs a usable MTU; local errors only when too big", "[relay][icmp]") {
  CHECK_FALSE(classify_icmp_error(icmp(SO_EE_ORIGIN_ICMP, 3, 4, 0, EMSGSIZE)).relayed);
  CHECK_FALSE(classify_icmp_error(icmp(SO_EE_ORIGIN_ICMP6, 2, 0, 70000, EMSGSIZE)).relayed);
  CHECK(is(classify_icmp_error(icmp(SO_EE_ORIGIN_LOCAL, 0, 0, 1280, EMSGSIZE)), K::TooBig, 1280));
  CHECK_FALSE(classify_icmp_error(icmp(SO_EE_ORIGIN_LOCAL, 0, 0, 0, ENOBUFS)).relayed);
}

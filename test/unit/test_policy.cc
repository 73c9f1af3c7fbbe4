// The concentrator's destination policy: what it must never relay to.
#include <catch2/catch.hpp>

#include "relay/policy.h"

using namespace mpudp;

namespace {
Endpoint ep(const char* s) { return *Endpoint::parse(s); }
PolicyVerdict check(const DestinationPolicy& p, const char* s) { return p.check(ep(s)); }
}  // namespace

TEST_CASE("CIDR parsing and matching") {
  CHECK(Cidr::parse("10.1.2.3/8")->str() == "10.0.0.0/8");
  CHECK(Cidr::parse("2001:db8::1/32")->str() == "2001:db8::/32");
  CHECK(Cidr::parse("198.18.4.2")->prefix == 32);
  for (const char* bad : {"10.0.0.0/33", "::/129", "10.0.0.0/", "x/8", "10.0.0.0/8x", ""})
    CHECK_FALSE(Cidr::parse(bad));
  const Cidr c = *Cidr::parse("172.16.0.0/12");
  CHECK(c.contains(ep("172.31.255.255:1")));
  CHECK_FALSE(c.contains(ep("172.32.0.0:1")));
  CHECK_FALSE(c.contains(ep("[::ffff:172.16.0.1]:1")));  // v4-mapped parses as IPv4 only via sockaddr
  const Cidr odd = *Cidr::parse("198.18.0.0/15");
  CHECK(odd.contains(ep("198.19.255.1:9")));
  CHECK_FALSE(odd.contains(ep("198.20.0.1:9")));
}

TEST_CASE("always refused, whatever the lists say") {
  DestinationPolicy p({*Cidr::parse("0.0.0.0/0"), *Cidr::parse("::/0")}, {});
  p.set_own_addresses({ep("198.18.2.2:0"), ep("[2001:db8:2::2]:0")});
  CHECK(check(p, "127.0.0.1:53") == PolicyVerdict::Loopback);
  CHECK(check(p, "127.9.9.9:53") == PolicyVerdict::Loopback);
  CHECK(check(p, "[::1]:53") == PolicyVerdict::Loopback);
  CHECK(check(p, "169.254.1.1:53") == PolicyVerdict::LinkLocal);
  CHECK(check(p, "[fe80::1]:53") == PolicyVerdict::LinkLocal);
  CHECK(check(p, "224.0.0.251:5353") == PolicyVerdict::Multicast);
  CHECK(check(p, "[ff02::fb]:5353") == PolicyVerdict::Multicast);
  CHECK(check(p, "0.0.0.0:53") == PolicyVerdict::Unspecified);
  CHECK(check(p, "[::]:53") == PolicyVerdict::Unspecified);
  CHECK(check(p, "255.255.255.255:67") == PolicyVerdict::Broadcast);
  CHECK(check(p, "198.18.2.2:7000") == PolicyVerdict::OwnAddress);
  CHECK(check(p, "[2001:db8:2::2]:7000") == PolicyVerdict::OwnAddress);
  CHECK(check(p, "[::ffff:127.0.0.1]:53") == PolicyVerdict::Denied);
}

TEST_CASE("private ranges need allow_destinations; deny_destinations wins") {
  DestinationPolicy none;
  CHECK(check(none, "10.0.0.1:53") == PolicyVerdict::Private);
  CHECK(check(none, "192.168.1.1:53") == PolicyVerdict::Private);
  CHECK(check(none, "100.64.0.1:53") == PolicyVerdict::Private);
  CHECK(check(none, "[fd00::1]:53") == PolicyVerdict::Private);
  CHECK(check(none, "198.18.4.2:7") == PolicyVerdict::Allow);
  CHECK(check(none, "[2001:db8:4::2]:7") == PolicyVerdict::Allow);

  DestinationPolicy p({*Cidr::parse("10.1.0.0/16")}, {*Cidr::parse("198.18.4.0/24")});
  CHECK(check(p, "10.1.2.3:53") == PolicyVerdict::Allow);
  CHECK(check(p, "10.2.0.1:53") == PolicyVerdict::Private);
  CHECK(check(p, "198.18.4.2:7") == PolicyVerdict::Denied);
  CHECK(check(p, "198.18.5.2:7") == PolicyVerdict::Allow);
}

// The concentrator's destination policy: what it must never relay to.
#include <catch2/catch.hpp>

#include "net/address_set.h"
#include "net/embedded_v4.h"
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
  AddressSet own;
  own.add(1, ep("198.18.2.2:0"));
  own.add(1, ep("[2001:db8:2::2]:0"));
  p.follow(&own, nullptr);
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
  CHECK(check(p, "198.18.4.2:0") == PolicyVerdict::PortZero);
  CHECK(check(p, "[2001:db8:4::2]:0") == PolicyVerdict::PortZero);
}

TEST_CASE("IPv4 inside IPv6 is judged as the IPv4 address") {
  DestinationPolicy p({}, {*Cidr::parse("198.18.4.99/32")});
  AddressSet own;
  own.add(1, ep("198.18.2.2:0"));
  p.follow(&own, nullptr);
  // IPv4-mapped, NAT64 (well-known and local-use), 6to4 forms of refused addresses.
  CHECK(check(p, "[::ffff:127.0.0.1]:53") == PolicyVerdict::Loopback);
  CHECK(check(p, "[::ffff:10.0.0.1]:53") == PolicyVerdict::Private);
  CHECK(check(p, "[64:ff9b::127.0.0.1]:53") == PolicyVerdict::Loopback);
  CHECK(check(p, "[64:ff9b::198.18.2.2]:53") == PolicyVerdict::OwnAddress);
  CHECK(check(p, "[64:ff9b::c612:463]:53") == PolicyVerdict::Denied);  // 198.18.4.99
  CHECK(check(p, "[64:ff9b::a9fe:101]:53") == PolicyVerdict::LinkLocal);
  CHECK(check(p, "[64:ff9b:1:c612:2:200::]:53") == PolicyVerdict::OwnAddress);  // /48
  CHECK(check(p, "[64:ff9b:1:aa7f:0:1::]:53") == PolicyVerdict::Loopback);      // /56
  CHECK(check(p, "[64:ff9b:1:aaaa:e0:0:fb00:0]:53") == PolicyVerdict::Multicast);  // /64
  CHECK(check(p, "[64:ff9b:1:808:8:808:ffff:ffff]:53") == PolicyVerdict::Broadcast);  // /96
  CHECK(check(p, "[2002:7f00:1::1]:53") == PolicyVerdict::Loopback);
  CHECK(check(p, "[2002:c612:202::]:53") == PolicyVerdict::OwnAddress);
  CHECK(check(p, "[2002:c0a8:101::1]:53") == PolicyVerdict::Private);
  // Port 0 whatever the form.
  CHECK(check(p, "[64:ff9b::198.18.4.2]:0") == PolicyVerdict::PortZero);
  // Public IPv4 inside passes, and so does an ordinary IPv6 address.
  CHECK(check(p, "[64:ff9b::198.18.4.2]:7") == PolicyVerdict::Allow);
  CHECK(check(p, "[2002:c612:402::1]:7") == PolicyVerdict::Allow);
  CHECK(check(p, "[::ffff:198.18.4.2]:7") == PolicyVerdict::Allow);
  CHECK(check(p, "[2001:db8:4::2]:7") == PolicyVerdict::Allow);
  // An IPv6 deny entry for the NAT64 prefix still holds.
  DestinationPolicy nat64({}, {*Cidr::parse("64:ff9b::/96")});
  CHECK(check(nat64, "[64:ff9b::198.18.4.2]:7") == PolicyVerdict::Denied);
}

TEST_CASE("embedded_v4 finds the IPv4 address in each form, and only there") {
  auto v4s = [](const char* s) {
    std::vector<std::string> out;
    for (const Endpoint& e : embedded_v4(ep(s))) out.push_back(e.str());
    return out;
  };
  using V = std::vector<std::string>;
  CHECK(v4s("[::ffff:1.2.3.4]:9") == V{"1.2.3.4:9"});
  CHECK(v4s("[64:ff9b::1.2.3.4]:9") == V{"1.2.3.4:9"});
  CHECK(v4s("[2002:102:304::]:9") == V{"1.2.3.4:9"});
  CHECK(v4s("[64:ff9b:1:102:3:400::]:9").front() == "1.2.3.4:9");
  CHECK(v4s("[64:ff9b:1:102:3:400::]:9").size() == 4);
  CHECK(v4s("1.2.3.4:9").empty());
  CHECK(v4s("[2001:db8::1.2.3.4]:9").empty());
  CHECK(v4s("[64:ff9b:0:1::1.2.3.4]:9").empty());  // neither prefix
  CHECK(v4s("[::1.2.3.4]:9").empty());             // IPv4-compatible: deprecated, not routed
}

TEST_CASE("the policy follows its address sets as they change") {
  DestinationPolicy p;
  AddressSet own, cpes;
  p.follow(&own, &cpes);
  CHECK(check(p, "198.18.9.9:53") == PolicyVerdict::Allow);
  own.add(3, ep("198.18.9.9:0"));
  CHECK(check(p, "198.18.9.9:53") == PolicyVerdict::OwnAddress);
  CHECK(p.check_client(ep("198.18.9.9:4000")) == PolicyVerdict::OwnAddress);
  CHECK(p.check_client(ep("[::ffff:198.18.9.9]:4000")) == PolicyVerdict::OwnAddress);
  CHECK(p.check_client(ep("198.18.0.2:4000")) == PolicyVerdict::Allow);
  own.remove(3, ep("198.18.9.9:0"));
  CHECK(check(p, "198.18.9.9:53") == PolicyVerdict::Allow);
  CHECK(p.check_client(ep("198.18.9.9:4000")) == PolicyVerdict::Allow);
  cpes.add(17, ep("198.18.1.1:51000"));
  CHECK(check(p, "198.18.1.1:5555") == PolicyVerdict::CpeAddress);
  CHECK(check(p, "[64:ff9b::198.18.1.1]:5555") == PolicyVerdict::CpeAddress);
  CHECK(is_loop(PolicyVerdict::CpeAddress));
  CHECK(is_loop(PolicyVerdict::OwnAddress));
  CHECK_FALSE(is_loop(PolicyVerdict::Private));
  cpes.remove_holder(17);
  CHECK(check(p, "198.18.1.1:5555") == PolicyVerdict::Allow);
}

TEST_CASE("an address set counts each holder once") {
  AddressSet s;
  s.add(1, ep("198.18.1.1:0"));
  s.add(1, ep("198.18.1.1:0"));  // rtnetlink repeats an address on every update
  s.add(2, ep("198.18.1.1:7"));  // the port does not matter
  s.add(2, ep("[2001:db8::1]:0"));
  CHECK(s.size() == 2);
  s.remove(1, ep("198.18.1.1:0"));
  CHECK(s.contains(ep("198.18.1.1:9")));  // interface 2 still holds it
  s.remove_holder(2);
  CHECK_FALSE(s.contains(ep("198.18.1.1:9")));
  CHECK_FALSE(s.contains(ep("[2001:db8::1]:9")));
  CHECK(s.size() == 0);
  s.remove(5, ep("1.2.3.4:0"));  // never held: nothing happens
  s.add(1, Endpoint{});          // no address: ignored
  CHECK(s.size() == 0);
  s.add(4, ep("10.0.0.1:0"));
  CHECK(s.covers(ep("[::ffff:10.0.0.1]:1")));
  CHECK(s.covers(ep("[2002:a00:1::]:1")));
  CHECK_FALSE(s.contains(ep("[::ffff:10.0.0.1]:1")));
  s.clear();
  CHECK_FALSE(s.covers(ep("10.0.0.1:1")));
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

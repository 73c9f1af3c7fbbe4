// The original-destination parsing of TPROXY'd datagrams, fed hand-built control messages
// exactly as the kernel lays them out.
#include <netinet/in.h>
#include <arpa/inet.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <vector>

#include "intercept/origdst.h"

using mpudp::Endpoint;
using mpudp::parse_origdst;

namespace {

struct Control {
  alignas(cmsghdr) unsigned char buf[256] = {};
  msghdr msg{};
  std::size_t used = 0;

  Control() {
    msg.msg_control = buf;
    msg.msg_controllen = sizeof buf;
  }
  // Appends one control message; returns its header.
  void add(int level, int type, const void* data, std::size_t len) {
    msg.msg_controllen = used + CMSG_SPACE(len);
    cmsghdr* c = used == 0 ? CMSG_FIRSTHDR(&msg) : reinterpret_cast<cmsghdr*>(buf + used);
    c->cmsg_level = level;
    c->cmsg_type = type;
    c->cmsg_len = CMSG_LEN(len);
    std::memcpy(CMSG_DATA(c), data, len);
    used += CMSG_SPACE(len);
    msg.msg_controllen = used;
  }
};

sockaddr_in sin4(const char* a, int port) {
  sockaddr_in s{};
  s.sin_family = AF_INET;
  s.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, a, &s.sin_addr);
  return s;
}

sockaddr_in6 sin6(const char* a, int port) {
  sockaddr_in6 s{};
  s.sin6_family = AF_INET6;
  s.sin6_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET6, a, &s.sin6_addr);
  return s;
}

}  // namespace

TEST_CASE("IPv4 original destination is read from IP_ORIGDSTADDR") {
  Control c;
  auto sa = sin4("198.18.4.2", 7);
  c.add(SOL_IP, IP_ORIGDSTADDR, &sa, sizeof sa);
  auto ep = parse_origdst(c.msg);
  REQUIRE(ep);
  CHECK(ep->str() == "198.18.4.2:7");
}

TEST_CASE("the DSCP comes with the original destination, from IP_TOS / IPV6_TCLASS") {
  SECTION("IPv4: the TOS byte, before the destination as the kernel writes them") {
    Control c;
    const std::uint8_t tos = 0xb8 | 0x02;  // EF, ECN ECT(0)
    c.add(SOL_IP, IP_TOS, &tos, sizeof tos);
    auto sa = sin4("198.18.4.2", 7);
    c.add(SOL_IP, IP_ORIGDSTADDR, &sa, sizeof sa);
    std::uint8_t dscp = 99;
    REQUIRE(parse_origdst(c.msg, &dscp));
    CHECK(dscp == 46);
  }
  SECTION("IPv6: the traffic class, an int") {
    Control c;
    const int tclass = 34 << 2;  // af41
    c.add(SOL_IPV6, IPV6_TCLASS, &tclass, sizeof tclass);
    auto sa = sin6("2001:db8:4::2", 443);
    c.add(SOL_IPV6, IPV6_ORIGDSTADDR, &sa, sizeof sa);
    std::uint8_t dscp = 99;
    REQUIRE(parse_origdst(c.msg, &dscp));
    CHECK(dscp == 34);
  }
  SECTION("none in the message: unmarked") {
    Control c;
    auto sa = sin4("198.18.4.2", 7);
    c.add(SOL_IP, IP_ORIGDSTADDR, &sa, sizeof sa);
    std::uint8_t dscp = 99;
    REQUIRE(parse_origdst(c.msg, &dscp));
    CHECK(dscp == 0);
  }
}

TEST_CASE("IPv6 original destination is read from IPV6_ORIGDSTADDR") {
  Control c;
  auto sa = sin6("2001:db8:4::2", 443);
  c.add(SOL_IPV6, IPV6_ORIGDSTADDR, &sa, sizeof sa);
  auto ep = parse_origdst(c.msg);
  REQUIRE(ep);
  CHECK(ep->str() == "[2001:db8:4::2]:443");
}

TEST_CASE("other control messages before the original destination are skipped") {
  Control c;
  int ttl = 64;
  c.add(SOL_IP, IP_TTL, &ttl, sizeof ttl);
  auto sa = sin4("198.18.4.2", 5353);
  c.add(SOL_IP, IP_ORIGDSTADDR, &sa, sizeof sa);
  auto ep = parse_origdst(c.msg);
  REQUIRE(ep);
  CHECK(ep->port == 5353);
}

TEST_CASE("missing or malformed original destination gives nothing") {
  SECTION("no control data") {
    msghdr m{};
    CHECK_FALSE(parse_origdst(m));
  }
  SECTION("only unrelated messages") {
    Control c;
    int ttl = 64;
    c.add(SOL_IP, IP_TTL, &ttl, sizeof ttl);
    CHECK_FALSE(parse_origdst(c.msg));
  }
  SECTION("address too short for its family") {
    Control c;
    unsigned char shortaddr[4] = {2, 0, 0, 7};
    c.add(SOL_IP, IP_ORIGDSTADDR, shortaddr, sizeof shortaddr);
    CHECK_FALSE(parse_origdst(c.msg));
  }
  SECTION("IPv6 level carrying an IPv4-sized address") {
    Control c;
    auto sa = sin4("198.18.4.2", 7);
    c.add(SOL_IPV6, IPV6_ORIGDSTADDR, &sa, sizeof sa);
    CHECK_FALSE(parse_origdst(c.msg));
  }
}

TEST_CASE("a v4-mapped IPv6 original destination becomes IPv4") {
  Control c;
  auto sa = sin6("::ffff:198.18.4.2", 7);
  c.add(SOL_IPV6, IPV6_ORIGDSTADDR, &sa, sizeof sa);
  auto ep = parse_origdst(c.msg);
  REQUIRE(ep);
  CHECK(ep->is_v4());
  CHECK(ep->str() == "198.18.4.2:7");
}

#include "intercept/icmp_errors.h"

TEST_CASE("ICMP error kinds map to the types and codes direct routing gives") {
  using mpudp::Family;
  using mpudp::icmp_code;
  using K = mpudp::wire::IcmpKind;
  auto is = [](mpudp::IcmpCode c, int type, int code) {
    return c.ok && c.type == type && c.code == code;
  };
  CHECK(is(icmp_code(K::PortUnreachable, Family::V4), 3, 3));
  CHECK(is(icmp_code(K::HostUnreachable, Family::V4), 3, 1));
  CHECK(is(icmp_code(K::NetUnreachable, Family::V4), 3, 0));
  CHECK(is(icmp_code(K::AdminProhibited, Family::V4), 3, 13));
  CHECK(is(icmp_code(K::TooBig, Family::V4), 3, 4));
  CHECK(is(icmp_code(K::PortUnreachable, Family::V6), 1, 4));
  CHECK(is(icmp_code(K::HostUnreachable, Family::V6), 1, 3));
  CHECK(is(icmp_code(K::NetUnreachable, Family::V6), 1, 0));
  CHECK(is(icmp_code(K::AdminProhibited, Family::V6), 1, 1));
  CHECK(is(icmp_code(K::TooBig, Family::V6), 2, 0));
  CHECK_FALSE(icmp_code(static_cast<K>(99), Family::V4).ok);
}

TEST_CASE("the ICMP token bucket allows a burst, then the rate") {
  mpudp::IcmpBucket b(4, 3);  // times below are exact in binary
  CHECK(b.take(100.0));
  CHECK(b.take(100.0));
  CHECK(b.take(100.0));
  CHECK_FALSE(b.take(100.0));
  CHECK_FALSE(b.take(100.125));  // half a token
  CHECK(b.take(100.25));
  CHECK_FALSE(b.take(100.25));
  CHECK(b.take(200.0));  // refilled, but never beyond the burst
  CHECK(b.take(200.0));
  CHECK(b.take(200.0));
  CHECK_FALSE(b.take(200.0));
}

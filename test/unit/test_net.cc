#include <arpa/inet.h>
#include <netinet/in.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <string>
#include <string_view>
#include <unordered_set>

#include "net/copy_classes.h"
#include "net/endpoint.h"

using mpudp::Endpoint;
using mpudp::EndpointHash;
using mpudp::Family;

TEST_CASE("parse and str round trip", "[endpoint]") {
  auto text = GENERATE(as<std::string>{}, "198.18.0.1:53", "0.0.0.0:7000", "255.255.255.255:65535",
                       "1.2.3.4:0", "[2001:db8::1]:53", "[::]:7000", "[::1]:1",
                       "[2001:db8:1:2:3:4:5:6]:443", "[::ffff:1.2.3.4]:80");
  auto e = Endpoint::parse(text);
  REQUIRE(e);
  CHECK(e->str() == text);
  CHECK(Endpoint::parse(e->str()) == e);
}

TEST_CASE("parse fills family, address and port", "[endpoint]") {
  auto v4 = Endpoint::parse("198.18.0.1:5353");
  REQUIRE(v4);
  CHECK(v4->is_v4());
  CHECK(v4->port == 5353);
  CHECK(*v4 == Endpoint::v4(0xC6120001u, 5353));
  CHECK(v4->address_str() == "198.18.0.1");
  CHECK(v4->addr_len() == 4);

  auto v6 = Endpoint::parse("[2001:db8::2]:7000");
  REQUIRE(v6);
  CHECK(v6->is_v6());
  CHECK(v6->port == 7000);
  std::array<std::uint8_t, 16> want{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};
  CHECK(*v6 == Endpoint::v6(want, 7000));
  CHECK(v6->address_str() == "2001:db8::2");
  CHECK(v6->addr_len() == 16);
}

TEST_CASE("same_address compares the host address, not the port", "[endpoint]") {
  const auto a = *Endpoint::parse("198.18.2.2:7000");
  CHECK(a.same_address(*Endpoint::parse("198.18.2.2:7001")));
  CHECK_FALSE(a.same_address(*Endpoint::parse("198.18.2.3:7000")));
  // 198.18.2.2 written as an IPv6 address is another address to the kernel's sockets.
  CHECK_FALSE(a.same_address(*Endpoint::parse("[::ffff:198.18.2.2]:7000")));
  CHECK(Endpoint::parse("[2001:db8::1]:1")->same_address(*Endpoint::parse("[2001:db8::1]:2")));
  CHECK_FALSE(Endpoint{}.same_address(a));
}

TEST_CASE("parse canonicalises IPv6 text", "[endpoint]") {
  auto e = Endpoint::parse("[2001:DB8:0:0::0001]:53");
  REQUIRE(e);
  CHECK(e->str() == "[2001:db8::1]:53");
}

TEST_CASE("parse rejects malformed endpoints", "[endpoint]") {
  auto text = GENERATE(as<std::string>{}, "", ":", "1.2.3.4", "1.2.3.4:", "1.2.3.4:65536",
                       "1.2.3.4:99999999999", "[1.2.3.4]:5", "::1:5", "host:5", "1.2.3.4:5x",
                       "[::1]5", "[::1]", "[::1]:", "[::1", "[]:5", "1.2.3.4:-5", "1.2.3.4:+5",
                       "1.2.3.4: 5", " 1.2.3.4:5", "1.2.3:5", "1.2.3.4.5:5", "01.2.3.4:5",
                       "[fe80::1%eth0]:5", "2001:db8::1:53");
  INFO("text: " << text);
  CHECK_FALSE(Endpoint::parse(text));
}

TEST_CASE("parse rejects embedded NUL bytes", "[endpoint]") {
  using namespace std::string_view_literals;
  CHECK_FALSE(Endpoint::parse("1.2.3.4\0junk:5"sv));
  CHECK_FALSE(Endpoint::parse("[::1\0x]:5"sv));
  CHECK_FALSE(Endpoint::parse("1.2.3.4:5\0"sv));
  CHECK_FALSE(Endpoint::parse_address("1.2.3.4\0"sv));
}

TEST_CASE("parse_address reads addresses without a port", "[endpoint]") {
  auto v4 = Endpoint::parse_address("10.0.0.1");
  REQUIRE(v4);
  CHECK(v4->is_v4());
  CHECK(v4->port == 0);
  auto v6 = Endpoint::parse_address("::1");
  REQUIRE(v6);
  CHECK(v6->is_v6());
  CHECK_FALSE(Endpoint::parse_address(""));
  CHECK_FALSE(Endpoint::parse_address("10.0.0.1:5"));
  CHECK_FALSE(Endpoint::parse_address("[::1]"));
  CHECK_FALSE(Endpoint::parse_address(std::string(100, '1')));
}

TEST_CASE("to_sockaddr and from_sockaddr round trip", "[endpoint]") {
  auto text =
      GENERATE(as<std::string>{}, "198.18.0.1:53", "0.0.0.0:1", "[2001:db8::1]:65535", "[::]:7000");
  auto e = Endpoint::parse(text);
  REQUIRE(e);
  sockaddr_storage ss{};
  socklen_t len = e->to_sockaddr(ss);
  if (e->is_v4()) {
    CHECK(len == sizeof(sockaddr_in));
    CHECK(ss.ss_family == AF_INET);
  } else {
    CHECK(len == sizeof(sockaddr_in6));
    CHECK(ss.ss_family == AF_INET6);
  }
  auto back = Endpoint::from_sockaddr(reinterpret_cast<const sockaddr*>(&ss), len);
  REQUIRE(back);
  CHECK(*back == *e);
}

TEST_CASE("to_sockaddr writes network byte order", "[endpoint]") {
  sockaddr_storage ss{};
  REQUIRE(Endpoint::parse("198.18.0.1:258")->to_sockaddr(ss) == sizeof(sockaddr_in));
  sockaddr_in sin{};
  std::memcpy(&sin, &ss, sizeof sin);
  CHECK(sin.sin_port == htons(258));
  CHECK(sin.sin_addr.s_addr == htonl(0xC6120001u));
}

TEST_CASE("to_sockaddr of an invalid endpoint is empty", "[endpoint]") {
  sockaddr_storage ss{};
  CHECK(Endpoint{}.to_sockaddr(ss) == 0);
}

TEST_CASE("from_sockaddr turns v4-mapped IPv6 into IPv4", "[endpoint]") {
  sockaddr_in6 sin6{};
  sin6.sin6_family = AF_INET6;
  sin6.sin6_port = htons(4242);
  REQUIRE(inet_pton(AF_INET6, "::ffff:198.18.0.7", &sin6.sin6_addr) == 1);
  auto e = Endpoint::from_sockaddr(reinterpret_cast<const sockaddr*>(&sin6), sizeof sin6);
  REQUIRE(e);
  CHECK(e->is_v4());
  CHECK(*e == *Endpoint::parse("198.18.0.7:4242"));
  CHECK(e->str() == "198.18.0.7:4242");
  // The v4 bytes land where a parsed v4 address keeps them, so hashes agree too.
  CHECK(EndpointHash{}(*e) == EndpointHash{}(*Endpoint::parse("198.18.0.7:4242")));
}

TEST_CASE("from_sockaddr rejects short and foreign addresses", "[endpoint]") {
  CHECK_FALSE(Endpoint::from_sockaddr(nullptr, 0));
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  CHECK_FALSE(Endpoint::from_sockaddr(reinterpret_cast<const sockaddr*>(&sin), sizeof sin - 1));
  sockaddr_in6 sin6{};
  sin6.sin6_family = AF_INET6;
  CHECK_FALSE(Endpoint::from_sockaddr(reinterpret_cast<const sockaddr*>(&sin6), sizeof sin6 - 1));
  sockaddr_storage ss{};
  ss.ss_family = AF_UNIX;
  CHECK_FALSE(Endpoint::from_sockaddr(reinterpret_cast<const sockaddr*>(&ss), sizeof ss));
}

TEST_CASE("equality and hash agree", "[endpoint]") {
  EndpointHash h;
  auto a = *Endpoint::parse("10.1.2.3:99");
  auto b = *Endpoint::parse("10.1.2.3:99");
  CHECK(a == b);
  CHECK(h(a) == h(b));
  CHECK_FALSE(a == *Endpoint::parse("10.1.2.3:98"));
  CHECK_FALSE(a == *Endpoint::parse("10.1.2.4:99"));
  // Same bytes, different family: ::a01:203 is not 10.1.2.3.
  CHECK_FALSE(*Endpoint::parse("[::a01:203]:99") == a);
  CHECK_FALSE(*Endpoint::parse("[::ffff:10.1.2.3]:99") == a);

  std::unordered_set<Endpoint, EndpointHash> set;
  for (auto t : {"10.1.2.3:99", "10.1.2.3:99", "[::1]:99", "[::1]:99", "[::1]:98", "10.1.2.3:98"})
    set.insert(*Endpoint::parse(t));
  CHECK(set.size() == 4);
  CHECK(set.count(*Endpoint::parse("[0:0::1]:99")) == 1);
}

TEST_CASE("is_unspecified", "[endpoint]") {
  CHECK(Endpoint::parse("0.0.0.0:1")->is_unspecified());
  CHECK(Endpoint::parse("[::]:1")->is_unspecified());
  CHECK(Endpoint::parse("[0:0:0:0:0:0:0:0]:1")->is_unspecified());
  CHECK_FALSE(Endpoint::parse("0.0.0.1:1")->is_unspecified());
  CHECK_FALSE(Endpoint::parse("[::1]:1")->is_unspecified());
  CHECK_FALSE(Endpoint::parse("[::ffff:0.0.0.0]:1")->is_unspecified());
  CHECK_FALSE(Endpoint{}.is_unspecified());
}

TEST_CASE("default endpoint is invalid", "[endpoint]") {
  Endpoint e;
  CHECK_FALSE(e.valid());
  CHECK(e.family == Family::None);
  CHECK(e.addr_len() == 0);
  CHECK(e == Endpoint{});
}

#include "net/express_meter.h"

TEST_CASE("express meter: light flows stay light, bulk turns heavy and comes back", "[express]") {
  using mpudp::ExpressMeter;
  constexpr std::uint32_t kRate = 64000;  // tunnel.express_rate's default, 512 kbit/s
  SECTION("a call at 50 pps of 172 bytes is light for a minute") {
    ExpressMeter m;
    for (std::uint32_t t = 0; t < 60000; t += 20) REQUIRE(m.light(t, 172, kRate));
  }
  SECTION("a bulk flow is light for its first burst only") {
    ExpressMeter m;
    int light = 0;
    for (std::uint32_t i = 0; i < 1000; ++i) light += m.light(i / 10, 1200, kRate) ? 1 : 0;  // ~9.6 MB/s
    CHECK(light == static_cast<int>(ExpressMeter::burst(kRate) / 1200));
  }
  SECTION("a heavy flow is light again only once the bucket has filled") {
    ExpressMeter m;
    std::uint32_t t = 1000;
    while (m.light(t, 1200, kRate)) {}
    CHECK_FALSE(m.light(t + 100, 1200, kRate));  // 6.4 KB back, 1.2 KB spent: still heavy
    CHECK_FALSE(m.light(t + 200, 100, kRate));
    CHECK(m.light(t + 600, 100, kRate));  // > a quarter second of credit
  }
  SECTION("a flow just above the rate does not alternate") {
    ExpressMeter m;
    int switches = 0;
    bool last = true;
    for (std::uint32_t t = 0; t < 10000; t += 10) {  // 70 KB/s against 64 KB/s
      const bool l = m.light(t, 700, kRate);
      switches += l != last ? 1 : 0;
      last = l;
    }
    CHECK(switches <= 2);
  }
  SECTION("the clock may wrap") {
    ExpressMeter m;
    const std::uint32_t near = 0xffffff00u;
    while (m.light(near, 1200, kRate)) {}
    CHECK(m.light(near + 1000u, 100, kRate));  // wrapped past zero, a second later
  }
  SECTION("a video call is heavy at the default rate, light at 3 mbit") {
    // 2 Mbit/s in 1100-byte datagrams, 20 s.
    ExpressMeter low, high;
    int light_low = 0, light_high = 0;
    for (std::uint32_t i = 0; i < 4545; ++i) {
      const std::uint32_t t = i * 4400 / 1000;
      light_low += low.light(t, 1100, kRate) ? 1 : 0;
      light_high += high.light(t, 1100, 3000000 / 8) ? 1 : 0;
    }
    CHECK(light_low < 100);
    CHECK(light_high == 4545);
  }
  SECTION("a reload to a lower rate applies to a flow at once") {
    ExpressMeter m;
    for (std::uint32_t t = 0; t < 2000; t += 10) REQUIRE(m.light(t, 1000, 200000));  // 100 KB/s
    // Then 36 KB/s over the new rate: heavy once its 16 KB burst is spent (~0.45 s).
    int light = 0;
    bool last = true;
    for (std::uint32_t t = 2000; t < 4000; t += 10) light += (last = m.light(t, 1000, kRate)) ? 1 : 0;
    CHECK(light < 50);
    CHECK_FALSE(last);
  }
}

TEST_CASE("copy classes match a flow by its ends or a datagram's DSCP", "[copy_classes]") {
  using mpudp::CopyClasses;
  auto e = [](const char* text) { return *Endpoint::parse(text); };
  CopyClasses c;
  CHECK(c.empty());
  CHECK_FALSE(c.matches(e("198.18.1.7:40000"), e("198.18.9.1:5060")));
  CHECK_FALSE(c.matches_dscp(46));
  c.ports = {{5060, 5060}, {3478, 3481}};
  c.hosts = {*mpudp::Cidr::parse("198.18.1.64/26"), *mpudp::Cidr::parse("2001:db8:1::5")};
  c.dscp = std::uint64_t{1} << 46;
  CHECK_FALSE(c.empty());
  // The server's port, or the client's own (a console's fixed port).
  CHECK(c.matches(e("198.18.1.7:40000"), e("198.18.9.1:5060")));
  CHECK(c.matches(e("198.18.1.7:3481"), e("198.18.9.1:443")));
  CHECK(c.matches(e("198.18.1.7:40000"), e("198.18.9.1:3478")));
  CHECK_FALSE(c.matches(e("198.18.1.7:40000"), e("198.18.9.1:3482")));
  CHECK_FALSE(c.matches(e("198.18.1.7:40000"), e("198.18.9.1:5061")));
  // The LAN host, by prefix, either family.
  CHECK(c.matches(e("198.18.1.100:40000"), e("198.18.9.1:443")));
  CHECK_FALSE(c.matches(e("198.18.1.63:40000"), e("198.18.9.1:443")));
  CHECK(c.matches(e("[2001:db8:1::5]:40000"), e("[2001:db8:9::1]:443")));
  CHECK_FALSE(c.matches(e("[2001:db8:1::6]:40000"), e("[2001:db8:9::1]:443")));
  CHECK(c.matches_dscp(46));
  CHECK_FALSE(c.matches_dscp(0));
  CHECK_FALSE(c.matches_dscp(34));
  CHECK_FALSE(c.matches_dscp(64));  // not a DSCP: never shifted past the mask
}

// IP/UDP parsing of queued packets and building of reply packets, against hand-made
// packets and checksums known from elsewhere (RFC 1071's example, the Wikipedia IPv4
// header example) or computed by an independent implementation.
#include <catch2/catch.hpp>
#include <cstdint>
#include <vector>

#include "intercept/packet.h"

using mpudp::Endpoint;
using mpudp::Family;
using namespace mpudp::packet;

namespace {

Endpoint ep(const char* s) { return *Endpoint::parse(s); }

std::vector<std::uint8_t> bytes(std::initializer_list<int> v) {
  std::vector<std::uint8_t> out;
  for (int b : v) out.push_back(static_cast<std::uint8_t>(b));
  return out;
}

std::vector<std::uint8_t> build(const char* src, const char* dst, std::string_view payload) {
  std::vector<std::uint8_t> out(2048);
  const auto n = build_udp(ep(src), ep(dst),
                           {reinterpret_cast<const std::uint8_t*>(payload.data()), payload.size()},
                           out);
  out.resize(n);
  return out;
}

std::string str(std::span<const std::uint8_t> s) { return {s.begin(), s.end()}; }

}  // namespace

TEST_CASE("Internet checksum: known values") {
  // RFC 1071 §3: the one's complement sum of these words is 0xddf2.
  const auto rfc = bytes({0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7});
  CHECK(checksum(rfc) == static_cast<std::uint16_t>(~0xddf2));
  // The IPv4 header example of Wikipedia's "Internet checksum" article.
  const auto hdr = bytes({0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11,
                          0x00, 0x00, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7});
  CHECK(checksum(hdr) == 0xb861);
  // An odd length pads with a zero byte.
  CHECK(checksum(bytes({0x01})) == static_cast<std::uint16_t>(~0x0100));
}

TEST_CASE("build_udp IPv4: golden packet") {
  const auto p = build("198.18.4.2:7", "198.18.0.2:40000", "hello");
  const auto want = bytes({0x45, 0x00, 0x00, 0x21, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xaa,
                           0xa3, 198, 18, 4, 2, 198, 18, 0, 2,  // IPv4
                           0x00, 0x07, 0x9c, 0x40, 0x00, 0x0d, 0x8f, 0x91,  // UDP
                           'h', 'e', 'l', 'l', 'o'});
  CHECK(p == want);
  // A header with its checksum in place sums to zero.
  CHECK(checksum(std::span(p).first(20)) == 0);
}

TEST_CASE("build_udp IPv6: golden checksum, mandatory") {
  const auto p = build("[2001:db8:4::2]:7", "[2001:db8::2]:40000", "hello");
  REQUIRE(p.size() == 40 + 8 + 5);
  CHECK(p[0] == 0x60);
  CHECK(p[4] == 0x00);
  CHECK(p[5] == 13);  // payload length
  CHECK(p[6] == 17);
  CHECK(p[7] == 64);
  CHECK(p[40 + 6] == 0xc4);
  CHECK(p[40 + 7] == 0x40);
}

TEST_CASE("build_udp then parse_udp round trip, both families") {
  for (auto [src, dst] : {std::pair{"198.18.4.2:53", "198.18.0.2:1234"},
                          std::pair{"[2001:db8:4::2]:443", "[2001:db8::2]:5353"}}) {
    const auto p = build(src, dst, "payload!");
    ParseError why{};
    const auto d = parse_udp(p, &why);
    REQUIRE(d);
    CHECK(d->src == ep(src));
    CHECK(d->dst == ep(dst));
    CHECK(str(d->payload) == "payload!");
    // The UDP checksum verifies: summing it in gives zero (shown as 0xffff by udp_checksum).
    const std::size_t ip = d->src.is_v6() ? 40 : 20;
    CHECK(udp_checksum(d->src, d->dst, std::span(p).subspan(ip)) == 0xffff);
  }
}

TEST_CASE("parse_udp reads the DSCP the client marked, both families") {
  // cpe.copy_classes matches it: EF (46) is 0xb8 in the TOS byte, split across the
  // first two bytes of an IPv6 header.
  auto v4 = build("198.18.0.2:1234", "198.18.4.2:53", "x");
  v4[1] = 0xb8 | 0x01;  // ECN bits are not the DSCP
  auto d4 = parse_udp(v4);
  REQUIRE(d4);
  CHECK(d4->dscp == 46);
  auto v6 = build("[2001:db8::2]:5353", "[2001:db8:4::2]:443", "x");
  v6[0] = static_cast<std::uint8_t>(0x60 | (0xb8 >> 4));
  v6[1] = static_cast<std::uint8_t>(((0xb8 & 0x0f) << 4) | (v6[1] & 0x0f));
  auto d6 = parse_udp(v6);
  REQUIRE(d6);
  CHECK(d6->dscp == 46);
  CHECK(parse_udp(build("198.18.0.2:1234", "198.18.4.2:53", "x"))->dscp == 0);
}

TEST_CASE("build_udp refuses what does not fit") {
  std::vector<std::uint8_t> small(30);
  const std::uint8_t pl[4] = {1, 2, 3, 4};
  CHECK(build_udp(ep("198.18.4.2:7"), ep("198.18.0.2:9"), pl, small) == 0);
  CHECK(build_udp(ep("198.18.4.2:7"), ep("[2001:db8::2]:9"), pl, small) == 0);
  std::vector<std::uint8_t> big(70000);
  std::vector<std::uint8_t> huge(65535 - 28 + 1);
  CHECK(build_udp(ep("198.18.4.2:7"), ep("198.18.0.2:9"), huge, big) == 0);
  huge.pop_back();
  CHECK(build_udp(ep("198.18.4.2:7"), ep("198.18.0.2:9"), huge, big) == 65535);
  CHECK(udp_packet_size(Family::V6, 10) == 58);
}

TEST_CASE("parse_udp IPv4 with options and link padding") {
  auto p = build("198.18.0.2:1000", "198.18.4.2:7", "abc");
  // Insert 4 bytes of options (NOP NOP NOP EOL): IHL 6, total length + 4.
  p.insert(p.begin() + 20, {1, 1, 1, 0});
  p[0] = 0x46;
  p[3] = static_cast<std::uint8_t>(p[3] + 4);
  p.push_back(0xee);  // trailing padding beyond the total length is ignored
  const auto d = parse_udp(p);
  REQUIRE(d);
  CHECK(d->dst == ep("198.18.4.2:7"));
  CHECK(str(d->payload) == "abc");
}

TEST_CASE("parse_udp IPv4 rejects") {
  const auto good = build("198.18.0.2:1000", "198.18.4.2:7", "abc");
  ParseError why{};
  auto p = good;
  p[6] = 0x20;  // MF
  CHECK(!parse_udp(p, &why));
  CHECK(why == ParseError::Fragment);
  p = good;
  p[7] = 0x10;  // offset
  CHECK(!parse_udp(p, &why));
  CHECK(why == ParseError::Fragment);
  p = good;
  p[9] = 6;
  CHECK(!parse_udp(p, &why));
  CHECK(why == ParseError::NotUdp);
  p = good;
  p.resize(25);
  CHECK(!parse_udp(p, &why));
  CHECK(why == ParseError::Truncated);
  p = good;
  p[0] = 0x44;
  CHECK(!parse_udp(p, &why));
  CHECK(why == ParseError::BadHeader);
  p = good;
  p[20 + 5] = 100;  // UDP length beyond the packet
  CHECK(!parse_udp(p, &why));
  CHECK(why == ParseError::Truncated);
  p = good;
  p[20 + 5] = 7;  // UDP length below its header
  CHECK(!parse_udp(p, &why));
  CHECK(why == ParseError::BadHeader);
  CHECK(!parse_udp(std::span<const std::uint8_t>{}, &why));
  CHECK(!parse_udp(bytes({0x50}), &why));
  CHECK(why == ParseError::BadHeader);
}

namespace {
// Inserts an extension header of type `type` (8 bytes) after the fixed IPv6 header.
void insert_ext(std::vector<std::uint8_t>& p, std::uint8_t type, std::vector<std::uint8_t> ext) {
  ext[0] = p[6];  // its next header is what the fixed header named
  p[6] = type;
  p.insert(p.begin() + 40, ext.begin(), ext.end());
  const std::size_t plen = (static_cast<std::size_t>(p[4]) << 8 | p[5]) + ext.size();
  p[4] = static_cast<std::uint8_t>(plen >> 8);
  p[5] = static_cast<std::uint8_t>(plen);
}
}  // namespace

TEST_CASE("parse_udp IPv6 extension headers") {
  const auto good = build("[2001:db8::2]:1000", "[2001:db8:4::2]:7", "xyz");
  auto p = good;
  insert_ext(p, 60, bytes({0, 0, 1, 4, 0, 0, 0, 0}));                    // dest opts, PadN
  insert_ext(p, 43, bytes({0, 0, 0, 0, 0, 0, 0, 0}));                    // routing, 0 left
  insert_ext(p, 0, bytes({0, 1, 1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}));  // hop-by-hop, 16 B
  insert_ext(p, 44, bytes({0, 0, 0, 0, 0, 0, 0, 1}));                    // atomic fragment
  ParseError why{};
  auto d = parse_udp(p, &why);
  REQUIRE(d);
  CHECK(d->src == ep("[2001:db8::2]:1000"));
  CHECK(d->dst == ep("[2001:db8:4::2]:7"));
  CHECK(str(d->payload) == "xyz");

  auto f = good;
  insert_ext(f, 44, bytes({0, 0, 0, 1, 0, 0, 0, 1}));  // M flag: a first fragment
  CHECK(!parse_udp(f, &why));
  CHECK(why == ParseError::Fragment);
  f = good;
  insert_ext(f, 44, bytes({0, 0, 0, 8, 0, 0, 0, 1}));  // offset 1
  CHECK(!parse_udp(f, &why));
  CHECK(why == ParseError::Fragment);
  f = good;
  insert_ext(f, 50, bytes({0, 0, 0, 0, 0, 0, 0, 0}));  // ESP: unreadable
  CHECK(!parse_udp(f, &why));
  CHECK(why == ParseError::NotUdp);
  f = good;
  f[4] = 0;
  f[5] = 0;  // jumbogram
  CHECK(!parse_udp(f, &why));
  CHECK(why == ParseError::BadHeader);
  f = good;
  f[5] = static_cast<std::uint8_t>(f[5] + 1);  // payload length beyond the bytes
  CHECK(!parse_udp(f, &why));
  CHECK(why == ParseError::Truncated);
  // A chain longer than the walk allows.
  f = good;
  for (int i = 0; i < 10; ++i) insert_ext(f, 60, bytes({0, 0, 1, 4, 0, 0, 0, 0}));
  CHECK(!parse_udp(f, &why));
  CHECK(why == ParseError::NotUdp);
}

namespace {
std::uint16_t rd(const std::vector<std::uint8_t>& p, std::size_t at) {
  return static_cast<std::uint16_t>((p[at] << 8) | p[at + 1]);
}
std::vector<std::uint8_t> icmp(const char* remote, const char* client, std::uint8_t type,
                               std::uint8_t code, std::uint32_t mtu, std::size_t len) {
  std::vector<std::uint8_t> out(kIcmpErrorMax);
  const auto n = build_icmp_error(ep(remote), ep(client), type, code, mtu, len, out);
  out.resize(n);
  return out;
}
}  // namespace

TEST_CASE("build_icmp_error IPv4: port unreachable, golden checksums, quoted datagram") {
  // Checksums from an independent implementation (Python, RFC 1071).
  const auto p = icmp("198.51.100.7:53", "192.168.1.10:40000", 3, 3, 0, 4);
  REQUIRE(p.size() == 20 + 8 + 20 + 8);
  CHECK(p[0] == 0x45);
  CHECK(rd(p, 2) == 56);
  CHECK(p[9] == 1);  // ICMP
  CHECK(std::vector<std::uint8_t>(p.begin() + 12, p.begin() + 16) == bytes({198, 51, 100, 7}));
  CHECK(std::vector<std::uint8_t>(p.begin() + 16, p.begin() + 20) == bytes({192, 168, 1, 10}));
  CHECK(checksum({p.data(), 20}) == 0);  // the header's checksum is right
  CHECK(p[20] == 3);
  CHECK(p[21] == 3);
  CHECK(rd(p, 22) == 0x607b);
  CHECK(checksum({p.data() + 20, p.size() - 20}) == 0);
  // The quote: the client's datagram as it left the client (client -> remote, UDP).
  const std::size_t q = 28;
  CHECK(p[q] == 0x45);
  CHECK(rd(p, q + 2) == 20 + 8 + 4);
  CHECK(p[q + 9] == 17);
  CHECK(rd(p, q + 10) == 0x4ee0);
  CHECK(std::vector<std::uint8_t>(p.begin() + q + 12, p.begin() + q + 16) ==
        bytes({192, 168, 1, 10}));
  CHECK(std::vector<std::uint8_t>(p.begin() + q + 16, p.begin() + q + 20) ==
        bytes({198, 51, 100, 7}));
  CHECK(rd(p, q + 20) == 40000);
  CHECK(rd(p, q + 22) == 53);
  CHECK(rd(p, q + 24) == 12);
}

TEST_CASE("build_icmp_error IPv4: fragmentation needed carries the next-hop MTU") {
  const auto p = icmp("198.51.100.7:443", "192.168.1.10:40000", 3, 4, 1280, 1400);
  REQUIRE(p.size() == 56);
  CHECK(p[20] == 3);
  CHECK(p[21] == 4);
  CHECK(rd(p, 24) == 0);  // unused
  CHECK(rd(p, 26) == 1280);
  CHECK(checksum({p.data() + 20, p.size() - 20}) == 0);
  CHECK(rd(p, 28 + 2) == 1428);  // the quoted datagram's total length
  CHECK(rd(p, 28 + 6) == 0x4000);  // DF
}

TEST_CASE("build_icmp_error IPv6: packet too big, golden checksum") {
  const auto p = icmp("[2001:db8:1::7]:53", "[2001:db8::10]:40000", 2, 0, 1280, 1400);
  REQUIRE(p.size() == 40 + 8 + 40 + 8);
  CHECK(p[0] == 0x60);
  CHECK(rd(p, 4) == 8 + 48);
  CHECK(p[6] == 58);
  CHECK(p[40] == 2);
  CHECK(p[41] == 0);
  CHECK(rd(p, 42) == 0x28c3);
  CHECK(rd(p, 44) == 0);
  CHECK(rd(p, 46) == 1280);
  const std::size_t q = 48;
  CHECK(p[q] == 0x60);
  CHECK(rd(p, q + 4) == 1408);
  CHECK(p[q + 6] == 17);
  CHECK(p[q + 8] == 0x20);  // client 2001:db8::10 is the quote's source
  CHECK(p[q + 23] == 0x10);
  CHECK(p[q + 39] == 0x07);  // remote 2001:db8:1::7 its destination
  CHECK(rd(p, q + 40) == 40000);
  CHECK(rd(p, q + 42) == 53);
  CHECK(rd(p, q + 44) == 1408);
}

TEST_CASE("build_icmp_error refuses mixed families and short buffers") {
  std::vector<std::uint8_t> out(kIcmpErrorMax);
  CHECK(build_icmp_error(ep("198.51.100.7:53"), ep("[2001:db8::10]:1"), 3, 3, 0, 0, out) == 0);
  std::vector<std::uint8_t> small(55);
  CHECK(build_icmp_error(ep("198.51.100.7:53"), ep("192.168.1.10:1"), 3, 3, 0, 0, small) == 0);
  // A length beyond 16 bits is capped, not wrapped.
  const auto p = icmp("198.51.100.7:53", "192.168.1.10:40000", 3, 3, 0, 70000);
  CHECK(rd(p, 28 + 2) == 0xffff);
  CHECK(rd(p, 28 + 24) == 0xffff);
}

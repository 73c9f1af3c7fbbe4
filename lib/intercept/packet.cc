#include "intercept/packet.h"

#include <algorithm>
#include <cstring>

namespace mpudp::packet {
namespace {

constexpr std::uint8_t kProtoUdp = 17;
constexpr std::uint8_t kProtoIcmp = 1;
constexpr std::uint8_t kProtoIcmpv6 = 58;
constexpr std::size_t kIcmpHeaderLen = 8;
constexpr std::uint8_t kHopByHop = 0;
constexpr std::uint8_t kRouting = 43;
constexpr std::uint8_t kFragment = 44;
constexpr std::uint8_t kDestOpts = 60;
// A bound on the extension-header walk, so a hostile chain cannot keep us busy.
constexpr int kMaxExtHeaders = 8;

std::uint16_t rd16(const std::uint8_t* p) {
  return static_cast<std::uint16_t>((p[0] << 8) | p[1]);
}
void wr16(std::uint8_t* p, std::uint16_t v) {
  p[0] = static_cast<std::uint8_t>(v >> 8);
  p[1] = static_cast<std::uint8_t>(v);
}

std::uint32_t sum_words(std::span<const std::uint8_t> d, std::uint32_t sum) {
  std::size_t i = 0;
  for (; i + 1 < d.size(); i += 2) sum += rd16(d.data() + i);
  if (i < d.size()) sum += static_cast<std::uint32_t>(d[i]) << 8;
  // Fold now and then would be needed beyond 128 KiB; callers stay below 64 KiB + 40.
  return sum;
}

std::uint16_t fold(std::uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<std::uint16_t>(~sum & 0xffff);
}

// An IPv4 (no options, DF: sent whole or not at all, so the id may stay 0, RFC 6864) or
// IPv6 header at `p`, zeroed first, for `payload_len` bytes of protocol `proto` after it;
// the IPv4 total length is capped at 65535 (a quote may name a larger datagram).
void write_ip_header(std::uint8_t* p, const Endpoint& src, const Endpoint& dst,
                     std::uint8_t proto, std::size_t payload_len, std::uint8_t ttl) {
  if (src.is_v6()) {
    std::memset(p, 0, kIpv6HeaderLen);
    p[0] = 0x60;
    wr16(p + 4, static_cast<std::uint16_t>(std::min<std::size_t>(payload_len, 0xffff)));
    p[6] = proto;
    p[7] = ttl;
    std::memcpy(p + 8, src.addr.data(), 16);
    std::memcpy(p + 24, dst.addr.data(), 16);
    return;
  }
  std::memset(p, 0, kIpv4HeaderLen);
  p[0] = 0x45;
  wr16(p + 2, static_cast<std::uint16_t>(std::min<std::size_t>(kIpv4HeaderLen + payload_len, 0xffff)));
  wr16(p + 6, 0x4000);
  p[8] = ttl;
  p[9] = proto;
  std::memcpy(p + 12, src.addr.data(), 4);
  std::memcpy(p + 16, dst.addr.data(), 4);
  wr16(p + 10, fold(sum_words({p, kIpv4HeaderLen}, 0)));
}

std::optional<UdpDatagram> fail(ParseError* why, ParseError e) {
  if (why) *why = e;
  return std::nullopt;
}

// The UDP header at `udp` (bytes to the end of the IP payload), addresses from the IP
// header.
std::optional<UdpDatagram> parse_udp_header(std::span<const std::uint8_t> udp, Endpoint src,
                                            Endpoint dst, ParseError* why) {
  if (udp.size() < kUdpHeaderLen) return fail(why, ParseError::Truncated);
  const std::size_t len = rd16(udp.data() + 4);
  if (len < kUdpHeaderLen) return fail(why, ParseError::BadHeader);
  if (len > udp.size()) return fail(why, ParseError::Truncated);
  src.port = rd16(udp.data());
  dst.port = rd16(udp.data() + 2);
  return UdpDatagram{src, dst, udp.subspan(kUdpHeaderLen, len - kUdpHeaderLen)};
}

std::optional<UdpDatagram> parse_v4(std::span<const std::uint8_t> p, ParseError* why) {
  if (p.size() < kIpv4HeaderLen) return fail(why, ParseError::Truncated);
  const std::size_t ihl = static_cast<std::size_t>(p[0] & 0x0f) * 4;
  const std::size_t total = rd16(p.data() + 2);
  if (ihl < kIpv4HeaderLen || total < ihl) return fail(why, ParseError::BadHeader);
  if (total > p.size()) return fail(why, ParseError::Truncated);
  const std::uint16_t frag = rd16(p.data() + 6);
  if ((frag & 0x2000) != 0 || (frag & 0x1fff) != 0) return fail(why, ParseError::Fragment);
  if (p[9] != kProtoUdp) return fail(why, ParseError::NotUdp);
  Endpoint src, dst;
  src.family = dst.family = Family::V4;
  std::memcpy(src.addr.data(), p.data() + 12, 4);
  std::memcpy(dst.addr.data(), p.data() + 16, 4);
  // Bytes after `total` are link-layer padding, not ours.
  auto d = parse_udp_header(p.subspan(ihl, total - ihl), src, dst, why);
  if (d) d->dscp = static_cast<std::uint8_t>(p[1] >> 2);
  return d;
}

std::optional<UdpDatagram> parse_v6(std::span<const std::uint8_t> p, ParseError* why) {
  if (p.size() < kIpv6HeaderLen) return fail(why, ParseError::Truncated);
  const std::size_t plen = rd16(p.data() + 4);
  // Payload length 0 means a jumbogram (RFC 2675): never on a LAN we serve.
  if (plen == 0) return fail(why, ParseError::BadHeader);
  if (kIpv6HeaderLen + plen > p.size()) return fail(why, ParseError::Truncated);
  Endpoint src, dst;
  src.family = dst.family = Family::V6;
  std::memcpy(src.addr.data(), p.data() + 8, 16);
  std::memcpy(dst.addr.data(), p.data() + 24, 16);

  std::uint8_t next = p[6];
  auto rest = p.subspan(kIpv6HeaderLen, plen);
  for (int i = 0; i <= kMaxExtHeaders; ++i) {
    switch (next) {
      case kProtoUdp: {
        auto d = parse_udp_header(rest, src, dst, why);
        // Traffic class: the low nibble of byte 0 and the high one of byte 1.
        if (d) d->dscp = static_cast<std::uint8_t>(((p[0] & 0x0f) << 2) | (p[1] >> 6));
        return d;
      }
      case kHopByHop:
      case kRouting:
      case kDestOpts: {
        if (rest.size() < 8) return fail(why, ParseError::Truncated);
        const std::size_t len = (static_cast<std::size_t>(rest[1]) + 1) * 8;
        if (len > rest.size()) return fail(why, ParseError::Truncated);
        next = rest[0];
        rest = rest.subspan(len);
        break;
      }
      case kFragment: {
        if (rest.size() < 8) return fail(why, ParseError::Truncated);
        // Offset (13 bits) and the M flag: only a whole datagram is one we can read.
        if ((rd16(rest.data() + 2) & 0xfff9) != 0) return fail(why, ParseError::Fragment);
        next = rest[0];
        rest = rest.subspan(8);
        break;
      }
      default:
        return fail(why, ParseError::NotUdp);
    }
  }
  return fail(why, ParseError::NotUdp);
}

}  // namespace

std::uint16_t checksum(std::span<const std::uint8_t> data, std::uint32_t sum) {
  return fold(sum_words(data, sum));
}

std::uint16_t udp_checksum(const Endpoint& src, const Endpoint& dst,
                           std::span<const std::uint8_t> udp) {
  // Pseudo-header: addresses, protocol and UDP length (RFC 768; RFC 8200 §8.1).
  const std::size_t alen = src.addr_len();
  std::uint32_t sum = sum_words({src.addr.data(), alen}, 0);
  sum = sum_words({dst.addr.data(), alen}, sum);
  sum += kProtoUdp;
  sum += static_cast<std::uint32_t>(udp.size() & 0xffff) +
         static_cast<std::uint32_t>(udp.size() >> 16);
  const std::uint16_t c = checksum(udp, sum);
  return c == 0 ? 0xffff : c;
}

std::optional<UdpDatagram> parse_udp(std::span<const std::uint8_t> pkt, ParseError* why) {
  if (pkt.empty()) return fail(why, ParseError::Truncated);
  switch (pkt[0] >> 4) {
    case 4:
      return parse_v4(pkt, why);
    case 6:
      return parse_v6(pkt, why);
    default:
      return fail(why, ParseError::BadHeader);
  }
}

std::size_t udp_packet_size(Family family, std::size_t payload_len) {
  return (family == Family::V6 ? kIpv6HeaderLen : kIpv4HeaderLen) + kUdpHeaderLen + payload_len;
}

std::size_t build_udp(const Endpoint& src, const Endpoint& dst,
                      std::span<const std::uint8_t> payload, std::span<std::uint8_t> out,
                      std::uint8_t ttl) {
  if (src.family != dst.family || !src.valid()) return 0;
  const bool v6 = src.is_v6();
  const std::size_t ip_len = v6 ? kIpv6HeaderLen : kIpv4HeaderLen;
  const std::size_t udp_len = kUdpHeaderLen + payload.size();
  const std::size_t total = ip_len + udp_len;
  // IPv4 total length and the UDP length are both 16-bit fields.
  if (total > out.size() || (v6 ? udp_len : total) > 0xffff) return 0;
  std::uint8_t* p = out.data();
  // DF: larger replies take the transparent socket path, where the kernel fragments.
  write_ip_header(p, src, dst, kProtoUdp, udp_len, ttl);
  std::uint8_t* u = p + ip_len;
  std::memset(u, 0, kUdpHeaderLen);
  wr16(u, src.port);
  wr16(u + 2, dst.port);
  wr16(u + 4, static_cast<std::uint16_t>(udp_len));
  if (!payload.empty()) std::memcpy(u + kUdpHeaderLen, payload.data(), payload.size());
  wr16(u + 6, udp_checksum(src, dst, {u, udp_len}));
  return total;
}

std::size_t build_icmp_error(const Endpoint& remote, const Endpoint& client, std::uint8_t type,
                             std::uint8_t code, std::uint32_t mtu, std::size_t payload_len,
                             std::span<std::uint8_t> out) {
  if (remote.family != client.family || !remote.valid()) return 0;
  const bool v6 = remote.is_v6();
  const std::size_t ip_len = v6 ? kIpv6HeaderLen : kIpv4HeaderLen;
  const std::size_t quote = ip_len + kUdpHeaderLen;
  const std::size_t icmp_len = kIcmpHeaderLen + quote;
  const std::size_t total = ip_len + icmp_len;
  if (total > out.size()) return 0;
  std::uint8_t* p = out.data();
  std::memset(p, 0, total);
  // The quoted datagram first: the client's own, as it left the client.
  std::uint8_t* q = p + ip_len + kIcmpHeaderLen;
  const std::size_t udp_len = std::min<std::size_t>(kUdpHeaderLen + payload_len, 0xffff);
  write_ip_header(q, client, remote, kProtoUdp, udp_len, 64);
  std::uint8_t* u = q + ip_len;
  wr16(u, client.port);
  wr16(u + 2, remote.port);
  wr16(u + 4, static_cast<std::uint16_t>(udp_len));
  // The ICMP header: type, code, checksum, then the 32-bit field the type defines.
  std::uint8_t* m = p + ip_len;
  m[0] = type;
  m[1] = code;
  if (v6) {
    // Packet Too Big: a 32-bit MTU; the other errors leave the field unused (0).
    m[4] = static_cast<std::uint8_t>(mtu >> 24);
    m[5] = static_cast<std::uint8_t>(mtu >> 16);
    wr16(m + 6, static_cast<std::uint16_t>(mtu));
  } else {
    wr16(m + 6, static_cast<std::uint16_t>(mtu));  // next-hop MTU (RFC 1191)
  }
  write_ip_header(p, remote, client, v6 ? kProtoIcmpv6 : kProtoIcmp, icmp_len, 64);
  if (v6) {
    // ICMPv6 carries a pseudo-header checksum (RFC 4443 §2.3).
    std::uint32_t sum = sum_words({remote.addr.data(), 16}, 0);
    sum = sum_words({client.addr.data(), 16}, sum);
    sum += static_cast<std::uint32_t>(icmp_len) + kProtoIcmpv6;
    wr16(m + 2, checksum({m, icmp_len}, sum));
  } else {
    wr16(m + 2, checksum({m, icmp_len}));
  }
  return total;
}

}  // namespace mpudp::packet

// IP + UDP packets as bytes, for NFQUEUE: what a queued LAN packet says (client, original
// destination, payload), and the reply packet written through a raw socket. Pure: no IO,
// so unit tests feed it hand-made and golden packets.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "net/endpoint.h"

namespace mpudp::packet {

struct UdpDatagram {
  Endpoint src;  // the LAN client
  Endpoint dst;  // the original destination
  std::span<const std::uint8_t> payload;
  std::uint8_t dscp = 0;  // the upper six bits of the TOS / traffic class byte
};

enum class ParseError : std::uint8_t {
  Truncated,  // shorter than its headers or length fields say
  BadHeader,  // unknown IP version, header length or UDP length out of range
  NotUdp,     // another transport (or one behind ESP/AH, which we cannot read)
  Fragment,   // a fragment that was not reassembled
};

constexpr std::size_t kIpv4HeaderLen = 20;
constexpr std::size_t kIpv6HeaderLen = 40;
constexpr std::size_t kUdpHeaderLen = 8;

// `pkt` starts at the IP header. IPv4 options and the IPv6 hop-by-hop, routing and
// destination-options headers are skipped; a fragment header is accepted only when it
// describes a whole datagram (offset 0, no more fragments), as after reassembly.
std::optional<UdpDatagram> parse_udp(std::span<const std::uint8_t> pkt,
                                     ParseError* why = nullptr);

// Bytes build_udp needs for `payload_len` bytes of payload in `family`.
std::size_t udp_packet_size(Family family, std::size_t payload_len);

// Writes an IPv4 (no options, DF set) or IPv6 header and a UDP header with its checksum
// (mandatory in IPv6) into `out`, then the payload. `src` and `dst` must be of the same
// family. Returns the packet's length; 0 when it does not fit in `out` or in 65535 bytes.
std::size_t build_udp(const Endpoint& src, const Endpoint& dst,
                      std::span<const std::uint8_t> payload, std::span<std::uint8_t> out,
                      std::uint8_t ttl = 64);

// An ICMP (IPv4) or ICMPv6 error about a UDP datagram, the one a router or the remote
// would have sent the client: from `remote` to `client`, quoting the datagram's IP header
// (client -> remote, no options) and UDP header (ports, length 8 + `payload_len`, checksum
// 0: the payload is not known here, and receivers match the quote by addresses and ports)
// as RFC 792 and RFC 4443 require. `type`/`code` are the ICMP(v6) values; `mtu` goes into
// the next-hop MTU field (IPv4, type 3 code 4) or the MTU field (ICMPv6 type 2). Returns
// the packet's length, 0 when the families differ or `out` is too small (kIcmpErrorMax
// always suffices).
constexpr std::size_t kIcmpErrorMax = kIpv6HeaderLen + 8 + kIpv6HeaderLen + kUdpHeaderLen;
std::size_t build_icmp_error(const Endpoint& remote, const Endpoint& client, std::uint8_t type,
                             std::uint8_t code, std::uint32_t mtu, std::size_t payload_len,
                             std::span<std::uint8_t> out);

// The Internet checksum (RFC 1071) of `data`, folded and complemented, continuing `sum`.
std::uint16_t checksum(std::span<const std::uint8_t> data, std::uint32_t sum = 0);
// The UDP checksum of a complete UDP header + payload, for addresses src -> dst; a result
// of 0 is sent as 0xffff (RFC 768), so 0 never appears.
std::uint16_t udp_checksum(const Endpoint& src, const Endpoint& dst,
                           std::span<const std::uint8_t> udp);

}  // namespace mpudp::packet

// An IP endpoint (address + port) as a plain value: hashable, comparable, cheap to copy.
// It is the key of the binding table and the unit of the wire format, so it lives apart
// from any socket code; conversion to and from sockaddr is pure data shuffling.
#pragma once

#include <sys/socket.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mpudp {

enum class Family : std::uint8_t { None = 0, V4 = 4, V6 = 6 };

struct Endpoint {
  Family family = Family::None;
  std::uint16_t port = 0;               // host byte order
  std::array<std::uint8_t, 16> addr{};  // IPv4 uses the first 4 bytes, the rest stay zero

  static Endpoint v4(std::uint32_t host_order_addr, std::uint16_t port);
  static Endpoint v6(const std::array<std::uint8_t, 16>& addr, std::uint16_t port);

  // "198.18.0.1:53", "[2001:db8::1]:53". No names, no missing port.
  static std::optional<Endpoint> parse(std::string_view text);
  // Address only ("198.18.0.1", "2001:db8::1"), port 0.
  static std::optional<Endpoint> parse_address(std::string_view text);
  // An IPv4-mapped IPv6 address (::ffff:a.b.c.d) becomes plain IPv4.
  static std::optional<Endpoint> from_sockaddr(const sockaddr* sa, socklen_t len);

  socklen_t to_sockaddr(sockaddr_storage& out) const;
  std::string str() const;          // same syntax parse() reads
  std::string address_str() const;  // without the port

  bool is_v4() const { return family == Family::V4; }
  bool is_v6() const { return family == Family::V6; }
  bool valid() const { return family != Family::None; }
  std::size_t addr_len() const { return is_v4() ? 4 : is_v6() ? 16 : 0; }
  bool is_unspecified() const;  // 0.0.0.0 or ::
  // An address one host can be reached at: not unspecified, not multicast, not
  // 0.0.0.0/8 or the IPv4 limited broadcast. Says nothing about routing.
  bool is_unicast() const;

  // The same host address, whatever the ports.
  bool same_address(const Endpoint& o) const { return family == o.family && addr == o.addr; }

  friend bool operator==(const Endpoint& a, const Endpoint& b) {
    return a.family == b.family && a.port == b.port && a.addr == b.addr;
  }
};

struct EndpointHash {
  std::size_t operator()(const Endpoint& e) const noexcept;
};

}  // namespace mpudp

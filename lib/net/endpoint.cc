#include "net/endpoint.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <charconv>
#include <cstdio>
#include <cstring>

namespace mpudp {

Endpoint Endpoint::v4(std::uint32_t host_order_addr, std::uint16_t port) {
  Endpoint e;
  e.family = Family::V4;
  e.port = port;
  e.addr[0] = static_cast<std::uint8_t>(host_order_addr >> 24);
  e.addr[1] = static_cast<std::uint8_t>(host_order_addr >> 16);
  e.addr[2] = static_cast<std::uint8_t>(host_order_addr >> 8);
  e.addr[3] = static_cast<std::uint8_t>(host_order_addr);
  return e;
}

Endpoint Endpoint::v6(const std::array<std::uint8_t, 16>& addr, std::uint16_t port) {
  Endpoint e;
  e.family = Family::V6;
  e.port = port;
  e.addr = addr;
  return e;
}

std::optional<Endpoint> Endpoint::parse_address(std::string_view text) {
  if (text.empty() || text.size() > INET6_ADDRSTRLEN) return std::nullopt;
  // inet_pton stops at a NUL, so "1.2.3.4\0junk" would otherwise pass as 1.2.3.4.
  if (text.find('\0') != std::string_view::npos) return std::nullopt;
  char buf[INET6_ADDRSTRLEN + 1];
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  Endpoint e;
  if (inet_pton(AF_INET, buf, e.addr.data()) == 1) {
    e.family = Family::V4;
    return e;
  }
  if (inet_pton(AF_INET6, buf, e.addr.data()) == 1) {
    e.family = Family::V6;
    return e;
  }
  return std::nullopt;
}

std::optional<Endpoint> Endpoint::parse(std::string_view text) {
  std::string_view host;
  std::string_view port;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':')
      return std::nullopt;
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string_view::npos) return std::nullopt;
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) return std::nullopt;  // IPv6 needs brackets
  }
  unsigned value = 0;
  auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || ec != std::errc() || ptr != port.data() + port.size() || value > 65535)
    return std::nullopt;
  auto e = parse_address(host);
  if (!e) return std::nullopt;
  if (text.front() == '[' && !e->is_v6()) return std::nullopt;
  e->port = static_cast<std::uint16_t>(value);
  return e;
}

std::optional<Endpoint> Endpoint::from_sockaddr(const sockaddr* sa, socklen_t len) {
  if (sa == nullptr) return std::nullopt;
  Endpoint e;
  if (sa->sa_family == AF_INET && len >= static_cast<socklen_t>(sizeof(sockaddr_in))) {
    sockaddr_in sin;
    std::memcpy(&sin, sa, sizeof sin);
    e.family = Family::V4;
    e.port = ntohs(sin.sin_port);
    std::memcpy(e.addr.data(), &sin.sin_addr, 4);
    return e;
  }
  if (sa->sa_family == AF_INET6 && len >= static_cast<socklen_t>(sizeof(sockaddr_in6))) {
    sockaddr_in6 sin6;
    std::memcpy(&sin6, sa, sizeof sin6);
    e.port = ntohs(sin6.sin6_port);
    if (IN6_IS_ADDR_V4MAPPED(&sin6.sin6_addr)) {
      e.family = Family::V4;
      std::memcpy(e.addr.data(), sin6.sin6_addr.s6_addr + 12, 4);
    } else {
      e.family = Family::V6;
      std::memcpy(e.addr.data(), sin6.sin6_addr.s6_addr, 16);
    }
    return e;
  }
  return std::nullopt;
}

socklen_t Endpoint::to_sockaddr(sockaddr_storage& out) const {
  std::memset(&out, 0, sizeof out);
  if (is_v4()) {
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_port = htons(port);
    std::memcpy(&sin.sin_addr, addr.data(), 4);
    std::memcpy(&out, &sin, sizeof sin);
    return sizeof sin;
  }
  if (is_v6()) {
    sockaddr_in6 sin6{};
    sin6.sin6_family = AF_INET6;
    sin6.sin6_port = htons(port);
    std::memcpy(&sin6.sin6_addr, addr.data(), 16);
    std::memcpy(&out, &sin6, sizeof sin6);
    return sizeof sin6;
  }
  return 0;
}

namespace {
struct AddressText {
  char text[INET6_ADDRSTRLEN] = "?";
};
AddressText address_text(const Endpoint& e) {
  AddressText t;
  if (e.is_v4()) inet_ntop(AF_INET, e.addr.data(), t.text, sizeof t.text);
  if (e.is_v6()) inet_ntop(AF_INET6, e.addr.data(), t.text, sizeof t.text);
  return t;
}
}  // namespace

std::string Endpoint::address_str() const { return address_text(*this).text; }

// Formatted in one pass into a fixed buffer. (Composing with `"[" + std::string` also
// costs a prepend, in which GCC 12 at -O3 sees an overlapping memcpy that cannot happen:
// a -Wrestrict false positive, GCC PR 105329.)
std::string Endpoint::str() const {
  const AddressText a = address_text(*this);
  char out[sizeof a.text + sizeof "[]:65535"];
  const unsigned p = port;
  const int n = is_v6() ? std::snprintf(out, sizeof out, "[%s]:%u", a.text, p)
                        : std::snprintf(out, sizeof out, "%s:%u", a.text, p);
  return std::string(out, n > 0 ? static_cast<std::size_t>(n) : 0);
}

bool Endpoint::is_unspecified() const {
  for (std::size_t i = 0; i < addr_len(); ++i)
    if (addr[i] != 0) return false;
  return valid();
}

bool Endpoint::is_unicast() const {
  if (!valid() || is_unspecified()) return false;
  if (is_v4())
    return addr[0] != 0 && addr[0] < 224;  // 0/8; 224/4 multicast; 240/4 with broadcast
  return addr[0] != 0xff;                   // ff00::/8 multicast
}

std::size_t EndpointHash::operator()(const Endpoint& e) const noexcept {
  // FNV-1a over the bytes that matter; cheap and good enough for a hash map key.
  std::uint64_t h = 1469598103934665603ull;
  auto mix = [&h](std::uint8_t b) {
    h ^= b;
    h *= 1099511628211ull;
  };
  mix(static_cast<std::uint8_t>(e.family));
  mix(static_cast<std::uint8_t>(e.port >> 8));
  mix(static_cast<std::uint8_t>(e.port));
  for (std::size_t i = 0; i < e.addr_len(); ++i) mix(e.addr[i]);
  return static_cast<std::size_t>(h);
}

}  // namespace mpudp

#include "net/cidr.h"

#include <charconv>
#include <cstdint>

namespace mpudp {
namespace {

bool prefix_match(const Endpoint& a, const Endpoint& b, unsigned bits) {
  if (a.family != b.family) return false;
  for (unsigned i = 0; i < bits / 8; ++i)
    if (a.addr[i] != b.addr[i]) return false;
  if (bits % 8 == 0) return true;
  const auto mask = static_cast<std::uint8_t>(0xff00u >> (bits % 8));
  return (a.addr[bits / 8] & mask) == (b.addr[bits / 8] & mask);
}

}  // namespace

std::optional<Cidr> Cidr::parse(std::string_view text) {
  const auto slash = text.find('/');
  auto addr = Endpoint::parse_address(text.substr(0, slash));
  if (!addr) return std::nullopt;
  const unsigned max = addr->is_v4() ? 32 : 128;
  unsigned bits = max;
  if (slash != std::string_view::npos) {
    const auto p = text.substr(slash + 1);
    auto [ptr, ec] = std::from_chars(p.data(), p.data() + p.size(), bits);
    if (p.empty() || ec != std::errc() || ptr != p.data() + p.size() || bits > max)
      return std::nullopt;
  }
  Cidr c;
  c.net = *addr;
  c.prefix = bits;
  // Host bits cleared, so equal networks compare equal however they were written.
  for (unsigned i = bits; i < max; ++i) c.net.addr[i / 8] &= static_cast<std::uint8_t>(~(0x80u >> (i % 8)));
  return c;
}

bool Cidr::contains(const Endpoint& e) const { return prefix_match(net, e, prefix); }

std::string Cidr::str() const { return net.address_str() + "/" + std::to_string(prefix); }

}  // namespace mpudp

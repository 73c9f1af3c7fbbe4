// An address prefix ("10.0.0.0/8", "2001:db8::/32"; a bare address is a host prefix).
// Pure value type shared by the destination policy and the configuration loader.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "net/endpoint.h"

namespace mpudp {

struct Cidr {
  Endpoint net;  // port unused
  unsigned prefix = 0;
  static std::optional<Cidr> parse(std::string_view text);  // "10.0.0.0/8", "fd00::/8", "1.2.3.4"
  bool contains(const Endpoint& e) const;
  std::string str() const;
  friend bool operator==(const Cidr&, const Cidr&) = default;
};

}  // namespace mpudp

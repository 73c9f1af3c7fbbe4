#include "net/embedded_v4.h"

#include <algorithm>

namespace mpudp {
namespace {

bool starts_with(const Endpoint& e, std::initializer_list<std::uint8_t> prefix) {
  return std::equal(prefix.begin(), prefix.end(), e.addr.begin());
}

// The four bytes at `at` (skipping byte 8, RFC 6052's reserved "u" octet).
Endpoint take(const Endpoint& e, std::array<std::size_t, 4> at) {
  Endpoint v4;
  v4.family = Family::V4;
  v4.port = e.port;
  for (std::size_t i = 0; i < 4; ++i) v4.addr[i] = e.addr[at[i]];
  return v4;
}

}  // namespace

EmbeddedV4 embedded_v4(const Endpoint& e) {
  EmbeddedV4 out;
  if (!e.is_v6()) return out;
  auto add = [&out](const Endpoint& v4) { out.candidates[out.count++] = v4; };
  const bool zero_80 = std::all_of(e.addr.begin(), e.addr.begin() + 10,
                                   [](std::uint8_t b) { return b == 0; });
  if (zero_80 && e.addr[10] == 0xff && e.addr[11] == 0xff) {
    add(take(e, {12, 13, 14, 15}));
  } else if (starts_with(e, {0x00, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0})) {
    add(take(e, {12, 13, 14, 15}));
  } else if (starts_with(e, {0x00, 0x64, 0xff, 0x9b, 0x00, 0x01})) {
    add(take(e, {6, 7, 9, 10}));    // /48
    add(take(e, {7, 9, 10, 11}));   // /56
    add(take(e, {9, 10, 11, 12}));  // /64
    add(take(e, {12, 13, 14, 15})); // /96
  } else if (starts_with(e, {0x20, 0x02})) {
    add(take(e, {2, 3, 4, 5}));
  }
  return out;
}

}  // namespace mpudp

// Whether a flow is light enough to ride the express connection (multiplexed sessions):
// a token bucket of kRate bytes/s, kBurst deep. A call (G.711: ~9 KB/s), a game, DNS stay
// within it and keep their datagrams off the connection that bulk flows queue on; a flow
// that overdraws it is heavy until the bucket has filled up again, so a flow near the
// rate does not alternate between the connections (each switch can reorder it).
// Pure logic, 8 bytes per flow; the caller feeds a millisecond clock that may wrap.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

namespace mpudp {

class ExpressMeter {
 public:
  static constexpr std::uint32_t kRate = 64 * 1024;   // bytes per second
  static constexpr std::uint32_t kBurst = 16 * 1024;  // bytes

  // Counts a datagram of `bytes` at `now_ms`; true if the flow is light.
  bool light(std::uint32_t now_ms, std::size_t bytes) {
    const std::uint32_t elapsed = now_ms - stamp_ms_;  // unsigned: wraps correctly
    stamp_ms_ = now_ms;
    // Capped first so the product cannot overflow: a full refill takes kBurst/kRate s.
    const std::uint64_t refill =
        std::uint64_t{std::min<std::uint32_t>(elapsed, 1000)} * kRate / 1000;
    std::uint32_t t = static_cast<std::uint32_t>(std::min<std::uint64_t>(tokens_ + refill, kBurst));
    if (heavy_ && t >= kBurst) heavy_ = false;
    const auto take = static_cast<std::uint32_t>(std::min<std::size_t>(bytes, kBurst));
    if (!heavy_ && t < take) heavy_ = true;
    tokens_ = t - std::min(t, take);
    return !heavy_;
  }

 private:
  std::uint32_t stamp_ms_ = 0;
  std::uint32_t tokens_ : 31 = kBurst;
  std::uint32_t heavy_ : 1 = 0;
};

}  // namespace mpudp

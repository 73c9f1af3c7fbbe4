// Whether a flow is light enough to ride the express connection (multiplexed sessions):
// a token bucket of `rate` bytes/s (tunnel.express_rate), a quarter second of it deep. A
// call (G.711: ~9 KB/s), a game, DNS stay within the default and keep their datagrams off
// the connection that bulk flows queue on; a flow that overdraws it is heavy until the
// bucket has filled up again, so a flow near the rate does not alternate between the
// connections (each switch can reorder it).
// Pure logic, 8 bytes per flow; the caller feeds a millisecond clock that may wrap, and
// the rate, so that a reload applies to every flow at once.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

namespace mpudp {

class ExpressMeter {
 public:
  // The bucket's depth at `rate` bytes/s.
  static constexpr std::uint32_t burst(std::uint32_t rate) { return rate / 4; }

  // Counts a datagram of `bytes` at `now_ms`; true if the flow is light.
  bool light(std::uint32_t now_ms, std::size_t bytes, std::uint32_t rate) {
    const std::uint32_t depth = burst(rate);
    const std::uint32_t elapsed = now_ms - stamp_ms_;  // unsigned: wraps correctly
    stamp_ms_ = now_ms;
    // Capped first so the product cannot overflow: a full refill takes a quarter second.
    const std::uint64_t refill =
        std::uint64_t{std::min<std::uint32_t>(elapsed, 1000)} * rate / 1000;
    // What the flow has spent of the bucket, so a new flow (0) starts with it full; capped
    // at the depth, which a reload to a lower rate may have made smaller.
    std::uint64_t spent = std::min<std::uint64_t>(spent_, depth);
    spent -= std::min(spent, refill);
    if (heavy_ && spent == 0) heavy_ = false;
    const std::uint64_t take = std::min<std::uint64_t>(bytes, depth);
    if (!heavy_ && spent + take > depth) heavy_ = true;
    spent_ = static_cast<std::uint32_t>(std::min<std::uint64_t>(spent + take, depth));
    return !heavy_;
  }

 private:
  std::uint32_t stamp_ms_ = 0;
  std::uint32_t spent_ : 31 = 0;
  std::uint32_t heavy_ : 1 = 0;
};

}  // namespace mpudp

#include "core/copy_plan.h"

#include <algorithm>
#include <bit>
#include <tuple>

namespace mpudp {

CopyPlan plan_copies(std::span<const CopyLane> lanes) {
  CopyPlan plan;
  const std::size_t n = std::min(lanes.size(), kMaxCopyCarriers);
  auto bit = [](const CopyLane& l) { return 1u << (l.path & 31u); };
  std::uint32_t uplinks = 0, usable = 0;
  std::size_t primaries = 0;
  std::array<std::uint8_t, 32> carriers{}, stalled{};
  for (std::size_t i = 0; i < n; ++i) {
    const unsigned u = lanes[i].path & 31u;
    uplinks |= bit(lanes[i]);
    ++carriers[u];
    if (lanes[i].stalled)
      ++stalled[u];
    else
      usable |= bit(lanes[i]);
    if (!lanes[i].spare) ++primaries;
  }
  // Half its carriers or more stalled: the uplink went dark. One stall among several
  // carriers is a loss the others' ACKs show the path survives.
  std::uint32_t dark = 0;
  for (unsigned u = 0; u < 32; ++u)
    if (stalled[u] != 0 && 2u * stalled[u] >= carriers[u]) dark |= 1u << u;
  // Every uplink with a carrier left is dark: none is known to be better than another.
  if ((usable & ~dark) == 0) dark = 0;
  const auto paths = static_cast<std::size_t>(std::popcount(uplinks));
  plan.wanted = std::max<std::size_t>({1, primaries, paths});
  for (std::size_t i = 0; i < n; ++i)
    if (!lanes[i].stalled) plan.order[plan.tries++] = static_cast<std::uint8_t>(i);
  auto best = [&](std::uint8_t a, std::uint8_t b) {
    return std::tuple(lanes[a].recovering, lanes[a].exposure, a) <
           std::tuple(lanes[b].recovering, lanes[b].exposure, b);
  };
  const auto first = plan.order.begin();
  const auto last = first + static_cast<std::ptrdiff_t>(plan.tries);
  std::sort(first, last, best);
  // Each carrier's place among its uplink's, so the uplinks take turns: every uplink's
  // best, then every uplink's second best, and so on.
  std::array<std::uint8_t, kMaxCopyCarriers> rank{};
  for (std::size_t i = 0; i < plan.tries; ++i)
    for (std::size_t j = 0; j < i; ++j)
      if (lanes[plan.order[j]].path == lanes[plan.order[i]].path) ++rank[plan.order[i]];
  std::stable_sort(first, last, [&](std::uint8_t a, std::uint8_t b) {
    const bool da = (dark & bit(lanes[a])) != 0, db = (dark & bit(lanes[b])) != 0;
    return std::tuple(da, lanes[a].recovering, rank[a]) <
           std::tuple(db, lanes[b].recovering, rank[b]);
  });
  plan.dark_from = plan.tries;
  for (std::size_t i = 0; i < plan.tries; ++i)
    if ((dark & bit(lanes[plan.order[i]])) != 0) {
      plan.dark_from = i;
      break;
    }
  if (dark != 0) plan.wanted = std::max(plan.wanted, plan.dark_from);
  return plan;
}

}  // namespace mpudp

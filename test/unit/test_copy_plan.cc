// plan_copies(): how many copies a light datagram gets and which carriers take them.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "core/copy_plan.h"
#include "tunnel/socket_setup.h"

using mpudp::CopyLane;
using mpudp::plan_copies;

// A carrier that knows of a hole: scored far above any number in flight.
constexpr std::uint32_t kBlocked = mpudp::kExposureBlocked;

namespace {

CopyLane lane(std::uint8_t path, bool spare, std::uint32_t exposure = 0) {
  CopyLane l;
  l.path = path;
  l.spare = spare;
  l.exposure = exposure;
  return l;
}

// The carriers the plan would send on, by index, if every one took its copy.
std::vector<int> taken(const std::vector<CopyLane>& lanes) {
  const auto plan = plan_copies(lanes);
  std::vector<int> out;
  for (std::size_t i = 0; i < plan.tries && out.size() < plan.wanted; ++i) {
    if (i >= plan.dark_from && !out.empty()) break;
    out.push_back(plan.order[i]);
  }
  return out;
}

}  // namespace

TEST_CASE("a datagram gets a copy per uplink, each on its uplink's best carrier",
          "[copies]") {
  // 0, 1: uplink 0's primary and spare; 2, 3: uplink 1's.
  std::vector<CopyLane> l{lane(0, false), lane(0, true), lane(1, false), lane(1, true)};
  CHECK(plan_copies(l).wanted == 2);
  CHECK(taken(l) == std::vector<int>{0, 2});  // all idle: the primaries
  l[0].exposure = 3;
  l[2].exposure = 1;
  l[3].exposure = 2;
  CHECK(taken(l) == std::vector<int>{1, 2});  // uplink 0's spare has nothing in flight
  l[3].exposure = kBlocked;
  l[2].exposure = kBlocked + 1;
  CHECK(taken(l) == std::vector<int>{1, 3});  // both of uplink 1's blocked: the lesser
  // Even when uplink 1's best is worse than uplink 0's second best: every uplink once.
  l[1].exposure = 0;
  l[0].exposure = 0;
  CHECK(taken(l) == std::vector<int>{0, 3});
}

TEST_CASE("while an uplink is dark, every carrier of the others takes a copy", "[copies]") {
  std::vector<CopyLane> l{lane(0, false), lane(0, true), lane(1, false), lane(1, true),
                          lane(1, true, 5), lane(1, true, 2)};
  l[0].stalled = true;  // uplink 0 dark; its idle spare (1) is not trusted either
  const auto plan = plan_copies(l);
  CHECK(plan.tries == 5);
  CHECK(plan.order[plan.dark_from] == 1);
  // While it is dark every carrier of uplink 1 takes one (1 + copy_spares copies).
  CHECK(plan.wanted == 4);
  CHECK(taken(l) == std::vector<int>{2, 3, 5, 4});
  l[2].exposure = 4;
  l[3].exposure = 3;
  CHECK(taken(l) == std::vector<int>{5, 3, 2, 4});  // least in flight first
  // Uplink 1 has one carrier only: one copy, not a second into uplink 0's outage.
  std::vector<CopyLane> one{lane(0, false), lane(0, true), lane(1, false)};
  one[0].stalled = true;
  CHECK(taken(one) == std::vector<int>{2});
  // Every other carrier stalled too: the dark uplink's spare is tried, as the last hope.
  one[2].stalled = true;
  CHECK(taken(one) == std::vector<int>{1});
  one[1].stalled = true;
  CHECK(taken(one).empty());
  CHECK(plan_copies(one).tries == 0);
}

TEST_CASE("one stall among an uplink's several carriers does not make it dark",
          "[copies]") {
  // Two uplinks of four carriers each (copy_spares: 3).
  std::vector<CopyLane> l;
  for (std::uint8_t u = 0; u < 2; ++u)
    for (int k = 0; k < 4; ++k) l.push_back(lane(u, k != 0, static_cast<std::uint32_t>(k)));
  l[0].stalled = true;  // a loss repaired by timeout on uplink 0's primary
  CHECK(taken(l) == std::vector<int>{4, 1});
  l[1].stalled = true;  // half of them: dark; all four of uplink 1's carry
  CHECK(taken(l) == std::vector<int>{4, 5, 6, 7});
  // Uplink 1 loses one too while uplink 0 is dark: its three others carry.
  l[4].stalled = true;
  CHECK(taken(l) == std::vector<int>{5, 6, 7});
}

TEST_CASE("a recovering carrier is taken only when nothing better is left", "[copies]") {
  std::vector<CopyLane> l{lane(0, false), lane(0, true), lane(1, false), lane(1, true)};
  l[0].recovering = true;
  CHECK(taken(l) == std::vector<int>{1, 2});  // uplink 0's clean spare instead
  l[1].recovering = true;
  CHECK(taken(l) == std::vector<int>{2, 3});  // uplink 0 all recovering: uplink 1 twice
  // Without spares the recovering carrier is still its uplink's only one: taken.
  std::vector<CopyLane> bare{lane(0, false), lane(1, false)};
  bare[0].recovering = true;
  CHECK(taken(bare) == std::vector<int>{1, 0});
}

TEST_CASE("copies per datagram: one per uplink or per primary, whichever is more",
          "[copies]") {
  // A concentrator behind a NAT sees every carrier from one address (one uplink).
  std::vector<CopyLane> natted{lane(0, false), lane(0, false, 3), lane(0, true, 1),
                               lane(0, true, 2)};
  CHECK(plan_copies(natted).wanted == 2);
  CHECK(taken(natted) == std::vector<int>{0, 2});
  std::vector<CopyLane> lone{lane(0, true)};
  CHECK(plan_copies(lone).wanted == 1);
  CHECK(taken(lone) == std::vector<int>{0});
  CHECK(plan_copies(std::vector<CopyLane>{}).wanted == 1);
}

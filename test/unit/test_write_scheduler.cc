// The write scheduler's rules, on values: express first, queues switch only at frame
// boundaries, a cut frame is finished first whatever the budget, the held slot stops the
// backlog, budgets are kept; and which flows may take the express queue.
#include <catch2/catch.hpp>

#include <vector>

#include "tunnel/write_scheduler.h"

using namespace mpudp;

namespace {

using Piece = WritePlan::Piece;
constexpr std::int64_t kNoLimit = WriteBudget::kNoLimit;

std::vector<std::pair<Lane, std::size_t>> pieces(const WritePlan& p) {
  std::vector<std::pair<Lane, std::size_t>> out;
  std::size_t total = 0;
  for (std::size_t i = 0; i < p.count; ++i) {
    out.emplace_back(p.pieces[i].lane, p.pieces[i].len);
    total += p.pieces[i].len;
  }
  CHECK(total == p.total);
  return out;
}

using V = std::vector<std::pair<Lane, std::size_t>>;
constexpr Lane B = Lane::Backlog;
constexpr Lane X = Lane::Express;

}  // namespace

TEST_CASE("nothing queued, nothing planned", "[scheduler]") {
  const WritePlan p = plan_write({}, {}, WriteBudget::from_room(kNoLimit, 0));
  CHECK(p.count == 0);
  CHECK_FALSE(p.held_back);
}

TEST_CASE("the express queue goes before the backlog", "[scheduler]") {
  const auto all = WriteBudget::from_room(kNoLimit, 32768);
  CHECK(pieces(plan_write({5000, 0}, {300, 0}, all)) == V{{X, 300}, {B, 5000}});
  CHECK(pieces(plan_write({5000, 0}, {}, all)) == V{{B, 5000}});
  CHECK(pieces(plan_write({}, {300, 0}, all)) == V{{X, 300}});
}

TEST_CASE("a cut backlog frame is finished before express frames", "[scheduler]") {
  // 700 bytes of a frame left; express waits until it is whole, then the backlog goes on.
  const auto all = WriteBudget::from_room(kNoLimit, 32768);
  CHECK(pieces(plan_write({5000, 700}, {300, 0}, all)) == V{{B, 700}, {X, 300}, {B, 4300}});
  // Whatever the budget says: nothing else can go between its two parts.
  const auto none = WriteBudget::from_room(-100000, 32768);
  CHECK(pieces(plan_write({5000, 700}, {300, 0}, none)) == V{{B, 700}});
}

TEST_CASE("a cut express frame is finished whatever the budget", "[scheduler]") {
  const auto none = WriteBudget::from_room(-100000, 32768);
  CHECK(pieces(plan_write({5000, 0}, {900, 400}, none)) == V{{X, 400}});
  // With some express room: past the cut frame up to the budget.
  const auto some = WriteBudget::from_room(-32768 + 600, 32768);
  CHECK(pieces(plan_write({5000, 0}, {900, 400}, some)) == V{{X, 600}});
}

TEST_CASE("each queue keeps to its budget; express gets its extra", "[scheduler]") {
  // Room 1000 under the limit: express may take 1000 + extra, the backlog what is left of
  // the 1000 after express.
  auto b = WriteBudget::from_room(1000, 32768);
  CHECK(b.backlog == 1000);
  CHECK(b.express == 33768);
  CHECK(pieces(plan_write({5000, 0}, {300, 0}, b)) == V{{X, 300}, {B, 700}});
  // Over the limit: the backlog waits, express still goes within its extra.
  b = WriteBudget::from_room(-2000, 32768);
  CHECK(b.backlog == 0);
  CHECK(b.express == 30768);
  CHECK(pieces(plan_write({5000, 0}, {300, 0}, b)) == V{{X, 300}});
  // Express beyond its extra is cut by the budget too.
  b = WriteBudget::from_room(-32768 - 1, 32768);
  CHECK(b.express == 0);
  const WritePlan p = plan_write({5000, 0}, {300, 0}, b);
  CHECK(p.count == 0);
  CHECK(p.held_back);
}

TEST_CASE("when express gets nothing the backlog gets nothing either", "[scheduler]") {
  WriteBudget b;
  b.backlog = 1000;
  b.express = 0;
  const WritePlan p = plan_write({5000, 0}, {300, 0}, b);
  CHECK(p.count == 0);
  CHECK(p.held_back);
}

TEST_CASE("a budget spent by writes shrinks both queues' share", "[scheduler]") {
  auto b = WriteBudget::from_room(1000, 32768);
  b.spend(400);
  CHECK(b.backlog == 600);
  CHECK(b.express == 33368);
  b.spend(5000);
  CHECK(b.backlog == 0);
  CHECK(b.express == 28368);
  CHECK(pieces(plan_write({5000, 0}, {}, b)).empty());
}

TEST_CASE("the held slot stops the backlog", "[scheduler]") {
  // 36 bytes of HELLO before the slot, which sits at stream position 136.
  const LaneState held = backlog_lane(2000, 0, 100, true, 136);
  CHECK(held.ready == 36);
  const auto all = WriteBudget::from_room(kNoLimit, 32768);
  CHECK(pieces(plan_write(held, {}, all)) == V{{B, 36}});
  // Everything before it has left: nothing to write, and that is not the budget's doing.
  const LaneState at_slot = backlog_lane(2000, 0, 136, true, 136);
  CHECK(at_slot.ready == 0);
  const WritePlan p = plan_write(at_slot, {}, all);
  CHECK(p.count == 0);
  CHECK_FALSE(p.held_back);
  // Filled: all of it.
  CHECK(backlog_lane(2000, 0, 136, false, 136).ready == 2000);
}

TEST_CASE("the express queue opens after the handshake and what preceded it", "[scheduler]") {
  CHECK_FALSE(express_open(false, false, 500, 100));
  CHECK_FALSE(express_open(true, true, 500, 100));    // a slot is held
  CHECK_FALSE(express_open(true, false, 99, 100));    // HELLO-era bytes still queued
  CHECK(express_open(true, false, 100, 100));
}

TEST_CASE("a flow is sparse with nothing in the backlog and a short run in express",
          "[scheduler]") {
  QueueMark m;
  CHECK(flow_is_sparse(m, 100, 0, 0));
  // A frame of it waits in the backlog (ends at 5000, backlog written up to 4000): no.
  m.backlog_end = 5000;
  CHECK_FALSE(flow_is_sparse(m, 100, 4000, 0));
  CHECK(flow_is_sparse(m, 100, 5000, 0));
  // Its run in express: up to kExpressRunBytes, and always one frame.
  m.express_end = 800;
  m.express_run = kExpressRunBytes - 100;
  CHECK(flow_is_sparse(m, 100, 5000, 0));
  CHECK_FALSE(flow_is_sparse(m, 101, 5000, 0));
  CHECK(m.express_run == kExpressRunBytes - 100);
  // Its express frames have left: a new run starts, even with a big frame.
  CHECK(flow_is_sparse(m, 60000, 5000, 800));
  CHECK(m.express_run == 0);
}

#include "tunnel/write_scheduler.h"

#include <algorithm>

namespace mpudp {

bool express_open(bool handshake_done, bool held, std::uint64_t backlog_head,
                  std::uint64_t express_from) {
  return handshake_done && !held && backlog_head >= express_from;
}

bool flow_is_sparse(QueueMark& mark, std::size_t n, std::uint64_t backlog_head,
                    std::uint64_t express_head) {
  if (mark.express_end <= express_head) mark.express_run = 0;
  return mark.backlog_end <= backlog_head &&
         (mark.express_run == 0 || mark.express_run + n <= kExpressRunBytes);
}

LaneState backlog_lane(std::size_t queued, std::size_t cut, std::uint64_t head_pos, bool held,
                       std::uint64_t held_at) {
  return {held ? static_cast<std::size_t>(held_at - head_pos) : queued, cut};
}

WriteBudget WriteBudget::from_room(std::int64_t room, std::size_t express_extra) {
  const std::int64_t ex_room =
      room == kNoLimit ? kNoLimit : room + static_cast<std::int64_t>(express_extra);
  WriteBudget b;
  b.backlog = room <= 0 ? 0 : static_cast<std::size_t>(room);
  b.express = ex_room <= 0 ? 0 : static_cast<std::size_t>(ex_room);
  return b;
}

void WriteBudget::spend(std::size_t n) {
  backlog -= std::min(backlog, n);
  express -= std::min(express, n);
}

WritePlan plan_write(const LaneState& backlog, const LaneState& express,
                     const WriteBudget& budget) {
  WritePlan plan;
  auto& pieces = plan.pieces;
  std::size_t np = 0;
  std::size_t first = 0;
  if (backlog.cut > 0) {
    first = std::min(backlog.cut, backlog.ready);
    pieces[np++] = {Lane::Backlog, first};
  }
  if (express.ready > 0) pieces[np++] = {Lane::Express, express.ready};
  if (backlog.ready > first) pieces[np++] = {Lane::Backlog, backlog.ready - first};
  if (np == 0) return plan;
  WriteBudget left = budget;
  for (std::size_t i = 0; i < np; ++i) {
    std::size_t len = pieces[i].len;
    if (pieces[i].lane == Lane::Express)
      len = std::max(std::min(len, left.express), std::min(len, express.cut));
    else if (i > 0 || backlog.cut == 0)
      len = std::min(len, left.backlog);
    left.spend(len);
    if (len == 0) break;
    pieces[i].len = len;
    plan.total += len;
    plan.count = i + 1;
  }
  plan.held_back = plan.count == 0;
  return plan;
}

}  // namespace mpudp

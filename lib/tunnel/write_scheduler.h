// The tunnel connection's choices about its two queues (see connection.h), as pure
// functions of their state: which queue a flow's frame joins, and what one write takes
// from them. No IO, no clock: the unit tests feed values.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <limits>

#include "net/queue_mark.h"

namespace mpudp {

// ---- Which queue a frame joins -------------------------------------------------------

// What one flow may have waiting in the express queue beyond its first frame: ~10
// datagrams (200 ms) of a G.711 call, one of a full-size bulk datagram.
inline constexpr std::uint32_t kExpressRunBytes = 2048;

// Whether the express queue takes frames at all: once the handshake is complete and
// everything queued before that (HELLO, AUTH: `express_from`, a backlog stream position)
// has left, and not while the held AUTH slot waits (nothing may overtake it).
bool express_open(bool handshake_done, bool held, std::uint64_t backlog_head,
                  std::uint64_t express_from);

// Whether the flow of `mark` is sparse for a frame of `n` bytes: none of its frames
// waits in the backlog (so going first keeps its order), and with this frame it has at
// most kExpressRunBytes in the express queue (or this is its only frame there). The
// heads are the queues' stream positions (FrameQueue::head_pos). Starts a new run in
// `mark` when nothing of the flow waits in express any more.
bool flow_is_sparse(QueueMark& mark, std::size_t n, std::uint64_t backlog_head,
                    std::uint64_t express_head);

// ---- What one write takes -------------------------------------------------------------

enum class Lane : std::uint8_t { Backlog, Express };

// What the scheduler needs of one queue.
struct LaneState {
  std::size_t ready = 0;  // bytes that may leave: all queued (backlog: up to a held slot)
  std::size_t cut = 0;    // bytes left of the head frame that a partial write cut
};

// The backlog as plan_write sees it: `queued` bytes from stream position `head_pos`, the
// head frame's rest `cut`; while a slot is held (at stream position `held_at`), only the
// bytes before the slot are ready.
LaneState backlog_lane(std::size_t queued, std::size_t cut, std::uint64_t head_pos, bool held,
                       std::uint64_t held_at);

// Bytes each queue may still hand to the kernel this round.
struct WriteBudget {
  static constexpr std::int64_t kNoLimit = std::numeric_limits<std::int64_t>::max();
  // From the room the send limit leaves (negative: over it; kNoLimit: no limit applies).
  // The express queue gets `express_extra` beyond it, so that a sparse flow's datagram
  // does not wait for room (and, still waiting when the flow's next one comes, push that
  // one into the backlog), while a flood of sparse flows alone still cannot grow the
  // kernel's queue without bound.
  static WriteBudget from_room(std::int64_t room, std::size_t express_extra);
  // Bytes written: both budgets shrink, they share the kernel's room.
  void spend(std::size_t n);

  std::size_t backlog = 0;
  std::size_t express = 0;
};

// One write, in order; each piece starts at its queue's head (the second backlog piece
// right after the first).
struct WritePlan {
  struct Piece {
    Lane lane;
    std::size_t len;
  };
  // The rest of a cut backlog frame, the express queue, the backlog.
  static constexpr std::size_t kMaxPieces = 3;
  std::array<Piece, kMaxPieces> pieces{};
  std::size_t count = 0;
  std::size_t total = 0;
  // Bytes were ready, but the budget let none of them go.
  bool held_back = false;
};

// The rules:
//   - a frame a partial write cut is finished first, whatever the budget says: nothing
//     can go between its two parts;
//   - then the express queue, then the backlog: queues switch only at frame boundaries
//     (the express queue holds whole frames; the backlog goes on after the rest of its
//     cut frame);
//   - each queue within its budget; a budget may cut a frame (the next write finishes
//     it); when the express queue gets nothing, the backlog gets nothing either.
WritePlan plan_write(const LaneState& backlog, const LaneState& express,
                     const WriteBudget& budget);

}  // namespace mpudp

// Where one flow's last frame sits in a tunnel connection's outgoing queues. The flow
// keeps it (Flow::mark); the connection reads and updates it when the flow queues a
// frame, to decide whether the flow may go ahead of the backlog (nothing of it waits in
// the backlog, and little of it in the express queue) without any per-frame bookkeeping
// on the way out. See tunnel/connection.h.
#pragma once

#include <cstdint>

namespace mpudp {

struct QueueMark {
  std::uint32_t conn = 0;          // the connection the positions belong to; 0: none
  std::uint32_t express_run = 0;   // bytes it queued in express since it last had none waiting
  std::uint64_t backlog_end = 0;   // backlog stream position just past its last frame
  std::uint64_t express_end = 0;   // the same in the express queue
};

}  // namespace mpudp

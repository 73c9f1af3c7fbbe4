// Which datagrams a tunnel queue drops for having waited too long: CoDel (RFC 8289),
// judged on the sojourn time of the frame at the queue's head when a write is about to
// take it, plus a ceiling.
//
// Why time, not bytes: what a queue may hold depends on how fast it drains. A byte bound
// small enough to keep a call's datagrams fresh on a slow uplink drops a page load's
// reply burst on a fast one (256 flows × 1200 B: 7-35 dropped at 256 KiB while the paths
// carried the burst in under a millisecond); one large enough for the burst lets a slow
// uplink's queue grow to seconds. CoDel tells a burst (the queue drains within
// `interval`) from a standing queue (its shortest wait stayed above `target` for a whole
// `interval`) and drops only in the second case, at a rate that grows until the queue
// stays short. Congestion-controlled flows inside the tunnel (QUIC, TCP over a UDP VPN)
// slow down on those drops as they would at a router.
//
// The ceiling: CoDel's rate grows slowly (one drop per interval, then per
// interval/sqrt(count)), which suits flows that slow down; an unresponsive flood of UDP
// (a bulk sender at a fixed rate, an overloaded uplink) would meanwhile grow the queue to
// seconds and to the byte bound. A frame that waited kCeilingIntervals × interval is
// dropped whatever CoDel's state, so the wait stays bounded in time under any overload:
// the queue holds what came in during the ceiling, and the byte bound
// (tunnel.queue_bytes) is left to memory (an input faster than it over the ceiling).
//
// The tunnel's queues are byte queues written many frames at a time, not packet queues
// dequeued one by one: the head frame of each write stands for the write (it waited the
// longest), and only whole DATA frames are dropped (an OPEN announces its flow, control
// frames keep the two binding tables in step). Pure logic: the caller feeds times.
#pragma once

#include <cstddef>
#include <cstdint>

#include "binding/clock.h"

namespace mpudp {

class SojournDropper {
 public:
  using Micros = std::chrono::microseconds;
  struct Params {
    Micros target{5000};
    Micros interval{100000};
  };
  // A frame older than this many intervals is dropped whatever CoDel's state.
  static constexpr int kCeilingIntervals = 4;
  // A queue holding no more than a full-size packet's worth is never judged standing
  // (RFC 8289's maxpacket): one large datagram takes time to leave on a slow path.
  static constexpr std::size_t kMaxPacket = 1500;

  SojournDropper() = default;
  explicit SojournDropper(const Params& p) : p_(p) {}
  void set_params(const Params& p) { p_ = p; }
  const Params& params() const { return p_; }

  // The frame at the head was queued at `enqueued` and is about to leave at `now`, with
  // `queued` bytes in the queue (itself included): true when it is to be dropped
  // instead. Called again for the next head after a drop, as RFC 8289's dequeue loop.
  bool should_drop(TimePoint now, TimePoint enqueued, std::size_t queued);
  // The queue is empty at a write: a standing queue, if any, is gone.
  void on_empty() { first_above_ = {}; }

  bool dropping() const { return dropping_; }
  std::uint32_t count() const { return count_; }

 private:
  // RFC 8289's dodequeue: whether the sojourn has stayed above target for an interval.
  bool ok_to_drop(TimePoint now, Micros sojourn, std::size_t queued);
  TimePoint control_law(TimePoint t) const;

  Params p_;
  TimePoint first_above_{};  // epoch: not above target
  TimePoint drop_next_{};
  std::uint32_t count_ = 0;
  std::uint32_t lastcount_ = 0;
  bool dropping_ = false;
};

}  // namespace mpudp

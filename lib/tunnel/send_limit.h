// How much a tunnel connection may keep queued in the kernel unsent: bytes written but
// not yet transmitted by any subflow (the MPTCP socket's own unsent bytes, SIOCOUTQNSD,
// plus each subflow's tcpi_notsent_bytes).
//
// Why: TCP_NOTSENT_LOWAT bounds only what the MPTCP socket has not handed to a subflow,
// and the scheduler hands subflows as much as their autotuned send buffers take. Under
// overload that is megabytes (ss -Mti: notsent 700 KB per subflow): every datagram, the
// lightest flow's too, then waits behind hundreds of milliseconds of others. What is in
// flight is the subflows' congestion control's business; what waits behind it is ours:
// at most `target` of it at the rate the subflows send (limit = rate × target), never
// less than 16 KiB per subflow so that a cold start moves. Excess waits in user space,
// where light flows go first and excess datagrams are dropped and counted (Connection).
// With tunnel.limit_path_queue the part of what is in flight that waits in a path's queue
// (queued_in_path, below) counts as waiting too: at a FIFO bottleneck the congestion
// control's standing queue is ours to keep short.
//
// An earlier version bounded unacknowledged bytes (SIOCOUTQ) instead: MPTCP's data-level
// acknowledgements lag behind the subflows' by up to the peer's delayed-ACK timer, and
// that limit held everything back meanwhile (a 50 pps flow beside an overload of
// 2 × 10 Mbit/s waited 150 ms and lost 5 % of its datagrams).
//
// While sparse flows go ahead of a backlog in the connection (its express queue), the
// limit is the shorter `shared_target`: their datagrams still wait behind what the kernel
// holds unsent, and more of it fills the socket's send buffer, which then takes nothing,
// theirs neither (test_tunnel_overload: with 20 ms the light flow's median came to equal
// the bulk flow's). A connection of bulk data alone keeps `target`, whose slack keeps the
// subflows fed between two top-ups (docs/CONFIG.md, tunnel.target_delay).
//
// Pure logic: the caller feeds time and byte counts.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace mpudp {

class SendLimit {
 public:
  struct Params {
    double target_s = 0.020;                 // queueing allowed behind what is in flight
    double shared_target_s = 0.005;          // the same while sparse flows share it
    double shared_hold_s = 1.0;              // how long one note_shared() holds
    std::size_t min_per_subflow = 16 * 1024;  // the floor, per subflow
    std::size_t ceiling = 64u << 20;
    double max_spread_s = 0.5;  // beyond this a path is too slow to help: no more queue
  };

  explicit SendLimit(const Params& p);

  // One observation at `now_s`: `sent` is the bytes the subflows transmitted since the
  // start (monotonic), `backlogged` that bytes were waiting for room under the limit.
  void observe(double now_s, std::uint64_t sent, bool backlogged);
  void set_subflows(unsigned n);
  // The slowest subflow's minimum RTT less the fastest one's, in seconds. Added to the
  // target (not to the shared one), up to max_spread_s: the kernel's scheduler gives a
  // subflow data while its bytes queued (in flight and unsent) last no longer, at its
  // pacing rate, than the others' (the shortest "linger time"). The slower path's queue
  // holds its whole round trip in flight, so it gets more than what is in flight only
  // once the faster one's unsent bytes last longer than the difference of the round
  // trips. With less, the slow subflow sends what it is given and no more: a congestion
  // control that paces by what it measured (bbr) measures that and stays there (20 and
  // 40 ms each way into 2 × 50 Mbit/s under bbr: 38 Mbit/s in all, the slower subflow at
  // 2 Mbit/s).
  void set_rtt_spread(double seconds);
  // Sparse flows went ahead of a backlog at `now_s`: the shared target applies until
  // shared_hold_s after the last such note (seen at the next observe()).
  void note_shared(double now_s);
  bool shared() const { return shared_until_ > 0; }

  std::size_t limit() const { return limit_; }
  double rate() const;  // bytes/s, the estimate the limit uses

 private:
  void recompute();

  Params p_;
  unsigned subflows_ = 1;
  bool started_ = false;
  double win_start_ = 0;
  std::uint64_t win_sent_ = 0;
  bool win_backlogged_ = false;
  // Rates of the last windows that were limited by us (or beat the estimate): their mean
  // is the estimate, so an idle or application-limited spell does not shrink it and a
  // path that got slower is forgotten after kWindows limited windows.
  static constexpr std::size_t kWindows = 8;
  std::array<double, kWindows> rates_{};
  std::size_t next_ = 0;
  std::size_t filled_ = 0;
  double shared_until_ = 0;  // 0: not shared
  double spread_s_ = 0;
  std::size_t limit_ = 0;
};

// The part of a subflow's `inflight` bytes that waits in a queue on its path rather than
// filling the path's pipe (tunnel.limit_path_queue). By Little's law the path delivers
// inflight/srtt bytes per second, of which the pipe holds min_rtt's worth; the rest,
// inflight × (srtt − min_rtt) / srtt, is queued. 0 unless srtt > min_rtt > 0.
//
// The estimate cannot tell a queue from RTT that varies by itself (radio scheduling on
// LTE, satellite handovers): on such a path it reads jitter as queue, and a limit built
// on it keeps the path at target/jitter of its rate. Hence opt-in.
std::uint64_t queued_in_path(std::uint64_t inflight, std::uint32_t srtt_us,
                             std::uint32_t min_rtt_us);

}  // namespace mpudp

// How much the kernel may hold of one tunnel connection: bytes written but not yet
// acknowledged at the connection level (SIOCOUTQ; for MPTCP, data not yet DATA_ACKed).
//
// Why: TCP_NOTSENT_LOWAT bounds only what the MPTCP socket has not handed to a subflow,
// and the scheduler hands subflows as much as their autotuned send buffers take. Under
// overload that is megabytes: every datagram, the lightest flow's too, then waits behind
// hundreds of milliseconds of others. The limit here is what keeps the paths busy for
// their round trip plus `target` of queue: limit = rate × (rtt + target), where rate is
// the delivery rate measured while the connection had more to send than the limit let
// through, and never less than 64 KiB per subflow: the kernel's MPTCP scheduler hands a
// subflow up to 64 KiB at a time (MPTCP_SEND_BURST_SIZE), so a smaller limit leaves one
// path idle while another drains its burst (measured: 2 × 50 Mbit/s paths carried
// 77 Mbit/s with a 64 KiB limit, 88 with 150 KiB). Below that limit the kernel queue drains faster than it fills; above, excess
// waits in user space, where light flows go first and excess datagrams are dropped and
// counted (see Connection).
//
// Pure logic: the caller feeds time, acknowledged bytes and round-trip samples.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace mpudp {

class SendLimit {
 public:
  struct Params {
    double target_s = 0.005;      // queueing allowed on top of the round trip
    std::size_t per_subflow = 64 * 1024;  // the floor, per subflow (see above)
    std::size_t ceiling = 64u << 20;
  };

  explicit SendLimit(const Params& p);

  // One observation at `now_s`: `acked` is the bytes acknowledged since the start
  // (monotonic), `backlogged` that bytes were waiting for room under the limit.
  void observe(double now_s, std::uint64_t acked, bool backlogged);
  // The largest of the subflows' minimum round trips (data is acknowledged at the
  // connection level only once the slowest path has delivered its part) and how many
  // subflows there are.
  void set_paths(double rtt_s, unsigned subflows);

  std::size_t limit() const { return limit_; }
  double rate() const;  // bytes/s, the estimate the limit uses
  double rtt() const { return rtt_s_; }

 private:
  void recompute();

  Params p_;
  double rtt_s_ = 0;
  unsigned subflows_ = 1;
  bool started_ = false;
  double win_start_ = 0;
  std::uint64_t win_acked_ = 0;
  bool win_backlogged_ = false;
  // Rates of the last windows that were limited by us (or beat the estimate): their
  // maximum is the estimate, so an idle or application-limited spell does not shrink it
  // and a path that got slower is forgotten after kWindows limited windows.
  static constexpr std::size_t kWindows = 8;
  std::array<double, kWindows> rates_{};
  std::size_t next_ = 0;
  std::size_t filled_ = 0;
  std::size_t limit_;
};

}  // namespace mpudp

// SendLimit: what a tunnel connection may keep unsent in the kernel follows the rate at
// which the subflows send, measured while the connection was held back.
#include <catch2/catch.hpp>

#include "tunnel/send_limit.h"

using namespace mpudp;

namespace {
// Feeds `seconds` of observations at `rate` bytes/s starting at t, 1 ms apart.
double feed(SendLimit& l, double t, double seconds, double rate, std::uint64_t& sent,
            bool backlogged) {
  for (double end = t + seconds; t < end; t += 0.001) {
    sent += static_cast<std::uint64_t>(rate * 0.001);
    l.observe(t, sent, backlogged);
  }
  return t;
}
}  // namespace

TEST_CASE("the limit starts at 16 KiB per subflow", "[send_limit]") {
  SendLimit l({});
  CHECK(l.limit() == 16 * 1024);
  l.set_subflows(2);
  CHECK(l.limit() == 32 * 1024);
  l.set_subflows(0);  // a kernel that reports no subflow: still one path
  CHECK(l.limit() == 16 * 1024);
}

TEST_CASE("the limit is the target's worth at the sending rate", "[send_limit]") {
  SendLimit l({});
  std::uint64_t sent = 0;
  feed(l, 0, 1.0, 12.5e6, sent, true);  // 100 Mbit/s
  CHECK(l.rate() == Approx(12.5e6).epsilon(0.05));
  CHECK(l.limit() == Approx(12.5e6 * 0.020).epsilon(0.05));
  SendLimit slow({});
  slow.set_subflows(2);
  sent = 0;
  feed(slow, 0, 1.0, 1.25e5, sent, true);  // 1 Mbit/s: 2.5 KB, under the floor
  CHECK(slow.limit() == 2 * 16 * 1024);
}

TEST_CASE("an idle spell does not shrink the limit; a slower path does", "[send_limit]") {
  SendLimit::Params p;
  p.target_s = 0.020;
  SendLimit l(p);
  std::uint64_t sent = 0;
  double t = feed(l, 0, 1.0, 20e6, sent, true);
  const std::size_t busy = l.limit();
  CHECK(busy == Approx(20e6 * 0.020).epsilon(0.05));
  // Application-limited: says nothing (but the window the traffic stopped in, which was
  // partly held back, counts once).
  t = feed(l, t, 2.0, 1e5, sent, false);
  CHECK(static_cast<double>(l.limit()) > 0.85 * static_cast<double>(busy));
  feed(l, t, 2.0, 2e6, sent, true);  // held back and still slow: the path got slower
  CHECK(l.limit() == Approx(2e6 * 0.020).epsilon(0.1));
}

TEST_CASE("a subflow going away does not read as a negative rate", "[send_limit]") {
  SendLimit l({});
  std::uint64_t sent = 0;
  double t = feed(l, 0, 1.0, 12.5e6, sent, true);
  const std::size_t before = l.limit();
  sent /= 2;  // the sum over subflows dropped
  t = feed(l, t, 0.1, 12.5e6, sent, true);
  CHECK(l.limit() == Approx(before).epsilon(0.05));
}

TEST_CASE("while sparse flows go ahead of a backlog, the shorter target", "[send_limit]") {
  SendLimit l({});  // 20 ms, 5 ms shared, held 1 s
  std::uint64_t sent = 0;
  double t = feed(l, 0, 1.0, 12.5e6, sent, true);
  CHECK_FALSE(l.shared());
  CHECK(l.limit() == Approx(12.5e6 * 0.020).epsilon(0.05));
  l.note_shared(t);
  CHECK(l.shared());
  CHECK(l.limit() == Approx(12.5e6 * 0.005).epsilon(0.05));  // at once
  t = feed(l, t, 0.9, 12.5e6, sent, true);
  CHECK(l.limit() == Approx(12.5e6 * 0.005).epsilon(0.05));  // held
  l.note_shared(t);                                         // and renewed
  t = feed(l, t, 0.9, 12.5e6, sent, true);
  CHECK(l.shared());
  t = feed(l, t, 0.2, 12.5e6, sent, true);  // 1 s since the last note: bulk alone again
  CHECK_FALSE(l.shared());
  CHECK(l.limit() == Approx(12.5e6 * 0.020).epsilon(0.05));
  // A target already below the shared one is kept.
  SendLimit::Params p;
  p.target_s = 0.002;
  SendLimit low(p);
  sent = 0;
  t = feed(low, 0, 1.0, 50e6, sent, true);
  low.note_shared(t);
  CHECK(low.limit() == Approx(50e6 * 0.002).epsilon(0.05));
}

TEST_CASE("paths of unequal RTT: the difference is added to the target, not to the shared one",
          "[send_limit]") {
  SendLimit l({});  // 20 ms, 5 ms shared, at most 500 ms of spread
  std::uint64_t sent = 0;
  double t = feed(l, 0, 1.0, 12.5e6, sent, true);
  CHECK(l.limit() == Approx(12.5e6 * 0.020).epsilon(0.05));
  l.set_rtt_spread(0.040);  // 40 and 80 ms round trips
  CHECK(l.limit() == Approx(12.5e6 * 0.060).epsilon(0.05));
  l.note_shared(t);  // light flows wait behind it: they matter more than the slow path
  CHECK(l.limit() == Approx(12.5e6 * 0.005).epsilon(0.05));
  t = feed(l, t, 1.1, 12.5e6, sent, true);
  CHECK(l.limit() == Approx(12.5e6 * 0.060).epsilon(0.05));
  l.set_rtt_spread(3.0);  // a path that slow is not worth seconds of queue
  CHECK(l.limit() == Approx(12.5e6 * 0.520).epsilon(0.05));
  l.set_rtt_spread(-1);  // nonsense reads as none
  CHECK(l.limit() == Approx(12.5e6 * 0.020).epsilon(0.05));
}

TEST_CASE("the limit stays within its ceiling", "[send_limit]") {
  SendLimit::Params p;
  p.ceiling = 256 * 1024;
  SendLimit l(p);
  l.set_subflows(4);
  std::uint64_t sent = 0;
  feed(l, 0, 3.0, 1e9, sent, true);
  CHECK(l.limit() == 256 * 1024);
}

TEST_CASE("what waits in a path's queue, from its RTT above the minimum", "[send_limit]") {
  // 100 KB in flight at srtt 10 ms over a 2 ms pipe: 80 KB of it is queued.
  CHECK(queued_in_path(100000, 10000, 2000) == 80000);
  // No queue: the RTT is at its minimum (or below: srtt is smoothed, the minimum not).
  CHECK(queued_in_path(100000, 2000, 2000) == 0);
  CHECK(queued_in_path(100000, 1500, 2000) == 0);
  // No minimum measured yet: nothing is known to be queued.
  CHECK(queued_in_path(100000, 10000, 0) == 0);
  CHECK(queued_in_path(0, 10000, 2000) == 0);
  // Large values do not overflow.
  CHECK(queued_in_path(std::uint64_t{1} << 40, 4000000, 1000000) == (std::uint64_t{3} << 38));
}

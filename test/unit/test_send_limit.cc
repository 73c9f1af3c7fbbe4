// SendLimit: the kernel's share of a tunnel connection's queue follows the delivery rate
// measured while the connection was held back, plus the paths' round trip.
#include <catch2/catch.hpp>

#include "tunnel/send_limit.h"

using namespace mpudp;

namespace {
// Feeds `seconds` of windows at `rate` bytes/s starting at t, 1 ms apart.
double feed(SendLimit& l, double t, double seconds, double rate, std::uint64_t& acked,
            bool backlogged) {
  for (double end = t + seconds; t < end; t += 0.001) {
    acked += static_cast<std::uint64_t>(rate * 0.001);
    l.observe(t, acked, backlogged);
  }
  return t;
}
}  // namespace

TEST_CASE("the limit starts at 64 KiB per subflow", "[send_limit]") {
  SendLimit l({});
  CHECK(l.limit() == 64 * 1024);
  l.set_paths(0.0, 2);
  CHECK(l.limit() == 128 * 1024);
  l.set_paths(0.0, 0);  // a kernel that reports no subflow: still one path
  CHECK(l.limit() == 64 * 1024);
}

TEST_CASE("the limit is rate times (round trip + target)", "[send_limit]") {
  SendLimit l({});
  l.set_paths(0.020, 1);
  std::uint64_t acked = 0;
  feed(l, 0, 1.0, 10e6, acked, true);
  CHECK(l.rate() == Approx(10e6).epsilon(0.05));
  CHECK(l.limit() == Approx(10e6 * 0.025).epsilon(0.05));
}

TEST_CASE("an idle spell does not shrink the limit; a slower path does", "[send_limit]") {
  SendLimit l({});
  l.set_paths(0.050, 1);
  std::uint64_t acked = 0;
  double t = feed(l, 0, 1.0, 20e6, acked, true);
  const std::size_t busy = l.limit();
  CHECK(busy == Approx(20e6 * 0.055).epsilon(0.05));
  // Application-limited: says nothing (but the window the traffic stopped in, which was
  // partly held back, counts once).
  t = feed(l, t, 2.0, 1e5, acked, false);
  CHECK(static_cast<double>(l.limit()) > 0.85 * static_cast<double>(busy));
  feed(l, t, 2.0, 2e6, acked, true);  // held back and still slow: the path got slower
  CHECK(l.limit() == Approx(2e6 * 0.055).epsilon(0.1));
}

TEST_CASE("the limit stays within its ceiling", "[send_limit]") {
  SendLimit::Params p;
  p.ceiling = 256 * 1024;
  SendLimit l(p);
  l.set_paths(0.5, 4);
  std::uint64_t acked = 0;
  feed(l, 0, 3.0, 1e9, acked, true);
  CHECK(l.limit() == 256 * 1024);
}

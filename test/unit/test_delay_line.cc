// DelayLine and nfqdelay's options: release times from arrival, delay and jitter; order
// kept or not; outages, loss and the limit drop and count; bad options are named.
#include <catch2/catch.hpp>

#include <string>
#include <string_view>
#include <vector>

#include "delay_line.h"

using namespace mpudp;

namespace {
constexpr std::int64_t kStart = 1'000'000;  // any clock origin
constexpr std::int64_t kMs = 1000;
constexpr double kMid = 0.5;  // a jitter draw of 0.5 is no jitter
constexpr double kKeep = 0.999;  // a loss draw no configured loss reaches

DelayConfig delay(std::int64_t delay_ms, std::int64_t jitter_ms = 0, bool reorder = false) {
  DelayConfig c;
  c.delay_us = delay_ms * kMs;
  c.jitter_us = jitter_ms * kMs;
  c.reorder = reorder;
  return c;
}

std::vector<std::uint32_t> due(DelayLine& l, std::int64_t now) {
  std::vector<std::uint32_t> out;
  l.release_due(now, out);
  return out;
}

using Ids = std::vector<std::uint32_t>;
}  // namespace

TEST_CASE("a packet is released after the delay, not before", "[delay_line]") {
  DelayLine l(delay(40), kStart);
  CHECK(l.arrive(7, kStart + 5 * kMs, kMid, kKeep) == DelayLine::Verdict::Hold);
  CHECK(l.next_release() == kStart + 45 * kMs);
  CHECK(due(l, kStart + 45 * kMs - 1).empty());
  CHECK(due(l, kStart + 45 * kMs) == Ids{7});
  CHECK(!l.next_release());
  CHECK(l.counts().passed == 1);
}

TEST_CASE("jitter spreads the wait uniformly around the delay", "[delay_line]") {
  DelayLine l(delay(40, 10, true), kStart);
  l.arrive(1, kStart, 0.0, kKeep);   // 40 - 10
  l.arrive(2, kStart, kMid, kKeep);  // 40
  l.arrive(3, kStart, 0.75, kKeep);  // 40 + 5
  CHECK(due(l, kStart + 30 * kMs) == Ids{1});
  CHECK(due(l, kStart + 40 * kMs) == Ids{2});
  CHECK(due(l, kStart + 45 * kMs - 1).empty());
  CHECK(due(l, kStart + 45 * kMs) == Ids{3});
}

TEST_CASE("jitter larger than the delay never releases before arrival", "[delay_line]") {
  DelayLine l(delay(5, 20, true), kStart);
  l.arrive(1, kStart + 100 * kMs, 0.0, kKeep);  // 5 - 20 < 0
  CHECK(l.next_release() == kStart + 100 * kMs);
}

TEST_CASE("by default a later packet never leaves before an earlier one", "[delay_line]") {
  DelayLine l(delay(40, 10), kStart);
  l.arrive(1, kStart, 1.0, kKeep);          // drawn 50 ms
  l.arrive(2, kStart + 1 * kMs, 0.0, kKeep);  // drawn 30 ms: waits for packet 1
  l.arrive(3, kStart + 60 * kMs, 0.0, kKeep);  // after both: its own 30 ms
  CHECK(due(l, kStart + 49 * kMs).empty());
  CHECK(due(l, kStart + 50 * kMs) == Ids{1, 2});
  CHECK(due(l, kStart + 90 * kMs) == Ids{3});
}

TEST_CASE("--reorder lets a shorter draw overtake", "[delay_line]") {
  DelayLine l(delay(40, 10, true), kStart);
  l.arrive(1, kStart, 1.0, kKeep);
  l.arrive(2, kStart + 1 * kMs, 0.0, kKeep);
  CHECK(due(l, kStart + 31 * kMs) == Ids{2});
  CHECK(due(l, kStart + 50 * kMs) == Ids{1});
}

TEST_CASE("packets due at the same time leave in arrival order", "[delay_line]") {
  DelayLine l(delay(10), kStart);
  for (std::uint32_t id = 100; id < 110; ++id) l.arrive(id, kStart, kMid, kKeep);
  CHECK(due(l, kStart + 10 * kMs) == Ids{100, 101, 102, 103, 104, 105, 106, 107, 108, 109});
  CHECK(l.counts().max_held == 10);
}

TEST_CASE("random loss drops the drawn share and counts it", "[delay_line]") {
  DelayConfig c = delay(10);
  c.loss = 0.05;
  DelayLine l(c, kStart);
  CHECK(l.arrive(1, kStart, kMid, 0.049) == DelayLine::Verdict::DropLoss);
  CHECK(l.arrive(2, kStart, kMid, 0.05) == DelayLine::Verdict::Hold);
  CHECK(l.counts().lost == 1);
  CHECK(l.held() == 1);
}

TEST_CASE("a scheduled outage drops everything inside its window only", "[delay_line]") {
  DelayConfig c = delay(10);
  c.outages = {{2000 * kMs, 1000 * kMs}, {5000 * kMs, 500 * kMs}};
  DelayLine l(c, kStart);
  CHECK(l.arrive(1, kStart + 1999 * kMs, kMid, kKeep) == DelayLine::Verdict::Hold);
  CHECK(l.arrive(2, kStart + 2000 * kMs, kMid, kKeep) == DelayLine::Verdict::DropOutage);
  CHECK(l.arrive(3, kStart + 2999 * kMs, kMid, kKeep) == DelayLine::Verdict::DropOutage);
  CHECK(l.arrive(4, kStart + 3000 * kMs, kMid, kKeep) == DelayLine::Verdict::Hold);
  CHECK(l.arrive(5, kStart + 5200 * kMs, kMid, kKeep) == DelayLine::Verdict::DropOutage);
  CHECK(l.arrive(6, kStart + 5500 * kMs, kMid, kKeep) == DelayLine::Verdict::Hold);
  CHECK(l.counts().outage == 3);
  // What was on the line when the outage began still arrives.
  CHECK(due(l, kStart + 6000 * kMs) == Ids{1, 4, 6});
}

TEST_CASE("going dark by hand drops until light again, before any loss draw", "[delay_line]") {
  DelayConfig c = delay(10);
  c.loss = 1.0;
  DelayLine l(c, kStart);
  l.set_dark(true);
  CHECK(l.dark_at(kStart));
  CHECK(l.arrive(1, kStart, kMid, 0.0) == DelayLine::Verdict::DropOutage);
  l.set_dark(false);
  CHECK(!l.dark_at(kStart));
  CHECK(l.arrive(2, kStart, kMid, 0.0) == DelayLine::Verdict::DropLoss);
  CHECK(l.counts().outage == 1);
  CHECK(l.counts().lost == 1);
}

TEST_CASE("the limit bounds what is held and counts the excess", "[delay_line]") {
  DelayConfig c = delay(40);
  c.limit = 3;
  DelayLine l(c, kStart);
  for (std::uint32_t id = 0; id < 5; ++id) l.arrive(id, kStart, kMid, kKeep);
  CHECK(l.held() == 3);
  CHECK(l.counts().limit == 2);
  CHECK(l.counts().max_held == 3);
  CHECK(due(l, kStart + 40 * kMs) == Ids{0, 1, 2});
  // Room again once released.
  CHECK(l.arrive(9, kStart + 41 * kMs, kMid, kKeep) == DelayLine::Verdict::Hold);
}

TEST_CASE("release_all empties the line and counts it passed", "[delay_line]") {
  DelayLine l(delay(1000), kStart);
  l.arrive(1, kStart, kMid, kKeep);
  l.arrive(2, kStart, kMid, kKeep);
  std::vector<std::uint32_t> out;
  l.release_all(out);
  CHECK(out == Ids{1, 2});
  CHECK(l.held() == 0);
  CHECK(l.counts().passed == 2);
}

namespace {
bool parse(std::vector<std::string_view> args, DelayOptions* o, std::string* err) {
  return parse_delay_options(args, o, err);
}
std::string error_of(std::vector<std::string_view> args) {
  DelayOptions o;
  std::string err;
  if (parse(std::move(args), &o, &err)) return "(accepted)";
  return err;
}
}  // namespace

TEST_CASE("options: a full command line", "[delay_line]") {
  DelayOptions o;
  std::string err;
  REQUIRE(parse({"--queue", "40", "--delay", "40", "--jitter", "2.5", "--reorder", "--loss",
                 "5", "--outage-at", "3", "--outage-for", "1.5", "--outage-at", "10",
                 "--outage-for", "2", "--limit", "1000", "--queue-maxlen", "8192", "--seed",
                 "42"},
                &o, &err));
  CHECK(o.queue == 40);
  CHECK(o.line.delay_us == 40000);
  CHECK(o.line.jitter_us == 2500);
  CHECK(o.line.reorder);
  CHECK(o.line.loss == Approx(0.05));
  REQUIRE(o.line.outages.size() == 2);
  CHECK(o.line.outages[0].start_us == 3000000);
  CHECK(o.line.outages[0].length_us == 1500000);
  CHECK(o.line.outages[1].start_us == 10000000);
  CHECK(o.line.limit == 1000);
  CHECK(o.queue_maxlen == 8192);
  CHECK(o.seed == 42);
}

TEST_CASE("options: defaults", "[delay_line]") {
  DelayOptions o;
  std::string err;
  REQUIRE(parse({"--queue", "0"}, &o, &err));
  CHECK(o.line.delay_us == 0);
  CHECK(!o.line.reorder);
  CHECK(o.line.limit == 0);
  CHECK(o.queue_maxlen == 4096);
}

TEST_CASE("options: bad input is named", "[delay_line]") {
  CHECK(error_of({}) == "--queue is required");
  CHECK(error_of({"--queue", "70000"}) == "--queue: '70000' is not a queue number in 0..65535");
  CHECK(error_of({"--queue", "1", "--delay", "-3"}) ==
        "--delay: '-3' is not a number of milliseconds in 0..60000");
  CHECK(error_of({"--queue", "1", "--delay", "40ms"}) ==
        "--delay: '40ms' is not a number of milliseconds in 0..60000");
  CHECK(error_of({"--queue", "1", "--jitter", "nan"}) ==
        "--jitter: 'nan' is not a number of milliseconds in 0..60000");
  CHECK(error_of({"--queue", "1", "--loss", "101"}) == "--loss: '101' is not a percentage in 0..100");
  CHECK(error_of({"--queue", "1", "--delay"}) == "--delay needs a value");
  CHECK(error_of({"--queue", "1", "--frobnicate", "1"}) == "unknown option '--frobnicate'");
  CHECK(error_of({"--queue", "1", "40"}) == "unexpected argument '40'");
  CHECK(error_of({"--queue", "1", "--outage-for", "2"}) ==
        "--outage-for 2 comes without an --outage-at before it");
  CHECK(error_of({"--queue", "1", "--outage-at", "2"}) == "--outage-at without its --outage-for");
  CHECK(error_of({"--queue", "1", "--outage-at", "2", "--outage-at", "3"}) ==
        "--outage-at 3: the previous --outage-at has no --outage-for");
  CHECK(error_of({"--queue", "1", "--outage-at", "2", "--outage-for", "0"}) ==
        "--outage-for: '0' is not a number of seconds in 0.001..86400");
  CHECK(error_of({"--queue", "1", "--queue-maxlen", "0"}) ==
        "--queue-maxlen: '0' is not a packet count in 1..10000000");
  CHECK(error_of({"--queue", "1", "--limit", "-1"}) ==
        "--limit: '-1' is not a packet count in 0..10000000");
}

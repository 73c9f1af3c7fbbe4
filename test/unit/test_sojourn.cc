// SojournDropper: CoDel (RFC 8289) on the head frame's wait, with a ceiling. A burst that
// drains within an interval loses nothing; a standing queue loses datagrams at a growing
// rate; nothing waits past the ceiling.
#include <catch2/catch.hpp>

#include "tunnel/sojourn.h"

using namespace mpudp;
using namespace std::chrono_literals;

namespace {
constexpr std::size_t kBig = 100000;  // a queue well past kMaxPacket
}  // namespace

TEST_CASE("waits under the target are never dropped", "[sojourn]") {
  FakeClock clock;
  SojournDropper d;
  for (int i = 0; i < 1000; ++i) {
    clock.advance(1ms);
    CHECK(!d.should_drop(clock.now(), clock.now() - 4ms, kBig));
  }
  CHECK(!d.dropping());
}

TEST_CASE("a burst that drains within the interval loses nothing", "[sojourn]") {
  FakeClock clock;
  SojournDropper d;
  // The head waited 50 ms at worst, above the target for 90 ms, then the queue drained.
  for (int i = 0; i < 90; ++i) {
    clock.advance(1ms);
    CHECK(!d.should_drop(clock.now(), clock.now() - 50ms, kBig));
  }
  d.on_empty();
  for (int i = 0; i < 90; ++i) {
    clock.advance(1ms);
    CHECK(!d.should_drop(clock.now(), clock.now() - 50ms, kBig));
  }
}

TEST_CASE("a standing queue is dropped from, faster as it stays", "[sojourn]") {
  FakeClock clock;
  SojournDropper d;  // 5 ms, 100 ms
  const auto wait = 20ms;
  CHECK(!d.should_drop(clock.now(), clock.now() - wait, kBig));  // first above: +100 ms
  clock.advance(99ms);
  CHECK(!d.should_drop(clock.now(), clock.now() - wait, kBig));
  clock.advance(1ms);
  CHECK(d.should_drop(clock.now(), clock.now() - wait, kBig));  // an interval above
  CHECK(d.dropping());
  CHECK(d.count() == 1);
  // The next head right after: kept, the next drop is an interval later.
  CHECK(!d.should_drop(clock.now(), clock.now() - wait, kBig));
  clock.advance(99ms);
  CHECK(!d.should_drop(clock.now(), clock.now() - wait, kBig));
  clock.advance(1ms);
  CHECK(d.should_drop(clock.now(), clock.now() - wait, kBig));
  CHECK(d.count() == 2);
  // Then interval / sqrt(2): 70.7 ms.
  clock.advance(70ms);
  CHECK(!d.should_drop(clock.now(), clock.now() - wait, kBig));
  clock.advance(1ms);
  CHECK(d.should_drop(clock.now(), clock.now() - wait, kBig));
  CHECK(d.count() == 3);
  // Below the target: dropping ends.
  clock.advance(100ms);
  CHECK(!d.should_drop(clock.now(), clock.now() - 1ms, kBig));
  CHECK(!d.dropping());
}

TEST_CASE("back to dropping soon after: the rate that was needed is remembered", "[sojourn]") {
  FakeClock clock;
  SojournDropper d;
  const auto drop = [&] { return d.should_drop(clock.now(), clock.now() - 20ms, kBig); };
  drop();
  clock.advance(100ms);
  REQUIRE(drop());
  for (int i = 0; i < 2000 && d.count() < 5; ++i) {
    clock.advance(1ms);
    drop();
  }
  REQUIRE(d.count() == 5);
  CHECK(!d.should_drop(clock.now(), clock.now() - 1ms, kBig));  // leaves dropping
  clock.advance(10ms);
  drop();
  clock.advance(100ms);
  REQUIRE(drop());
  CHECK(d.count() == 4);  // count - lastcount: 5 - 1
}

TEST_CASE("a queue of one packet's worth is not a standing queue", "[sojourn]") {
  FakeClock clock;
  SojournDropper d;
  for (int i = 0; i < 300; ++i) {
    clock.advance(1ms);
    CHECK(!d.should_drop(clock.now(), clock.now() - 50ms, SojournDropper::kMaxPacket));
  }
}

TEST_CASE("nothing waits past the ceiling, whatever CoDel's state", "[sojourn]") {
  FakeClock clock;
  SojournDropper d({5ms, 50ms});
  // First look at all: no interval above target yet, but 200 ms is four intervals.
  CHECK(d.should_drop(clock.now(), clock.now() - 200ms, kBig));
  CHECK(!d.should_drop(clock.now(), clock.now() - 199ms, kBig));
  CHECK(d.should_drop(clock.now(), clock.now() - 1s, 100));
}

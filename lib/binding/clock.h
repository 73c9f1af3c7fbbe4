// Time as the binding table sees it. Production code reads the event loop's clock; unit
// tests drive a FakeClock by hand, so lifetimes are tested without sleeping.
#pragma once

#include <chrono>

namespace mpudp {

using SteadyClock = std::chrono::steady_clock;
using TimePoint = SteadyClock::time_point;
using Duration = std::chrono::milliseconds;

class Clock {
 public:
  virtual ~Clock() = default;
  virtual TimePoint now() const = 0;
};

class SteadyClockSource final : public Clock {
 public:
  TimePoint now() const override { return SteadyClock::now(); }
};

class FakeClock final : public Clock {
 public:
  TimePoint now() const override { return now_; }
  void advance(Duration d) { now_ += d; }
  void set(TimePoint t) { now_ = t; }

 private:
  TimePoint now_{std::chrono::hours(1)};
};

}  // namespace mpudp

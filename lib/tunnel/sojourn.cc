#include "tunnel/sojourn.h"

#include <cmath>

namespace mpudp {

bool SojournDropper::ok_to_drop(TimePoint now, Micros sojourn, std::size_t queued) {
  if (sojourn < p_.target || queued <= kMaxPacket) {
    first_above_ = {};
    return false;
  }
  if (first_above_ == TimePoint{}) {
    first_above_ = now + p_.interval;
    return false;
  }
  return now >= first_above_;
}

TimePoint SojournDropper::control_law(TimePoint t) const {
  const double step = static_cast<double>(p_.interval.count()) / std::sqrt(static_cast<double>(count_));
  return t + Micros(static_cast<Micros::rep>(step));
}

bool SojournDropper::should_drop(TimePoint now, TimePoint enqueued, std::size_t queued) {
  const auto sojourn = std::chrono::duration_cast<Micros>(now - enqueued);
  const bool ok = ok_to_drop(now, sojourn, queued);
  if (sojourn >= kCeilingIntervals * p_.interval) return true;
  if (dropping_) {
    if (!ok) {
      dropping_ = false;
      return false;
    }
    if (now < drop_next_) return false;
    ++count_;
    drop_next_ = control_law(drop_next_);
    return true;
  }
  if (!ok) return false;
  dropping_ = true;
  // Back into dropping soon after leaving it: start near the rate that was needed then
  // (RFC 8289, section 5.4).
  const std::uint32_t delta = count_ - lastcount_;
  count_ = delta > 1 && now - drop_next_ < 16 * p_.interval ? delta : 1;
  drop_next_ = control_law(now);
  lastcount_ = count_;
  return true;
}

}  // namespace mpudp

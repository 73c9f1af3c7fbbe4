#include "binding/dedup_window.h"

namespace mpudp {

DedupWindow::Verdict DedupWindow::accept(std::uint32_t seq) {
  if (!started_) {
    started_ = true;
    highest_ = seq;
    seen_ = 1;
    return Verdict::Deliver;
  }
  const std::uint32_t ahead = seq - highest_;  // mod 2^32
  if (ahead != 0 && ahead < 0x80000000u) {     // newer: slide the window up
    seen_ = ahead >= kBits ? 0 : seen_ << ahead;
    seen_ |= 1;
    highest_ = seq;
    return Verdict::Deliver;
  }
  const std::uint32_t behind = highest_ - seq;  // 0 for highest_ itself
  if (behind >= kBits) return Verdict::Duplicate;
  const std::uint64_t bit = std::uint64_t{1} << behind;
  if ((seen_ & bit) != 0) return Verdict::Duplicate;
  seen_ |= bit;
  return Verdict::Deliver;
}

}  // namespace mpudp

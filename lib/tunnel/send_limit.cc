#include "tunnel/send_limit.h"

#include <algorithm>

namespace mpudp {
namespace {
// A window lasts a round trip, at least this long, so that one ACK's worth of bytes
// does not read as a rate.
constexpr double kMinWindow = 0.020;
}  // namespace

SendLimit::SendLimit(const Params& p) : p_(p), limit_(p.per_subflow) {}

double SendLimit::rate() const {
  double sum = 0;
  for (double r : rates_) sum += r;
  return filled_ == 0 ? 0 : sum / static_cast<double>(filled_);
}

void SendLimit::set_paths(double rtt_s, unsigned subflows) {
  rtt_s_ = std::clamp(rtt_s, 0.0, 1.0);
  subflows_ = std::clamp(subflows, 1u, 16u);
  recompute();
}

void SendLimit::observe(double now_s, std::uint64_t acked, bool backlogged) {
  if (!started_) {
    started_ = true;
    win_start_ = now_s;
    win_acked_ = acked;
    win_backlogged_ = false;
    return;
  }
  win_backlogged_ = win_backlogged_ || backlogged;
  const double span = now_s - win_start_;
  if (span < std::max(kMinWindow, rtt_s_)) return;
  const double r = static_cast<double>(acked - win_acked_) / span;
  // An application-limited window says nothing about the paths unless it beat the
  // estimate.
  if (win_backlogged_ || r > rate()) {
    rates_[next_] = r;
    next_ = (next_ + 1) % kWindows;
    filled_ = std::min(filled_ + 1, kWindows);
    recompute();
  }
  win_start_ = now_s;
  win_acked_ = acked;
  win_backlogged_ = false;
}

void SendLimit::recompute() {
  const double want = rate() * (rtt_s_ + p_.target_s);
  const std::size_t floor = p_.per_subflow * subflows_;
  limit_ = std::clamp(static_cast<std::size_t>(want), std::min(floor, p_.ceiling), p_.ceiling);
}

}  // namespace mpudp

#include "tunnel/send_limit.h"

#include <algorithm>

namespace mpudp {
namespace {
// A window lasts at least this long, so that one burst does not read as a rate.
constexpr double kWindow = 0.020;
}  // namespace

SendLimit::SendLimit(const Params& p) : p_(p) { recompute(); }

double SendLimit::rate() const {
  double sum = 0;
  for (double r : rates_) sum += r;
  return filled_ == 0 ? 0 : sum / static_cast<double>(filled_);
}

void SendLimit::set_subflows(unsigned n) {
  subflows_ = std::clamp(n, 1u, 16u);
  recompute();
}

void SendLimit::set_rtt_spread(double seconds) {
  const double s = std::clamp(seconds, 0.0, p_.max_spread_s);
  if (s == spread_s_) return;
  spread_s_ = s;
  recompute();
}

void SendLimit::note_shared(double now_s) {
  const bool was = shared();
  shared_until_ = now_s + p_.shared_hold_s;
  if (!was) recompute();
}

void SendLimit::observe(double now_s, std::uint64_t sent, bool backlogged) {
  if (shared() && now_s >= shared_until_) {
    shared_until_ = 0;
    recompute();
  }
  if (!started_ || sent < win_sent_) {  // first look, or a subflow (and its count) went
    started_ = true;
    win_start_ = now_s;
    win_sent_ = sent;
    win_backlogged_ = false;
    return;
  }
  win_backlogged_ = win_backlogged_ || backlogged;
  const double span = now_s - win_start_;
  if (span < kWindow) return;
  const double r = static_cast<double>(sent - win_sent_) / span;
  // An application-limited window says nothing about the paths unless it beat the
  // estimate.
  if (win_backlogged_ || r > rate()) {
    rates_[next_] = r;
    next_ = (next_ + 1) % kWindows;
    filled_ = std::min(filled_ + 1, kWindows);
    recompute();
  }
  win_start_ = now_s;
  win_sent_ = sent;
  win_backlogged_ = false;
}

void SendLimit::recompute() {
  const std::size_t floor = std::min(p_.min_per_subflow * subflows_, p_.ceiling);
  const double target =
      shared() ? std::min(p_.target_s, p_.shared_target_s) : p_.target_s + spread_s_;
  const auto want = static_cast<std::size_t>(rate() * target);
  limit_ = std::clamp(want, floor, p_.ceiling);
}

std::uint64_t queued_in_path(std::uint64_t inflight, std::uint32_t srtt_us,
                             std::uint32_t min_rtt_us) {
  if (min_rtt_us == 0 || srtt_us <= min_rtt_us) return 0;
  // inflight is at most a few hundred MB: the product stays far below 2^64.
  return inflight * (srtt_us - min_rtt_us) / srtt_us;
}

}  // namespace mpudp

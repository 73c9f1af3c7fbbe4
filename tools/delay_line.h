// The scheduling of tools/nfqdelay, apart from the kernel: when a packet held for a path's
// delay and jitter may go on, and which packets are dropped instead (random loss, an
// outage, a full line). Times are microseconds on one monotonic clock; random draws come
// from the caller, so that tests choose them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <queue>
#include <string>
#include <string_view>
#include <vector>

namespace mpudp {

struct Outage {
  std::int64_t start_us = 0;  // from the line's start
  std::int64_t length_us = 0;
};

struct DelayConfig {
  std::int64_t delay_us = 0;
  std::int64_t jitter_us = 0;  // each packet waits delay ± jitter, uniform
  // false: a packet never leaves before one that arrived earlier, as on a link (a packet
  // drawn a short wait then waits for its predecessor); true: jitter reorders.
  bool reorder = false;
  double loss = 0;  // probability in [0, 1]
  std::vector<Outage> outages;
  std::size_t limit = 0;  // packets held at most; 0: no bound
};

// nfqdelay's command line, parsed apart from main so that its errors can be tested.
struct DelayOptions {
  int queue = -1;
  std::uint32_t queue_maxlen = 4096;
  std::uint64_t seed = 0;  // 0: from the clock
  DelayConfig line;
};

// Fills `out` from the arguments (without the program name); on a bad one, returns false
// with a message naming it in `err`.
bool parse_delay_options(const std::vector<std::string_view>& args, DelayOptions* out,
                         std::string* err);

class DelayLine {
 public:
  enum class Verdict { Hold, DropLoss, DropOutage, DropLimit };
  struct Counts {
    std::uint64_t passed = 0;
    std::uint64_t lost = 0;
    std::uint64_t outage = 0;
    std::uint64_t limit = 0;
    std::size_t max_held = 0;
  };

  DelayLine(DelayConfig cfg, std::int64_t start_us);

  // A packet arrives at `now_us`; both draws are uniform in [0, 1). On Hold, the line
  // keeps `id` until its release time.
  Verdict arrive(std::uint32_t id, std::int64_t now_us, double jitter_draw, double loss_draw);
  // Appends the ids whose time has come, in release order; they count as passed.
  void release_due(std::int64_t now_us, std::vector<std::uint32_t>& out);
  // Appends every id still held (the line stops: what is on it arrives, as on a link).
  void release_all(std::vector<std::uint32_t>& out);
  std::optional<std::int64_t> next_release() const;

  // Dark by hand (nfqdelay's SIGUSR1 and SIGUSR2), besides the scheduled outages.
  void set_dark(bool dark) { dark_ = dark; }
  bool dark_at(std::int64_t now_us) const;
  std::size_t held() const { return held_.size(); }
  const Counts& counts() const { return counts_; }

 private:
  struct Held {
    std::int64_t release_us;
    std::uint64_t order;  // ties leave in arrival order
    std::uint32_t id;
    bool operator>(const Held& o) const {
      return release_us != o.release_us ? release_us > o.release_us : order > o.order;
    }
  };

  DelayConfig cfg_;
  std::int64_t start_us_;
  bool dark_ = false;
  std::int64_t last_release_us_ = 0;
  std::uint64_t order_ = 0;
  std::priority_queue<Held, std::vector<Held>, std::greater<>> held_;
  Counts counts_;
};

}  // namespace mpudp

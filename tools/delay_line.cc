#include "delay_line.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <limits>
#include <utility>

namespace mpudp {
namespace {

// A finite decimal number in [lo, hi], the whole string.
bool parse_real(std::string_view s, double lo, double hi, double* out) {
  const std::string text(s);
  if (text.empty()) return false;
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(text.c_str(), &end);
  if (errno != 0 || end != text.c_str() + text.size() || !std::isfinite(v) || v < lo || v > hi)
    return false;
  *out = v;
  return true;
}

bool parse_uint(std::string_view s, std::uint64_t hi, std::uint64_t* out) {
  const std::string text(s);
  if (text.empty() || text[0] == '-' || text[0] == '+') return false;
  char* end = nullptr;
  errno = 0;
  const unsigned long long v = std::strtoull(text.c_str(), &end, 10);
  if (errno != 0 || end != text.c_str() + text.size() || v > hi) return false;
  *out = v;
  return true;
}

std::int64_t ms_to_us(double ms) { return static_cast<std::int64_t>(std::llround(ms * 1000.0)); }

}  // namespace

bool parse_delay_options(const std::vector<std::string_view>& args, DelayOptions* out,
                         std::string* err) {
  DelayOptions o;
  // An --outage-at waits for its --outage-for (-1: none waits). Not std::optional: GCC 12
  // warns falsely that its value may be used uninitialized.
  std::int64_t pending_at = -1;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string_view a = args[i];
    std::string_view v;
    const bool flag = a == "--reorder";
    if (!flag) {
      if (a.substr(0, 2) != "--") {
        *err = "unexpected argument '" + std::string(a) + "'";
        return false;
      }
      if (i + 1 >= args.size()) {
        *err = std::string(a) + " needs a value";
        return false;
      }
      v = args[++i];
    }
    auto bad = [&](const std::string& want) {
      *err = std::string(a) + ": '" + std::string(v) + "' is not " + want;
      return false;
    };
    double real = 0;
    std::uint64_t n = 0;
    if (a == "--reorder") {
      o.line.reorder = true;
    } else if (a == "--queue") {
      if (!parse_uint(v, 65535, &n)) return bad("a queue number in 0..65535");
      o.queue = static_cast<int>(n);
    } else if (a == "--delay" || a == "--jitter") {
      if (!parse_real(v, 0, 60000, &real)) return bad("a number of milliseconds in 0..60000");
      (a == "--delay" ? o.line.delay_us : o.line.jitter_us) = ms_to_us(real);
    } else if (a == "--loss") {
      if (!parse_real(v, 0, 100, &real)) return bad("a percentage in 0..100");
      o.line.loss = real / 100.0;
    } else if (a == "--outage-at") {
      if (pending_at >= 0) {
        *err = "--outage-at " + std::string(v) + ": the previous --outage-at has no --outage-for";
        return false;
      }
      if (!parse_real(v, 0, 86400, &real)) return bad("a number of seconds in 0..86400");
      pending_at = ms_to_us(real * 1000.0);
    } else if (a == "--outage-for") {
      if (pending_at < 0) {
        *err = "--outage-for " + std::string(v) + " comes without an --outage-at before it";
        return false;
      }
      if (!parse_real(v, 0.001, 86400, &real)) return bad("a number of seconds in 0.001..86400");
      o.line.outages.push_back({pending_at, ms_to_us(real * 1000.0)});
      pending_at = -1;
    } else if (a == "--limit") {
      if (!parse_uint(v, 10000000, &n)) return bad("a packet count in 0..10000000");
      o.line.limit = static_cast<std::size_t>(n);
    } else if (a == "--queue-maxlen") {
      if (!parse_uint(v, 10000000, &n) || n == 0) return bad("a packet count in 1..10000000");
      o.queue_maxlen = static_cast<std::uint32_t>(n);
    } else if (a == "--seed") {
      if (!parse_uint(v, UINT64_MAX, &n)) return bad("an unsigned number");
      o.seed = n;
    } else {
      *err = "unknown option '" + std::string(a) + "'";
      return false;
    }
  }
  if (pending_at >= 0) {
    *err = "--outage-at without its --outage-for";
    return false;
  }
  if (o.queue < 0) {
    *err = "--queue is required";
    return false;
  }
  *out = std::move(o);
  return true;
}

DelayLine::DelayLine(DelayConfig cfg, std::int64_t start_us)
    : cfg_(std::move(cfg)), start_us_(start_us), last_release_us_(start_us) {}

bool DelayLine::dark_at(std::int64_t now_us) const {
  if (dark_) return true;
  const std::int64_t t = now_us - start_us_;
  return std::any_of(cfg_.outages.begin(), cfg_.outages.end(), [t](const Outage& o) {
    return t >= o.start_us && t < o.start_us + o.length_us;
  });
}

DelayLine::Verdict DelayLine::arrive(std::uint32_t id, std::int64_t now_us, double jitter_draw,
                                     double loss_draw) {
  // A dark link loses everything, before any random loss gets a say.
  if (dark_at(now_us)) {
    ++counts_.outage;
    return Verdict::DropOutage;
  }
  if (loss_draw < cfg_.loss) {
    ++counts_.lost;
    return Verdict::DropLoss;
  }
  if (cfg_.limit != 0 && held_.size() >= cfg_.limit) {
    ++counts_.limit;
    return Verdict::DropLimit;
  }
  const auto offset = static_cast<std::int64_t>(
      std::llround((2.0 * jitter_draw - 1.0) * static_cast<double>(cfg_.jitter_us)));
  // Jitter larger than the delay cannot send a packet back in time.
  std::int64_t release = std::max(now_us, now_us + cfg_.delay_us + offset);
  if (!cfg_.reorder) release = std::max(release, last_release_us_);
  last_release_us_ = std::max(last_release_us_, release);
  held_.push({release, order_++, id});
  counts_.max_held = std::max(counts_.max_held, held_.size());
  return Verdict::Hold;
}

void DelayLine::release_due(std::int64_t now_us, std::vector<std::uint32_t>& out) {
  while (!held_.empty() && held_.top().release_us <= now_us) {
    out.push_back(held_.top().id);
    held_.pop();
    ++counts_.passed;
  }
}

void DelayLine::release_all(std::vector<std::uint32_t>& out) {
  release_due(std::numeric_limits<std::int64_t>::max(), out);
}

std::optional<std::int64_t> DelayLine::next_release() const {
  if (held_.empty()) return std::nullopt;
  return held_.top().release_us;
}

}  // namespace mpudp

#include "ctl/stats.h"

namespace mpudp {
namespace {
const StatInfo kCounterInfo[] = {
#define MPUDP_X(name, help) {#name, help},
    MPUDP_COUNTERS(MPUDP_X)
#undef MPUDP_X
};
const StatInfo kDropInfo[] = {
#define MPUDP_X(name, help) {#name, help},
    MPUDP_DROP_REASONS(MPUDP_X)
#undef MPUDP_X
};
}  // namespace

const StatInfo& info(Counter c) { return kCounterInfo[static_cast<std::size_t>(c)]; }
const StatInfo& info(Drop d) { return kDropInfo[static_cast<std::size_t>(d)]; }

std::uint64_t Stats::total_drops() const {
  std::uint64_t t = 0;
  for (auto v : drops_) t += v;
  return t;
}

std::string Stats::to_json() const {
  std::string out = "{\"counters\":{";
  for (std::size_t i = 0; i < counters_.size(); ++i) {
    if (i) out += ',';
    out += '"';
    out += kCounterInfo[i].name;
    out += "\":" + std::to_string(counters_[i]);
  }
  out += "},\"drops\":{";
  for (std::size_t i = 0; i < drops_.size(); ++i) {
    if (i) out += ',';
    out += '"';
    out += kDropInfo[i].name;
    out += "\":" + std::to_string(drops_[i]);
  }
  out += "}}";
  return out;
}

}  // namespace mpudp

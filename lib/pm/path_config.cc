#include "pm/path_config.h"

#include <algorithm>

namespace mpudp::pm {

std::uint32_t kernel_flags(const PathConfig& p) {
  std::uint32_t f = 0;
  if (p.signal) f |= kFlagSignal;
  if (p.subflow) f |= kFlagSubflow;
  if (p.backup) f |= kFlagBackup;
  if (p.fullmesh) f |= kFlagFullmesh;
  if (p.laminar) f |= kFlagLaminar;
  return f;
}

std::string flags_str(std::uint32_t flags) {
  static constexpr struct {
    std::uint32_t bit;
    const char* name;
  } kNames[] = {{kFlagSignal, "signal"},
                {kFlagSubflow, "subflow"},
                {kFlagBackup, "backup"},
                {kFlagFullmesh, "fullmesh"},
                {kFlagLaminar, "laminar"}};
  std::string s;
  for (const auto& n : kNames) {
    if ((flags & n.bit) == 0) continue;
    if (!s.empty()) s += ',';
    s += n.name;
  }
  return s;
}

std::string path_error(const PathConfig& p) {
  if (p.interface.empty() && !p.address.valid()) return "a path needs an interface";
  // The kernel refuses this combination (an announced address cannot also be meshed).
  if (p.signal && p.fullmesh) return "signal and fullmesh cannot be combined";
  return {};
}

Limits effective_limits(const PmSettings& s) {
  auto n = static_cast<std::uint32_t>(s.paths.size());
  Limits l;
  if (s.role == PmRole::Cpe) {
    l.subflows = std::min(kMaxLimit, std::max<std::uint32_t>(2, 2 * n));
    l.add_addr_accepted = std::min(kMaxLimit, n);
  } else {
    l.subflows = kMaxLimit;
    l.add_addr_accepted = 0;
  }
  if (s.limits.subflows) l.subflows = *s.limits.subflows;
  if (s.limits.add_addr_accepted) l.add_addr_accepted = *s.limits.add_addr_accepted;
  return l;
}

}  // namespace mpudp::pm

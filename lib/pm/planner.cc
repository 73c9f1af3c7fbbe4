#include "pm/planner.h"

#include <algorithm>

namespace mpudp::pm {

Planner::Planner(std::vector<PathConfig> paths) : paths_(std::move(paths)) {}

bool Planner::usable(const Endpoint& a) {
  if (!a.valid() || a.is_unspecified()) return false;
  if (a.is_v4()) return !(a.addr[0] == 169 && a.addr[1] == 254);
  // fe80::/10; and IPv4-mapped addresses never sit on an interface.
  return !(a.addr[0] == 0xfe && (a.addr[1] & 0xc0) == 0x80);
}

void Planner::link_changed(int ifindex, const std::string& name, bool up) {
  Link& l = links_[ifindex];
  l.name = name;
  l.up = up;
}

void Planner::link_removed(int ifindex) { links_.erase(ifindex); }

void Planner::address_added(int ifindex, const Endpoint& addr, bool from_dump) {
  Endpoint a = addr;
  a.port = 0;
  Link& l = links_[ifindex];
  for (const Addr& x : l.addrs)
    if (x.addr == a) return;  // a refresh (lifetimes, flags) is not a new address
  l.addrs.push_back({a, from_dump ? 0 : next_rank_++});
}

void Planner::address_removed(int ifindex, const Endpoint& addr) {
  auto it = links_.find(ifindex);
  if (it == links_.end()) return;
  Endpoint a = addr;
  a.port = 0;
  std::erase_if(it->second.addrs, [&](const Addr& x) { return x.addr == a; });
}

std::vector<std::string> Planner::missing_interfaces() const {
  std::vector<std::string> out;
  for (const PathConfig& p : paths_) {
    if (p.interface.empty()) continue;  // an address path: wherever the address is
    bool found = std::any_of(links_.begin(), links_.end(),
                             [&](const auto& kv) { return kv.second.name == p.interface; });
    if (!found) out.push_back(p.interface);
  }
  return out;
}

std::vector<std::pair<EndpointSpec, std::size_t>> Planner::desired() const {
  std::vector<std::pair<EndpointSpec, std::size_t>> out;
  // Two paths naming one interface: the kernel holds one endpoint per address.
  auto add = [&out](const EndpointSpec& spec, std::size_t i) {
    bool dup = std::any_of(out.begin(), out.end(),
                           [&](const auto& d) { return d.first.addr == spec.addr; });
    if (!dup) out.emplace_back(spec, i);
  };
  for (std::size_t i = 0; i < paths_.size(); ++i) {
    if (const Endpoint& want = paths_[i].address; want.valid()) {
      for (const auto& [ifindex, link] : links_) {
        if (!link.up) continue;
        for (const Addr& a : link.addrs)
          if (a.addr == want) add(EndpointSpec{a.addr, ifindex, kernel_flags(paths_[i])}, i);
      }
      continue;
    }
    for (const auto& [ifindex, link] : links_) {
      if (link.name != paths_[i].interface || !link.up) continue;
      for (Family fam : {Family::V4, Family::V6}) {
        const Addr* best = nullptr;
        for (const Addr& a : link.addrs) {
          if (a.addr.family != fam || !usable(a.addr)) continue;
          if (best == nullptr || a.rank > best->rank) best = &a;
        }
        if (best == nullptr) continue;
        add(EndpointSpec{best->addr, ifindex, kernel_flags(paths_[i])}, i);
      }
    }
  }
  return out;
}

std::vector<Action> Planner::plan() const {
  auto want = desired();
  std::vector<Action> dels, adds;
  for (const OwnedEndpoint& o : owned_) {
    bool keep = std::any_of(want.begin(), want.end(), [&](const auto& d) {
      return d.first == o.spec && d.second == o.path;
    });
    if (!keep) dels.push_back({Action::Kind::Del, o.spec, o.id, o.path});
  }
  // Not a structured binding: clang 14 cannot capture those in the lambda.
  for (const auto& w : want) {
    bool have = std::any_of(owned_.begin(), owned_.end(), [&](const OwnedEndpoint& o) {
      return o.spec == w.first && o.path == w.second;
    });
    if (!have) adds.push_back({Action::Kind::Add, w.first, 0, w.second});
  }
  dels.insert(dels.end(), adds.begin(), adds.end());
  return dels;
}

std::vector<Action> Planner::teardown() const {
  std::vector<Action> out;
  for (const OwnedEndpoint& o : owned_) out.push_back({Action::Kind::Del, o.spec, o.id, o.path});
  return out;
}

void Planner::added(const EndpointSpec& spec, std::size_t path, std::uint8_t id) {
  owned_.push_back({spec, id, path});
}

void Planner::removed(std::uint8_t id) {
  std::erase_if(owned_, [&](const OwnedEndpoint& o) { return o.id == id; });
}

}  // namespace mpudp::pm

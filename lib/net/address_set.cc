#include "net/address_set.h"

#include <vector>

#include "net/embedded_v4.h"

namespace mpudp {

Endpoint AddressSet::key(const Endpoint& e) {
  Endpoint k = e;
  k.port = 0;
  return k;
}

void AddressSet::add(std::uint32_t holder, const Endpoint& addr) {
  if (!addr.valid()) return;
  const Endpoint k = key(addr);
  if (held_.insert(Held{holder, k}).second) ++count_[k];
}

void AddressSet::remove(std::uint32_t holder, const Endpoint& addr) {
  const Endpoint k = key(addr);
  if (held_.erase(Held{holder, k}) == 0) return;
  auto it = count_.find(k);
  if (it != count_.end() && --it->second == 0) count_.erase(it);
}

void AddressSet::remove_holder(std::uint32_t holder) {
  std::vector<Endpoint> gone;
  for (const Held& h : held_)
    if (h.holder == holder) gone.push_back(h.addr);
  for (const Endpoint& a : gone) remove(holder, a);
}

void AddressSet::clear() {
  held_.clear();
  count_.clear();
}

bool AddressSet::contains(const Endpoint& addr) const {
  return count_.find(key(addr)) != count_.end();
}

bool AddressSet::covers(const Endpoint& addr) const {
  if (contains(addr)) return true;
  for (const Endpoint& v4 : embedded_v4(addr))
    if (contains(v4)) return true;
  return false;
}

std::vector<Endpoint> AddressSet::addresses() const {
  std::vector<Endpoint> out;
  out.reserve(count_.size());
  for (const auto& [a, n] : count_) out.push_back(a);
  return out;
}

}  // namespace mpudp

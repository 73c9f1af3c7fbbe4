#include "tunnel/admission.h"

#include <algorithm>
#include <random>

namespace mpudp {

namespace {
// The top `len` bits of the first 8 bytes of `addr`, the rest zero.
std::uint64_t top_bits(const std::array<std::uint8_t, 16>& addr, unsigned len) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | addr[static_cast<std::size_t>(i)];
  return len == 0 ? 0 : len >= 64 ? v : v & ~(~std::uint64_t{0} >> len);
}
}  // namespace

std::size_t Admission::PrefixHash::operator()(const PrefixKey& p) const noexcept {
  // splitmix64's finaliser over the salted key.
  std::uint64_t z = (p.bits ^ salt) + (static_cast<std::uint64_t>(p.family) << 8 | p.len);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return static_cast<std::size_t>(z ^ (z >> 31));
}

Admission::Admission() : Admission(Limits{}) {}

Admission::Admission(const Limits& limits)
    : prefixes_(16, PrefixHash{(std::uint64_t{std::random_device{}()} << 32) ^ std::random_device{}()}) {
  set_limits(limits);
}

void Admission::set_limits(const Limits& limits) {
  limits_ = limits;
  limits_.max_handshaking = std::max<std::size_t>(1, limits_.max_handshaking);
  limits_.max_per_prefix = std::max<std::size_t>(1, limits_.max_per_prefix);
  limits_.v4_prefix = std::clamp(limits_.v4_prefix, 1u, 32u);
  limits_.v6_prefix = std::clamp(limits_.v6_prefix, 1u, 64u);
  // Connections admitted under other prefix lengths keep their entries (their prefix is
  // remembered with them), so releasing them stays exact.
}

Admission::PrefixKey Admission::prefix_of(const Endpoint& peer) const {
  const unsigned len = peer.is_v4() ? limits_.v4_prefix : limits_.v6_prefix;
  PrefixKey k;
  k.family = peer.family;
  k.len = static_cast<std::uint8_t>(len);
  k.bits = top_bits(peer.addr, len);
  return k;
}

Admission::Rank Admission::rank_of(const PrefixKey& p, const Prefix& entry) const {
  return Rank{entry.conns.size(), conns_.at(entry.conns.front()).seq, p};
}

std::size_t Admission::handshaking_from(const Endpoint& peer) const {
  auto it = prefixes_.find(prefix_of(peer));
  return it == prefixes_.end() ? 0 : it->second.conns.size();
}

void Admission::remove(Key key) {
  auto c = conns_.find(key);
  auto p = prefixes_.find(c->second.prefix);
  ranks_.erase(rank_of(p->first, p->second));
  p->second.conns.erase(c->second.pos);
  conns_.erase(c);
  if (p->second.conns.empty())
    prefixes_.erase(p);
  else
    ranks_.insert(rank_of(p->first, p->second));
}

void Admission::release(Key key) {
  if (conns_.count(key) != 0) remove(key);
}

Admission::Decision Admission::evict(Key victim, Reason why, double now) {
  const Conn& c = conns_.at(victim);
  Decision d;
  d.evicted = victim;
  d.why = why;
  d.evicted_peer = c.peer;
  d.evicted_age = now - c.since;
  remove(victim);
  return d;
}

Admission::Decision Admission::admit(Key key, const Endpoint& peer, double now) {
  if (conns_.count(key) != 0) return {};
  const PrefixKey pk = prefix_of(peer);
  Decision d;
  auto own = prefixes_.find(pk);
  if (own != prefixes_.end() && own->second.conns.size() >= limits_.max_per_prefix)
    d = evict(own->second.conns.front(), Reason::PrefixCap, now);
  else if (conns_.size() >= limits_.max_handshaking && !ranks_.empty())
    d = evict(prefixes_.at(ranks_.begin()->prefix).conns.front(), Reason::TotalCap, now);

  Prefix& entry = prefixes_[pk];  // after the eviction, which may have erased it
  if (!entry.conns.empty()) ranks_.erase(rank_of(pk, entry));
  entry.conns.push_back(key);
  conns_.emplace(key, Conn{pk, next_seq_++, now, peer, std::prev(entry.conns.end())});
  ranks_.insert(rank_of(pk, entry));
  return d;
}

const char* to_string(Admission::Reason r) {
  switch (r) {
    case Admission::Reason::None: return "admitted";
    case Admission::Reason::PrefixCap:
      return "its source prefix had concentrator.max_handshaking_per_prefix handshaking";
    case Admission::Reason::TotalCap:
      return "concentrator.max_handshaking were handshaking (the busiest prefix gives way)";
  }
  return "?";
}

}  // namespace mpudp

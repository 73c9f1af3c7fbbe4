// Admission of tunnel connections that have not authenticated yet (issue 18, item 5):
// how many may be handshaking at once, in all and per source prefix, and which one gives
// way when a new one arrives at a cap. Pure: no sockets, no loop; the caller names its
// connections by a key of its own, passes the time in, and closes what it is told to.
//
// At a cap the newcomer is admitted and an older handshaking connection is closed:
//   - its source prefix (IPv4 /24, IPv6 /56 by default) already holds max_per_prefix:
//     that prefix's oldest handshaking connection goes (Reason::PrefixCap);
//   - max_handshaking are handshaking in all: the oldest connection of the prefix that
//     holds the most goes, the prefix whose oldest is older on a tie (Reason::TotalCap).
// Why evict rather than refuse the newcomer: a legitimate handshake takes a few round
// trips, a flooder's connection sits until the deadline. Refusing at a full cap would let
// an attacker who reconnects at once hold every slot, and a CPE would get in only by
// luck when one frees; evicting the oldest keeps a CPE's handshake unless max_per_prefix
// newer connections from its own prefix, or (its prefix being the lighter) enough newer
// ones to make every prefix as light as its own, arrive while it runs. A flood from other
// prefixes, however many, takes its room from the heaviest of them first.
//
// Memory: one entry per handshaking connection and one per prefix that has one, so the
// tables hold at most max_handshaking entries each (a lowered cap after a reload: at most
// the old one, until those connections finish or time out). A prefix leaves the table
// with its last handshaking connection: there is no table of prefixes that could fill up
// and lock out the ones not yet in it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <optional>
#include <set>
#include <unordered_map>

#include "net/endpoint.h"

namespace mpudp {

class Admission {
 public:
  using Key = std::uint64_t;  // the caller's name for a connection, unique while admitted

  struct Limits {
    std::size_t max_handshaking = 1024;  // >= 1
    std::size_t max_per_prefix = 256;    // >= 1
    unsigned v4_prefix = 24;             // 1..32
    unsigned v6_prefix = 56;             // 1..64: a site gets a /64 at least
  };

  enum class Reason : std::uint8_t { None, PrefixCap, TotalCap };

  struct Decision {
    // The connection the caller must close to make room, if any, with its peer and how
    // long it had been handshaking (for the log line). It is no longer admitted.
    std::optional<Key> evicted;
    Reason why = Reason::None;
    Endpoint evicted_peer;
    double evicted_age = 0;
  };

  Admission();
  explicit Admission(const Limits& limits);
  // New limits apply to the next admissions; connections already admitted stay.
  void set_limits(const Limits& limits);
  const Limits& limits() const { return limits_; }

  // Admits connection `key` from `peer` at time `now` (seconds, any monotonic origin). A
  // key already admitted is left as it is (and nothing is evicted).
  Decision admit(Key key, const Endpoint& peer, double now);
  // The connection proved who it is, or closed: its slot is free. Unknown keys (never
  // admitted, evicted, released already) are ignored, so callers may call both.
  void authenticated(Key key) { release(key); }
  void closed(Key key) { release(key); }

  std::size_t handshaking() const { return conns_.size(); }
  std::size_t prefixes() const { return prefixes_.size(); }
  // Handshaking connections from the prefix `peer` is in.
  std::size_t handshaking_from(const Endpoint& peer) const;
  bool admitted(Key key) const { return conns_.count(key) != 0; }

 private:
  struct PrefixKey {
    std::uint64_t bits = 0;
    Family family = Family::None;
    // After a reload that changes the length, the old and the new prefix of one address
    // are different prefixes, never a mixed count.
    std::uint8_t len = 0;
    friend bool operator==(const PrefixKey&, const PrefixKey&) = default;
    friend auto operator<=>(const PrefixKey&, const PrefixKey&) = default;
  };
  // Salted per instance: attackers choose their prefixes, and must not be able to aim
  // them all at one bucket.
  struct PrefixHash {
    std::uint64_t salt = 0;
    std::size_t operator()(const PrefixKey& p) const noexcept;
  };
  // Rank of a prefix for eviction at the total cap: most connections first, then the
  // one whose oldest connection is oldest.
  struct Rank {
    std::size_t count;
    std::uint64_t oldest;
    PrefixKey prefix;
    friend bool operator<(const Rank& a, const Rank& b) {
      if (a.count != b.count) return a.count > b.count;
      if (a.oldest != b.oldest) return a.oldest < b.oldest;
      return a.prefix < b.prefix;
    }
  };
  struct Conn {
    PrefixKey prefix;
    std::uint64_t seq;
    double since;
    Endpoint peer;
    std::list<Key>::iterator pos;  // in its prefix's list
  };
  struct Prefix {
    std::list<Key> conns;  // admission order, oldest first
  };

  PrefixKey prefix_of(const Endpoint& peer) const;
  Rank rank_of(const PrefixKey& p, const Prefix& entry) const;
  // Removes `key` (which must be admitted), keeping the ranks in order.
  void remove(Key key);
  void release(Key key);
  Decision evict(Key victim, Reason why, double now);

  Limits limits_;
  std::uint64_t next_seq_ = 0;
  std::unordered_map<Key, Conn> conns_;
  std::unordered_map<PrefixKey, Prefix, PrefixHash> prefixes_;
  std::set<Rank> ranks_;
};

const char* to_string(Admission::Reason r);

}  // namespace mpudp

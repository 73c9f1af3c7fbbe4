// Admission of handshaking connections: the per-prefix and total caps hold, the right
// connection gives way at each (checked against a brute-force model under random load),
// a CPE's handshake survives a flood from other prefixes, and the tables never hold more
// than the connections handshaking.
#include <catch2/catch.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "tunnel/admission.h"

using namespace mpudp;

namespace {

Endpoint ep(const std::string& text) {
  auto e = Endpoint::parse(text);
  REQUIRE(e);
  return *e;
}

// 10.A.B.C:1000, one /24 per (A, B).
Endpoint v4(int a, int b, int c) {
  return ep("10." + std::to_string(a) + "." + std::to_string(b) + "." + std::to_string(c) +
            ":1000");
}

Admission::Limits limits(std::size_t total, std::size_t per_prefix) {
  Admission::Limits l;
  l.max_handshaking = total;
  l.max_per_prefix = per_prefix;
  return l;
}

}  // namespace

TEST_CASE("admission: below the caps nothing is evicted", "[admission]") {
  Admission a(limits(8, 4));
  for (Admission::Key k = 1; k <= 4; ++k) {
    const auto d = a.admit(k, v4(0, 1, static_cast<int>(k)), 1.0);
    CHECK_FALSE(d.evicted);
    CHECK(d.why == Admission::Reason::None);
  }
  for (Admission::Key k = 5; k <= 8; ++k) CHECK_FALSE(a.admit(k, v4(0, 2, 1), 1.0).evicted);
  CHECK(a.handshaking() == 8);
  CHECK(a.prefixes() == 2);
  CHECK(a.handshaking_from(v4(0, 1, 200)) == 4);  // any address of the /24
  CHECK(a.handshaking_from(v4(0, 3, 1)) == 0);
}

TEST_CASE("admission: a prefix at its cap gives up its own oldest", "[admission]") {
  Admission a(limits(100, 3));
  a.admit(1, v4(0, 1, 1), 1.0);
  a.admit(2, v4(0, 2, 1), 1.5);  // another /24: untouched throughout
  a.admit(3, v4(0, 1, 2), 2.0);
  a.admit(4, v4(0, 1, 3), 3.0);
  const auto d = a.admit(5, v4(0, 1, 4), 4.25);
  REQUIRE(d.evicted);
  CHECK(*d.evicted == 1);
  CHECK(d.why == Admission::Reason::PrefixCap);
  CHECK(d.evicted_peer == v4(0, 1, 1));
  CHECK(d.evicted_age == Approx(3.25));
  CHECK_FALSE(a.admitted(1));
  CHECK(a.admitted(5));
  CHECK(a.handshaking_from(v4(0, 1, 9)) == 3);
  // Then the next oldest, never the other prefix's.
  CHECK(*a.admit(6, v4(0, 1, 5), 5.0).evicted == 3);
  CHECK(a.admitted(2));
}

TEST_CASE("admission: IPv6 prefixes are /56, IPv4 /24 by default", "[admission]") {
  Admission a(limits(100, 2));
  a.admit(1, ep("[2001:db8:0:100::1]:1"), 0);
  a.admit(2, ep("[2001:db8:0:1ff:ffff::9]:1"), 0);  // same /56 (2001:db8:0:100::/56)
  CHECK(a.prefixes() == 1);
  a.admit(3, ep("[2001:db8:0:200::1]:1"), 0);  // the next /56
  CHECK(a.prefixes() == 2);
  const auto d = a.admit(4, ep("[2001:db8:0:180::7]:1"), 0);
  REQUIRE(d.evicted);
  CHECK(*d.evicted == 1);
  // The prefix lengths are settings.
  Admission::Limits l = limits(100, 2);
  l.v4_prefix = 32;
  l.v6_prefix = 64;
  Admission b(l);
  b.admit(1, v4(0, 1, 1), 0);
  b.admit(2, v4(0, 1, 2), 0);
  b.admit(3, ep("[2001:db8::1]:1"), 0);
  b.admit(4, ep("[2001:db8:0:1::1]:1"), 0);
  CHECK(b.prefixes() == 4);
  // The same address in both families is two prefixes: an IPv4 one never counts
  // against the IPv6 prefix that starts with the same bits.
  Admission c(limits(100, 1));
  c.admit(1, ep("10.0.0.1:1"), 0);
  CHECK_FALSE(c.admit(2, ep("[a00::1]:1"), 0).evicted);
}

TEST_CASE("admission: at the total cap the busiest prefix gives way", "[admission]") {
  Admission a(limits(6, 4));
  a.admit(1, v4(0, 1, 1), 0);  // the CPE, alone in its prefix
  for (Admission::Key k = 2; k <= 4; ++k) a.admit(k, v4(0, 2, static_cast<int>(k)), 0);
  a.admit(5, v4(0, 3, 1), 0);
  a.admit(6, v4(0, 3, 2), 0);
  // 6 handshaking; 10.0.2/24 holds 3 (keys 2..4), the most.
  const auto d = a.admit(7, v4(0, 4, 1), 1.0);
  REQUIRE(d.evicted);
  CHECK(*d.evicted == 2);
  CHECK(d.why == Admission::Reason::TotalCap);
  // Now 10.0.2/24 and 10.0.3/24 hold 2 each: the one whose oldest is older goes first.
  CHECK(*a.admit(8, v4(0, 4, 2), 2.0).evicted == 3);
  CHECK(*a.admit(9, v4(0, 5, 1), 3.0).evicted == 5);
  CHECK(a.admitted(1));
  CHECK(a.handshaking() == 6);
}

TEST_CASE("admission: with every prefix at one, the oldest goes", "[admission]") {
  Admission a(limits(4, 4));
  for (Admission::Key k = 1; k <= 4; ++k) a.admit(k, v4(1, static_cast<int>(k), 1), 0);
  CHECK(*a.admit(5, v4(1, 5, 1), 0).evicted == 1);
  CHECK(*a.admit(6, v4(1, 6, 1), 0).evicted == 2);
}

TEST_CASE("admission: authenticated and closed free the slot, once", "[admission]") {
  Admission a(limits(2, 2));
  a.admit(1, v4(0, 1, 1), 0);
  a.admit(2, v4(0, 1, 2), 0);
  a.authenticated(1);
  CHECK(a.handshaking() == 1);
  a.closed(1);  // after authenticated: ignored
  a.closed(99);  // never admitted: ignored
  CHECK(a.handshaking() == 1);
  CHECK_FALSE(a.admit(3, v4(0, 1, 3), 0).evicted);
  a.closed(2);
  a.closed(3);
  CHECK(a.handshaking() == 0);
  CHECK(a.prefixes() == 0);
  // A key admitted twice is admitted once.
  a.admit(4, v4(0, 1, 1), 0);
  CHECK_FALSE(a.admit(4, v4(0, 9, 1), 0).evicted);
  CHECK(a.handshaking() == 1);
  CHECK(a.handshaking_from(v4(0, 9, 1)) == 0);
}

TEST_CASE("admission: a CPE's handshake survives a flood from other prefixes",
          "[admission]") {
  constexpr std::size_t kTotal = 1024, kPerPrefix = 64;
  Admission a(limits(kTotal, kPerPrefix));
  a.admit(1, v4(99, 1, 1), 0);
  // 100 000 flood connections over 40 /24s, reconnecting as fast as they are evicted
  // and never completing: the CPE's one is never the one to go.
  Admission::Key k = 2;
  std::size_t evictions = 0;
  for (int i = 0; i < 100000; ++i, ++k) {
    const auto d = a.admit(k, v4(1, i % 40, i % 250), i * 1e-5);
    if (d.evicted) ++evictions;
    REQUIRE((!d.evicted || *d.evicted != 1));
    REQUIRE(a.handshaking() <= kTotal);
  }
  CHECK(a.admitted(1));
  CHECK(evictions == 100000 + 1 - kTotal);
  // From as many prefixes as there are slots, it goes only after kTotal newer ones came.
  Admission b(limits(kTotal, kPerPrefix));
  b.admit(1, v4(99, 1, 1), 0);
  for (std::size_t i = 0; i < 3 * kTotal; ++i) {
    const auto d = b.admit(i + 2, v4(2 + static_cast<int>(i / 250), static_cast<int>(i % 250), 1), 0);
    if (d.evicted && *d.evicted == 1) {
      CHECK(i == kTotal - 1);  // the 1024th newer one
      break;
    }
  }
  CHECK_FALSE(b.admitted(1));
}

TEST_CASE("admission: lowered limits apply to the next admissions", "[admission]") {
  Admission a(limits(10, 10));
  for (Admission::Key k = 1; k <= 8; ++k) a.admit(k, v4(0, 1, static_cast<int>(k)), 0);
  a.set_limits(limits(4, 10));
  CHECK(a.handshaking() == 8);  // nobody is closed by the reload itself
  CHECK(*a.admit(9, v4(0, 2, 1), 0).evicted == 1);
  CHECK(a.handshaking() == 8);  // one in, one out: never above the old cap
  // A new prefix length: connections admitted before release exactly.
  Admission::Limits l = limits(10, 10);
  l.v4_prefix = 16;
  a.set_limits(l);
  a.admit(10, v4(0, 3, 1), 0);
  for (Admission::Key k = 2; k <= 10; ++k) a.closed(k);
  CHECK(a.handshaking() == 0);
  CHECK(a.prefixes() == 0);
}

// A brute-force model of the rule in admission.h: per-prefix cap first (own oldest), then
// the total cap (busiest prefix, oldest oldest on a tie). Random admissions from a few
// prefixes, random releases; every decision and the counts must agree.
TEST_CASE("admission: agrees with a brute-force model under random load", "[admission]") {
  std::mt19937 rng(18);
  for (const auto& [total, per] : {std::pair<std::size_t, std::size_t>{16, 5}, {50, 50},
                                   {7, 2}, {1, 1}}) {
    Admission a(limits(total, per));
    struct M {
      int prefix;
      std::uint64_t seq;
    };
    std::map<Admission::Key, M> model;
    std::uint64_t seq = 0;
    Admission::Key next = 1;
    for (int step = 0; step < 20000; ++step) {
      if (!model.empty() && rng() % 3 == 0) {
        auto it = model.begin();
        std::advance(it, static_cast<long>(rng() % model.size()));
        if (rng() % 2) a.authenticated(it->first); else a.closed(it->first);
        model.erase(it);
      } else {
        const int prefix = static_cast<int>(rng() % 9);
        std::map<int, std::pair<std::size_t, std::uint64_t>> by;  // count, oldest seq
        std::map<int, Admission::Key> oldest;
        for (const auto& [key, m] : model) {
          auto& [n, o] = by[m.prefix];
          if (n == 0 || m.seq < o) { o = m.seq; oldest[m.prefix] = key; }
          ++n;
        }
        std::optional<Admission::Key> want;
        if (by.count(prefix) && by[prefix].first >= per) {
          want = oldest[prefix];
        } else if (model.size() >= total) {
          int best = -1;
          for (const auto& [p, no] : by)
            if (best < 0 || no.first > by[best].first ||
                (no.first == by[best].first && no.second < by[best].second))
              best = p;
          want = oldest[best];
        }
        const Admission::Key key = next++;
        const auto d = a.admit(key, v4(3, prefix, static_cast<int>(rng() % 200)), step);
        REQUIRE(d.evicted == want);
        if (want) model.erase(*want);
        model[key] = M{prefix, seq++};
      }
      REQUIRE(a.handshaking() == model.size());
      REQUIRE(a.handshaking() <= total);
      REQUIRE(a.prefixes() <= a.handshaking());
    }
  }
}

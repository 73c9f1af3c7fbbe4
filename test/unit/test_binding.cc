#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "binding/binding_table.h"

using namespace mpudp;
using namespace std::chrono_literals;

namespace {

// Same value as wire::kConcentratorFlowBit; spelled out so this test links only the
// binding room.
constexpr std::uint32_t kTagBit = 0x80000000u;

Endpoint client_ep(std::uint32_t n, std::uint16_t port = 40000) {
  return Endpoint::v4(0xC0A80100u + n, port);  // 192.168.1.n
}
Endpoint remote_ep(std::uint32_t n, std::uint16_t port = 53) {
  return Endpoint::v4(0xC6120000u + n, port);  // 198.18.0.n
}

BindingLimits make_limits(std::size_t max_bindings = 16, std::size_t max_flows = 8,
                          Duration idle = 30s) {
  BindingLimits l;
  l.max_bindings = max_bindings;
  l.max_flows_per_binding = max_flows;
  l.idle_timeout = idle;
  return l;
}

struct Removal {
  std::uint32_t scope;
  Endpoint client;
  RemoveReason why;
  std::size_t flows;
};

class Recorder : public BindingObserver {
 public:
  void on_binding_removed(Binding& b, RemoveReason why) override {
    removals.push_back({b.scope, b.client, why, b.flows.size()});
    if (hook) hook(b, why);
  }
  std::vector<Removal> removals;
  std::function<void(Binding&, RemoveReason)> hook;
};

class LoggingEdge : public BindingEdge {
 public:
  explicit LoggingEdge(std::vector<std::string>& log) : log_(log) {}
  ~LoggingEdge() override { log_.push_back("edge destroyed"); }

 private:
  std::vector<std::string>& log_;
};

}  // namespace

TEST_CASE("create and find are per scope", "[binding]") {
  FakeClock clock;
  Recorder obs;
  BindingTable t(make_limits(), clock, &obs);

  Binding* a1 = t.create(1, client_ep(1));
  Binding* a2 = t.create(2, client_ep(1));
  REQUIRE(a1 != nullptr);
  REQUIRE(a2 != nullptr);
  CHECK(a1 != a2);
  CHECK(t.size() == 2);
  CHECK(a1->scope == 1);
  CHECK(a1->client == client_ep(1));
  CHECK(a1->created == clock.now());
  CHECK(a1->last_active == clock.now());

  CHECK(t.find(1, client_ep(1)) == a1);
  CHECK(t.find(2, client_ep(1)) == a2);
  CHECK(t.find(3, client_ep(1)) == nullptr);
  CHECK(t.find(1, client_ep(1, 40001)) == nullptr);  // the port is part of the endpoint
  CHECK(t.find(1, client_ep(2)) == nullptr);

  // A second create for an existing key is refused and leaves the original alone.
  CHECK(t.create(1, client_ep(1)) == nullptr);
  CHECK(t.size() == 2);
  CHECK(t.find(1, client_ep(1)) == a1);
  CHECK(obs.removals.empty());
}

TEST_CASE("one binding per client endpoint, remotes are flows", "[binding]") {
  FakeClock clock;
  BindingTable t(make_limits(), clock, nullptr);

  Binding* b = t.create(0, client_ep(7));
  REQUIRE(b != nullptr);
  Flow* f1 = t.add_flow(*b, remote_ep(1), 11);
  REQUIRE(f1 != nullptr);
  CHECK(f1->remote == remote_ep(1));
  CHECK(f1->id == 11);
  CHECK_FALSE(f1->announced);
  REQUIRE(t.add_flow(*b, remote_ep(2), 12) != nullptr);
  REQUIRE(t.add_flow(*b, remote_ep(3, 443), 13) != nullptr);

  // Talking to another remote does not make another binding.
  CHECK(t.create(0, client_ep(7)) == nullptr);
  CHECK(t.size() == 1);
  REQUIRE(b->flows.size() == 3);

  for (std::uint32_t i = 1; i <= 3; ++i) {
    const Endpoint r = i == 3 ? remote_ep(3, 443) : remote_ep(i);
    Flow* f = b->find_flow(r);
    REQUIRE(f != nullptr);
    CHECK(f->id == 10 + i);
    CHECK(b->find_flow_id(10 + i) == f);
    CHECK(t.find_by_flow(0, 10 + i) == b);
  }
  CHECK(b->find_flow(remote_ep(3)) == nullptr);  // same address, other port
  CHECK(b->find_flow_id(14) == nullptr);
  CHECK(t.find_by_flow(0, 14) == nullptr);
  CHECK(t.find_by_flow(1, 11) == nullptr);
}

TEST_CASE("a binding lives idle_timeout after its last activity", "[binding][expiry]") {
  FakeClock clock;
  Recorder obs;
  BindingTable t(make_limits(16, 8, 30s), clock, &obs);
  Binding* b = t.create(0, client_ep(1));
  REQUIRE(b != nullptr);

  SECTION("not expired one millisecond early, expired on the dot") {
    clock.advance(30s - 1ms);
    CHECK(t.expire() == 0);
    CHECK(t.find(0, client_ep(1)) == b);
    clock.advance(1ms);
    CHECK(t.expire() == 1);
    CHECK(t.find(0, client_ep(1)) == nullptr);
    CHECK(t.size() == 0);
    REQUIRE(obs.removals.size() == 1);
    CHECK(obs.removals[0].why == RemoveReason::Expired);
  }

  SECTION("touch re-arms the lifetime") {
    clock.advance(20s);
    t.touch(*b);
    CHECK(b->last_active == clock.now());
    CHECK(b->created == clock.now() - 20s);
    clock.advance(20s);  // 40s after create, 20s after the touch
    CHECK(t.expire() == 0);
    CHECK(t.find(0, client_ep(1)) == b);
    clock.advance(10s - 1ms);
    CHECK(t.expire() == 0);
    clock.advance(1ms);
    CHECK(t.expire() == 1);
    CHECK(t.size() == 0);
  }
}

TEST_CASE("next_expiry follows the least recently used binding", "[binding][expiry]") {
  FakeClock clock;
  BindingTable t(make_limits(16, 8, 30s), clock, nullptr);
  CHECK_FALSE(t.next_expiry().has_value());

  const TimePoint t0 = clock.now();
  Binding* a = t.create(0, client_ep(1));
  CHECK(t.next_expiry() == std::optional<TimePoint>(t0 + 30s));

  clock.advance(5s);
  Binding* b = t.create(0, client_ep(2));
  CHECK(t.next_expiry() == std::optional<TimePoint>(t0 + 30s));  // still a

  clock.advance(5s);
  t.touch(*a);  // now b is the tail
  CHECK(t.next_expiry() == std::optional<TimePoint>(t0 + 5s + 30s));

  t.remove(*b, RemoveReason::PeerClosed);
  CHECK(t.next_expiry() == std::optional<TimePoint>(t0 + 10s + 30s));

  t.remove(*a, RemoveReason::PeerClosed);
  CHECK_FALSE(t.next_expiry().has_value());
}

TEST_CASE("expire removes in expiry order and reports Expired", "[binding][expiry]") {
  FakeClock clock;
  Recorder obs;
  BindingTable t(make_limits(16, 8, 30s), clock, &obs);
  for (std::uint32_t i = 1; i <= 4; ++i) {
    Binding* b = t.create(0, client_ep(i));
    REQUIRE(b != nullptr);
    REQUIRE(t.add_flow(*b, remote_ep(i), i) != nullptr);
    clock.advance(1s);
  }
  // Created at 0s, 1s, 2s, 3s; touch the first so the order becomes 2, 3, 4, 1.
  t.touch(*t.find(0, client_ep(1)));  // at 4s

  obs.hook = [&](Binding& b, RemoveReason) {
    // The observer sees the live binding, still reachable by its keys.
    CHECK(t.find(b.scope, b.client) == &b);
    CHECK(b.flows.size() == 1);
  };

  clock.advance(28s);  // 32s after the first create: 2 and 3 are due, 4 a second later
  CHECK(t.expire() == 2);
  REQUIRE(obs.removals.size() == 2);
  CHECK(obs.removals[0].client == client_ep(2));
  CHECK(obs.removals[1].client == client_ep(3));
  CHECK(obs.removals[0].why == RemoveReason::Expired);
  CHECK(obs.removals[1].why == RemoveReason::Expired);
  CHECK(obs.removals[0].flows == 1);
  CHECK(t.find_by_flow(0, 2) == nullptr);
  CHECK(t.find_by_flow(0, 3) == nullptr);
  CHECK(t.find_by_flow(0, 1) != nullptr);

  clock.advance(10s);
  CHECK(t.expire() == 2);
  REQUIRE(obs.removals.size() == 4);
  CHECK(obs.removals[2].client == client_ep(4));
  CHECK(obs.removals[3].client == client_ep(1));
  CHECK(t.size() == 0);
  CHECK(t.expire() == 0);
}

TEST_CASE("max_bindings is never exceeded; the least recently used goes", "[binding][limits]") {
  FakeClock clock;
  Recorder obs;
  BindingTable t(make_limits(3), clock, &obs);
  obs.hook = [&](Binding&, RemoveReason) { CHECK(t.size() <= 3); };

  for (std::uint32_t i = 1; i <= 3; ++i) {
    REQUIRE(t.create(0, client_ep(i)) != nullptr);
    clock.advance(1s);
  }
  CHECK(obs.removals.empty());

  // Touching the oldest saves it: 2 is now the least recently used.
  t.touch(*t.find(0, client_ep(1)));
  Binding* d = t.create(0, client_ep(4));
  REQUIRE(d != nullptr);
  CHECK(t.size() == 3);
  REQUIRE(obs.removals.size() == 1);
  CHECK(obs.removals[0].client == client_ep(2));
  CHECK(obs.removals[0].why == RemoveReason::Evicted);
  CHECK(t.find(0, client_ep(1)) != nullptr);
  CHECK(t.find(0, client_ep(2)) == nullptr);

  REQUIRE(t.create(0, client_ep(5)) != nullptr);
  REQUIRE(obs.removals.size() == 2);
  CHECK(obs.removals[1].client == client_ep(3));
  CHECK(t.size() == 3);

  // A refused duplicate must not cost anyone their binding.
  CHECK(t.create(0, client_ep(5)) == nullptr);
  CHECK(obs.removals.size() == 2);
  CHECK(t.size() == 3);
}

TEST_CASE("a tenant at its quota evicts its own least recently used binding", "[binding][tenants]") {
  FakeClock clock;
  Recorder obs;
  BindingLimits l = make_limits(100);
  l.max_per_tenant = 3;
  BindingTable t(l, clock, &obs);
  // B holds two bindings, older than all of A's: a global LRU would take B's first.
  REQUIRE(t.create(2, client_ep(50), "cpe-b") != nullptr);
  REQUIRE(t.create(2, client_ep(51), "cpe-b") != nullptr);
  clock.advance(1s);
  for (std::uint32_t i = 1; i <= 3; ++i) {
    REQUIRE(t.create(1, client_ep(i), "cpe-a") != nullptr);
    clock.advance(1s);
  }
  CHECK(obs.removals.empty());
  CHECK(t.tenant_size("cpe-a") == 3);
  CHECK(t.tenant_count() == 2);
  // Touching A's oldest saves it: 2 is A's least recently used.
  t.touch(*t.find(1, client_ep(1)));
  // A churns: each new binding of A costs A's own least recently used, never B's.
  for (std::uint32_t i = 4; i <= 1000; ++i) {
    Binding* b = t.create(1, client_ep(i), "cpe-a");
    REQUIRE(b != nullptr);
    CHECK(b->tenant() == "cpe-a");
    CHECK(t.tenant_size("cpe-a") == 3);
  }
  REQUIRE(obs.removals.size() == 997);
  CHECK(obs.removals[0].client == client_ep(2));
  for (const Removal& r : obs.removals) {
    CHECK(r.scope == 1);
    CHECK(r.why == RemoveReason::QuotaEvicted);
  }
  CHECK(t.find(2, client_ep(50)) != nullptr);
  CHECK(t.find(2, client_ep(51)) != nullptr);
  CHECK(t.tenant_size("cpe-b") == 2);
  CHECK(t.size() == 5);
}

TEST_CASE("a full table never gives one tenant's binding to another", "[binding][tenants]") {
  FakeClock clock;
  Recorder obs;
  BindingLimits l = make_limits(4);
  l.max_per_tenant = 3;
  BindingTable t(l, clock, &obs);
  REQUIRE(t.create(2, client_ep(50), "b") != nullptr);
  clock.advance(1s);
  for (std::uint32_t i = 1; i <= 3; ++i) REQUIRE(t.create(1, client_ep(i), "a") != nullptr);
  CHECK(t.full());
  // A newcomer holding nothing is refused rather than taking B's (older) binding.
  CHECK(t.create(3, client_ep(60), "c") == nullptr);
  CHECK(obs.removals.empty());
  CHECK(t.tenant_size("c") == 0);
  CHECK(t.tenant_count() == 2);
  // B is below its quota: the full table costs B its own oldest, not A's.
  clock.advance(1s);
  REQUIRE(t.create(2, client_ep(51), "b") != nullptr);
  REQUIRE(obs.removals.size() == 1);
  CHECK(obs.removals[0].client == client_ep(50));
  CHECK(obs.removals[0].why == RemoveReason::Evicted);
  CHECK(t.tenant_size("a") == 3);
  // Once A's bindings expire, the newcomer gets in.
  clock.advance(40s);
  CHECK(t.expire() == 4);
  CHECK(t.create(3, client_ep(60), "c") != nullptr);
  CHECK(t.tenant_count() == 1);
}

TEST_CASE("without tenants the table is one LRU, as before", "[binding][tenants]") {
  FakeClock clock;
  Recorder obs;
  BindingTable t(make_limits(2), clock, &obs);
  REQUIRE(t.create(1, client_ep(1)) != nullptr);
  REQUIRE(t.create(2, client_ep(2)) != nullptr);
  REQUIRE(t.create(3, client_ep(3)) != nullptr);
  REQUIRE(obs.removals.size() == 1);
  CHECK(obs.removals[0].client == client_ep(1));
  CHECK(obs.removals[0].why == RemoveReason::Evicted);
  CHECK(t.find(2, client_ep(2))->tenant().empty());
  CHECK(t.tenant_count() == 1);
}

TEST_CASE("a lower max_per_tenant at reload trims each tenant to it", "[binding][tenants]") {
  FakeClock clock;
  Recorder obs;
  BindingTable t(make_limits(100), clock, &obs);
  for (std::uint32_t i = 1; i <= 6; ++i) {
    REQUIRE(t.create(1, client_ep(i), "a") != nullptr);
    REQUIRE(t.create(2, client_ep(i), "b") != nullptr);
    clock.advance(1s);
  }
  REQUIRE(t.create(3, client_ep(1), "c") != nullptr);
  BindingLimits l = make_limits(100);
  l.max_per_tenant = 2;
  t.set_limits(l);
  CHECK(obs.removals.size() == 8);
  for (const Removal& r : obs.removals) {
    CHECK(r.why == RemoveReason::QuotaEvicted);
    CHECK(r.client.addr[3] <= 4);  // the four oldest of each
  }
  CHECK(t.tenant_size("a") == 2);
  CHECK(t.tenant_size("b") == 2);
  CHECK(t.tenant_size("c") == 1);
  CHECK(t.find(1, client_ep(6)) != nullptr);
  CHECK(t.find(2, client_ep(5)) != nullptr);
}

TEST_CASE("a tenant's entry goes with its last binding", "[binding][tenants]") {
  FakeClock clock;
  Recorder obs;
  BindingTable t(make_limits(), clock, &obs);
  Binding* a = t.create(1, client_ep(1), "a");
  REQUIRE(a != nullptr);
  REQUIRE(t.create(1, client_ep(2), "a") != nullptr);
  REQUIRE(t.create(2, client_ep(1), "b") != nullptr);
  t.remove(*a, RemoveReason::PeerClosed);
  CHECK(t.tenant_size("a") == 1);
  CHECK(t.remove_scope(1, RemoveReason::SessionLost) == 1);
  CHECK(t.tenant_size("a") == 0);
  CHECK(t.tenant_count() == 1);
  // The same key later starts afresh.
  REQUIRE(t.create(3, client_ep(7), "a") != nullptr);
  CHECK(t.tenant_size("a") == 1);
}

TEST_CASE("set_limits with a lower max evicts down to it", "[binding][limits]") {
  FakeClock clock;
  Recorder obs;
  BindingTable t(make_limits(10), clock, &obs);
  for (std::uint32_t i = 1; i <= 5; ++i) {
    REQUIRE(t.create(0, client_ep(i)) != nullptr);
    clock.advance(1s);
  }
  t.touch(*t.find(0, client_ep(2)));  // order, least recent first: 1 3 4 5 2

  t.set_limits(make_limits(2));
  CHECK(t.limits().max_bindings == 2);
  CHECK(t.size() == 2);
  REQUIRE(obs.removals.size() == 3);
  CHECK(obs.removals[0].client == client_ep(1));
  CHECK(obs.removals[1].client == client_ep(3));
  CHECK(obs.removals[2].client == client_ep(4));
  for (const Removal& r : obs.removals) CHECK(r.why == RemoveReason::Evicted);
  CHECK(t.find(0, client_ep(5)) != nullptr);
  CHECK(t.find(0, client_ep(2)) != nullptr);

  // Raising it evicts nothing.
  t.set_limits(make_limits(100));
  CHECK(t.size() == 2);
  CHECK(obs.removals.size() == 3);

  // Zero empties the table and refuses new bindings.
  t.set_limits(make_limits(0));
  CHECK(t.size() == 0);
  CHECK(obs.removals.size() == 5);
  CHECK(t.create(0, client_ep(9)) == nullptr);
  CHECK(t.size() == 0);
  CHECK_FALSE(t.next_expiry().has_value());
}

TEST_CASE("flows per binding are capped", "[binding][flows]") {
  FakeClock clock;
  BindingTable t(make_limits(16, 2), clock, nullptr);
  Binding* b = t.create(0, client_ep(1));
  REQUIRE(b != nullptr);
  REQUIRE(t.add_flow(*b, remote_ep(1), 1) != nullptr);
  REQUIRE(t.add_flow(*b, remote_ep(2), 2) != nullptr);
  CHECK(t.add_flow(*b, remote_ep(3), 3) == nullptr);
  CHECK(b->flows.size() == 2);
  // A refused flow must not leave its id registered.
  CHECK(t.find_by_flow(0, 3) == nullptr);
  Binding* c = t.create(0, client_ep(2));
  REQUIRE(c != nullptr);
  CHECK(t.add_flow(*c, remote_ep(3), 3) != nullptr);
}

TEST_CASE("flow ids are unique within a scope, free across scopes", "[binding][flows]") {
  FakeClock clock;
  BindingTable t(make_limits(), clock, nullptr);
  Binding* a = t.create(1, client_ep(1));
  Binding* b = t.create(1, client_ep(2));
  Binding* c = t.create(2, client_ep(1));
  REQUIRE(a != nullptr);
  REQUIRE(b != nullptr);
  REQUIRE(c != nullptr);

  REQUIRE(t.add_flow(*a, remote_ep(1), 7) != nullptr);
  CHECK(t.add_flow(*b, remote_ep(1), 7) == nullptr);  // other binding, same scope
  CHECK(t.add_flow(*a, remote_ep(2), 7) == nullptr);  // same binding
  CHECK(b->flows.empty());
  CHECK(t.find_by_flow(1, 7) == a);

  REQUIRE(t.add_flow(*c, remote_ep(1), 7) != nullptr);  // another scope is fine
  CHECK(t.find_by_flow(2, 7) == c);
  CHECK(t.find_by_flow(1, 7) == a);

  CHECK(t.add_flow(*b, remote_ep(1), 0) == nullptr);  // 0 never names a flow
  CHECK(b->flows.empty());
  CHECK(t.find_by_flow(1, 0) == nullptr);
}

TEST_CASE("nothing dangles after remove", "[binding]") {
  FakeClock clock;
  Recorder obs;
  BindingTable t(make_limits(), clock, &obs);
  Binding* a = t.create(1, client_ep(1));
  Binding* b = t.create(1, client_ep(2));
  REQUIRE(a != nullptr);
  REQUIRE(b != nullptr);
  REQUIRE(t.add_flow(*a, remote_ep(1), 5) != nullptr);
  REQUIRE(t.add_flow(*a, remote_ep(2), 6) != nullptr);
  REQUIRE(t.add_flow(*b, remote_ep(1), 8) != nullptr);

  t.remove(*a, RemoveReason::PeerClosed);
  REQUIRE(obs.removals.size() == 1);
  CHECK(obs.removals[0].why == RemoveReason::PeerClosed);
  CHECK(obs.removals[0].flows == 2);
  CHECK(t.find(1, client_ep(1)) == nullptr);
  CHECK(t.find_by_flow(1, 5) == nullptr);
  CHECK(t.find_by_flow(1, 6) == nullptr);
  CHECK(t.find_by_flow(1, 8) == b);
  CHECK(t.size() == 1);

  // The freed ids and the client endpoint can be used again.
  Binding* a2 = t.create(1, client_ep(1));
  REQUIRE(a2 != nullptr);
  CHECK(t.add_flow(*a2, remote_ep(3), 5) != nullptr);
  CHECK(t.find_by_flow(1, 5) == a2);

  // The only binding: head and tail at once.
  t.remove(*b, RemoveReason::PeerReset);
  t.remove(*a2, RemoveReason::Refused);
  CHECK(t.size() == 0);
  CHECK_FALSE(t.next_expiry().has_value());
  CHECK(t.expire() == 0);
}

TEST_CASE("remove_scope removes that scope only", "[binding]") {
  FakeClock clock;
  Recorder obs;
  BindingTable t(make_limits(), clock, &obs);
  for (std::uint32_t i = 1; i <= 3; ++i) {
    Binding* b = t.create(1, client_ep(i));
    REQUIRE(b != nullptr);
    REQUIRE(t.add_flow(*b, remote_ep(i), i) != nullptr);
  }
  for (std::uint32_t i = 1; i <= 2; ++i) {
    Binding* b = t.create(2, client_ep(i));
    REQUIRE(b != nullptr);
    REQUIRE(t.add_flow(*b, remote_ep(i), i) != nullptr);
  }

  CHECK(t.remove_scope(3, RemoveReason::SessionLost) == 0);
  CHECK(obs.removals.empty());

  CHECK(t.remove_scope(1, RemoveReason::SessionLost) == 3);
  CHECK(t.size() == 2);
  REQUIRE(obs.removals.size() == 3);
  std::set<std::uint32_t> seen;
  for (const Removal& r : obs.removals) {
    CHECK(r.scope == 1);
    CHECK(r.why == RemoveReason::SessionLost);
    seen.insert(r.client.addr[3]);
  }
  CHECK(seen == std::set<std::uint32_t>{1, 2, 3});
  for (std::uint32_t i = 1; i <= 3; ++i) {
    CHECK(t.find(1, client_ep(i)) == nullptr);
    CHECK(t.find_by_flow(1, i) == nullptr);
  }
  for (std::uint32_t i = 1; i <= 2; ++i) {
    CHECK(t.find(2, client_ep(i)) != nullptr);
    CHECK(t.find_by_flow(2, i) == t.find(2, client_ep(i)));
  }
}

TEST_CASE("forget_announcements clears one scope", "[binding][flows]") {
  FakeClock clock;
  BindingTable t(make_limits(), clock, nullptr);
  Binding* a = t.create(1, client_ep(1));
  Binding* b = t.create(2, client_ep(1));
  REQUIRE(a != nullptr);
  REQUIRE(b != nullptr);
  t.add_flow(*a, remote_ep(1), 1)->announced = true;
  t.add_flow(*a, remote_ep(2), 2)->announced = true;
  t.add_flow(*b, remote_ep(1), 1)->announced = true;

  t.forget_announcements(1);
  CHECK_FALSE(a->flows[0].announced);
  CHECK_FALSE(a->flows[1].announced);
  CHECK(b->flows[0].announced);
}

TEST_CASE("allocate_flow_id skips 0 and ids in use, and applies tag bits", "[binding][flows]") {
  FakeClock clock;
  BindingTable t(make_limits(64, 512), clock, nullptr);

  SECTION("never 0, tag bit applied") {
    for (int i = 0; i < 100; ++i) {
      const std::uint32_t plain = t.allocate_flow_id(0, 0);
      CHECK(plain != 0);
      CHECK((plain & kTagBit) == 0);
      const std::uint32_t tagged = t.allocate_flow_id(0, kTagBit);
      CHECK((tagged & kTagBit) != 0);
      CHECK((tagged & ~kTagBit) != 0);
    }
  }

  SECTION("a long run of ids in use is skipped, in that scope only") {
    // The counter starts low, so these are the very ids it would try first.
    Binding* a = t.create(1, client_ep(1));
    REQUIRE(a != nullptr);
    for (std::uint32_t n = 1; n <= 300; ++n) {
      REQUIRE(t.add_flow(*a, remote_ep(n % 250, static_cast<std::uint16_t>(n)), n | kTagBit) !=
              nullptr);
    }
    const std::uint32_t id = t.allocate_flow_id(1, kTagBit);
    CHECK(id != 0);
    CHECK((id & kTagBit) != 0);
    CHECK(t.find_by_flow(1, id) == nullptr);
    REQUIRE(t.add_flow(*a, remote_ep(1, 1000), id) != nullptr);

    // Untagged ids in the same scope are not taken by the tagged ones.
    const std::uint32_t plain = t.allocate_flow_id(1, 0);
    CHECK(plain != 0);
    CHECK(t.find_by_flow(1, plain) == nullptr);
  }

  SECTION("allocated ids are unique and accepted by add_flow") {
    std::set<std::uint32_t> ids;
    for (std::uint32_t b = 0; b < 8; ++b) {
      Binding* binding = t.create(3, client_ep(b));
      REQUIRE(binding != nullptr);
      for (std::uint32_t n = 0; n < 250; ++n) {
        const std::uint32_t id = t.allocate_flow_id(3, (n % 2 == 0) ? kTagBit : 0);
        CHECK(id != 0);
        CHECK(t.find_by_flow(3, id) == nullptr);
        CHECK(ids.insert(id).second);
        REQUIRE(t.add_flow(*binding, remote_ep(n, static_cast<std::uint16_t>(b + 1)), id) !=
                nullptr);
      }
    }
  }
}

TEST_CASE("the edge is destroyed after the observer ran", "[binding]") {
  FakeClock clock;
  Recorder obs;
  std::vector<std::string> events;
  BindingTable t(make_limits(), clock, &obs);
  obs.hook = [&](Binding& b, RemoveReason) {
    // The observer may still use the edge (close its socket, log its stats).
    CHECK(b.edge != nullptr);
    events.push_back("observer");
  };

  Binding* b = t.create(0, client_ep(1));
  REQUIRE(b != nullptr);
  b->edge = std::make_unique<LoggingEdge>(events);

  SECTION("remove") { t.remove(*b, RemoveReason::PeerClosed); }
  SECTION("expire") {
    clock.advance(t.limits().idle_timeout);
    CHECK(t.expire() == 1);
  }
  SECTION("evict") {
    t.set_limits(make_limits(0));
  }
  CHECK(events == std::vector<std::string>{"observer", "edge destroyed"});
}

TEST_CASE("destroying the table reports Shutdown for what is left", "[binding]") {
  FakeClock clock;
  Recorder obs;
  std::vector<std::string> events;
  {
    BindingTable t(make_limits(), clock, &obs);
    for (std::uint32_t i = 1; i <= 3; ++i) {
      Binding* b = t.create(i % 2, client_ep(i));
      REQUIRE(b != nullptr);
      b->edge = std::make_unique<LoggingEdge>(events);
    }
    t.remove(*t.find(0, client_ep(2)), RemoveReason::PeerClosed);
    obs.removals.clear();
  }
  REQUIRE(obs.removals.size() == 2);
  for (const Removal& r : obs.removals) CHECK(r.why == RemoveReason::Shutdown);
  CHECK(events.size() == 3);
}

TEST_CASE("for_each walks most recently used first", "[binding]") {
  FakeClock clock;
  BindingTable t(make_limits(), clock, nullptr);
  for (std::uint32_t i = 1; i <= 4; ++i) REQUIRE(t.create(0, client_ep(i)) != nullptr);
  t.touch(*t.find(0, client_ep(2)));
  t.touch(*t.find(0, client_ep(4)));  // 4 was the head until 2 took its place
  std::vector<std::uint8_t> order;
  t.for_each([&](const Binding& b) { order.push_back(b.client.addr[3]); });
  CHECK(order == std::vector<std::uint8_t>{4, 2, 3, 1});
}

TEST_CASE("remove reasons have stable names", "[binding]") {
  CHECK(std::string(to_string(RemoveReason::Expired)) == "expired");
  CHECK(std::string(to_string(RemoveReason::Evicted)) == "evicted");
  CHECK(std::string(to_string(RemoveReason::QuotaEvicted)) == "quota_evicted");
  CHECK(std::string(to_string(RemoveReason::PeerClosed)) == "peer_closed");
  CHECK(std::string(to_string(RemoveReason::PeerReset)) == "peer_reset");
  CHECK(std::string(to_string(RemoveReason::SessionLost)) == "session_lost");
  CHECK(std::string(to_string(RemoveReason::Refused)) == "refused");
  CHECK(std::string(to_string(RemoveReason::Shutdown)) == "shutdown");
}

// Thousands of random operations against a model that knows nothing about linked lists:
// it orders bindings by a use counter and finds expired ones by scanning everything, so
// it checks both the bookkeeping and the claim that LRU order is expiry order.
TEST_CASE("randomized operations match a reference model", "[binding][model]") {
  constexpr std::uint32_t kScopes = 3;
  constexpr std::uint32_t kClients = 40;
  constexpr std::size_t kMaxFlows = 4;
  constexpr Duration kIdle = 10s;

  using Key = std::pair<std::uint32_t, std::uint32_t>;  // scope, client index
  struct Entry {
    TimePoint last_active;
    std::uint64_t used;  // higher = more recently used
    std::vector<std::uint32_t> flow_ids;
  };
  struct Expected {
    Key key;
    RemoveReason why;
  };

  FakeClock clock;
  Recorder obs;
  BindingTable t(make_limits(24, kMaxFlows, kIdle), clock, &obs);
  std::size_t max_bindings = 24;

  std::map<Key, Entry> model;
  std::set<std::pair<std::uint32_t, std::uint32_t>> dead_flows;  // scope, id
  std::vector<Expected> expected;
  std::uint64_t use_counter = 0;

  std::mt19937 rng(0x6d707564);
  auto pick = [&rng](std::uint32_t n) {
    return std::uniform_int_distribution<std::uint32_t>(0, n - 1)(rng);
  };
  auto model_lru = [&model] {
    std::vector<Key> keys;
    for (const auto& kv : model) keys.push_back(kv.first);
    std::sort(keys.begin(), keys.end(),
              [&model](const Key& x, const Key& y) { return model[x].used < model[y].used; });
    return keys;
  };
  auto model_remove = [&](const Key& k, RemoveReason why) {
    for (std::uint32_t id : model[k].flow_ids) dead_flows.insert({k.first, id});
    model.erase(k);
    expected.push_back({k, why});
  };
  auto random_member = [&]() -> Key {
    auto it = model.begin();
    std::advance(it, pick(static_cast<std::uint32_t>(model.size())));
    return it->first;
  };
  auto check_removals = [&](bool any_order) {
    REQUIRE(obs.removals.size() == expected.size());
    std::vector<std::pair<Key, RemoveReason>> got, want;
    for (const Removal& r : obs.removals) {
      got.push_back({{r.scope, static_cast<std::uint32_t>(r.client.addr[3])}, r.why});
    }
    for (const Expected& e : expected) want.push_back({e.key, e.why});
    if (any_order) {
      std::sort(got.begin(), got.end());
      std::sort(want.begin(), want.end());
    }
    CHECK(got == want);
    obs.removals.clear();
    expected.clear();
  };

  for (int step = 0; step < 6000; ++step) {
    const std::uint32_t op = pick(100);
    bool any_order = false;
    if (op < 30) {
      const Key k{pick(kScopes), pick(kClients)};
      Binding* b = t.create(k.first, client_ep(k.second));
      if (model.count(k) != 0 || max_bindings == 0) {
        CHECK(b == nullptr);
      } else {
        REQUIRE(b != nullptr);
        CHECK(b->created == clock.now());
        while (model.size() >= max_bindings) model_remove(model_lru().front(), RemoveReason::Evicted);
        model[k] = Entry{clock.now(), ++use_counter, {}};
      }
    } else if (op < 50) {
      if (model.empty()) continue;
      const Key k = random_member();
      Binding* b = t.find(k.first, client_ep(k.second));
      REQUIRE(b != nullptr);
      t.touch(*b);
      model[k].last_active = clock.now();
      model[k].used = ++use_counter;
    } else if (op < 58) {
      if (model.empty()) continue;
      const Key k = random_member();
      Binding* b = t.find(k.first, client_ep(k.second));
      REQUIRE(b != nullptr);
      t.remove(*b, RemoveReason::PeerClosed);
      model_remove(k, RemoveReason::PeerClosed);
    } else if (op < 73) {
      clock.advance(Duration(pick(4000)));
    } else if (op < 83) {
      // Everything due, found by brute force, in use order.
      const TimePoint now = clock.now();
      for (const Key& k : model_lru()) {
        if (model[k].last_active + kIdle <= now) model_remove(k, RemoveReason::Expired);
      }
      CHECK(t.expire() == expected.size());
    } else if (op < 95) {
      if (model.empty()) continue;
      const Key k = random_member();
      Binding* b = t.find(k.first, client_ep(k.second));
      REQUIRE(b != nullptr);
      const std::uint32_t tag = pick(2) == 0 ? kTagBit : 0;
      const std::uint32_t id = t.allocate_flow_id(k.first, tag);
      CHECK(id != 0);
      CHECK((id & kTagBit) == tag);
      CHECK(t.find_by_flow(k.first, id) == nullptr);
      Flow* f = t.add_flow(*b, remote_ep(pick(200)), id);
      if (model[k].flow_ids.size() < kMaxFlows) {
        REQUIRE(f != nullptr);
        model[k].flow_ids.push_back(id);
        dead_flows.erase({k.first, id});
      } else {
        CHECK(f == nullptr);
      }
    } else if (op < 97) {
      const std::uint32_t scope = pick(kScopes);
      std::size_t n = 0;
      for (const Key& k : model_lru()) {
        if (k.first == scope) {
          model_remove(k, RemoveReason::SessionLost);
          ++n;
        }
      }
      CHECK(t.remove_scope(scope, RemoveReason::SessionLost) == n);
      any_order = true;  // the order within a scope is not part of the contract
    } else {
      max_bindings = pick(41);
      t.set_limits(make_limits(max_bindings, kMaxFlows, kIdle));
      while (model.size() > max_bindings) model_remove(model_lru().front(), RemoveReason::Evicted);
    }

    check_removals(any_order);
    REQUIRE(t.size() == model.size());
    CHECK(t.size() <= max_bindings);

    const std::vector<Key> lru = model_lru();
    if (lru.empty()) {
      CHECK_FALSE(t.next_expiry().has_value());
    } else {
      CHECK(t.next_expiry() == std::optional<TimePoint>(model[lru.front()].last_active + kIdle));
    }

    for (std::uint32_t s = 0; s < kScopes; ++s) {
      for (std::uint32_t c = 0; c < kClients; ++c) {
        const auto it = model.find({s, c});
        Binding* b = t.find(s, client_ep(c));
        if (it == model.end()) {
          CHECK(b == nullptr);
          continue;
        }
        REQUIRE(b != nullptr);
        CHECK(b->last_active == it->second.last_active);
        REQUIRE(b->flows.size() == it->second.flow_ids.size());
        for (std::uint32_t id : it->second.flow_ids) {
          CHECK(t.find_by_flow(s, id) == b);
          CHECK(b->find_flow_id(id) != nullptr);
        }
      }
    }
    if (step % 10 == 0) {
      for (const auto& [scope, id] : dead_flows) CHECK(t.find_by_flow(scope, id) == nullptr);
    }

    if (step % 50 == 0) {
      std::vector<Key> walked;
      t.for_each([&walked](const Binding& b) {
        walked.push_back({b.scope, static_cast<std::uint32_t>(b.client.addr[3])});
      });
      CHECK(walked == std::vector<Key>(lru.rbegin(), lru.rend()));
    }
  }
}

#include <catch2/catch.hpp>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "ctl/log.h"
#include "pm/address_monitor.h"
#include "pm/path_config.h"
#include "pm/path_manager.h"
#include "pm/planner.h"
#include "pm/pm_backend.h"
#include "pm/recovery.h"

using namespace mpudp;
using namespace mpudp::pm;

namespace {

// The path manager logs every endpoint it adds; the tests check the fake instead.
const bool quiet = [] {
  log::set_level(log::Level::Error);
  return true;
}();

Endpoint addr(const char* s) { return *Endpoint::parse_address(s); }

// The kernel's endpoint list, as far as the path manager can tell.
class FakePm final : public PmBackend {
 public:
  std::map<std::uint8_t, EndpointSpec> eps;
  Limits limits{2, 0};
  std::vector<std::string> log;
  bool fail_next_add = false;

  bool get_limits(Limits* out, std::string*) override {
    *out = limits;
    return true;
  }
  bool set_limits(const Limits& l, std::string*) override {
    limits = l;
    log.push_back("limits " + std::to_string(l.subflows) + " " +
                  std::to_string(l.add_addr_accepted));
    return true;
  }
  std::optional<std::uint8_t> add_endpoint(const EndpointSpec& s, std::string* err) override {
    if (fail_next_add) {
      fail_next_add = false;
      *err = "File exists (kernel: address already exists)";
      return std::nullopt;
    }
    for (const auto& [id, e] : eps)
      if (e.addr == s.addr) {
        *err = "File exists";
        return std::nullopt;
      }
    std::uint8_t id = 1;
    while (eps.count(id)) ++id;
    eps[id] = s;
    log.push_back("add " + s.addr.address_str() + " " + std::to_string(s.ifindex) + " " +
                  flags_str(s.flags));
    return id;
  }
  bool del_endpoint(std::uint8_t id, std::string* err) override {
    if (!eps.erase(id)) {
      *err = "No such file or directory";
      return false;
    }
    log.push_back("del " + std::to_string(id));
    return true;
  }
  bool list_endpoints(std::vector<KernelEndpoint>* out, std::string*) override {
    out->clear();
    for (const auto& [id, e] : eps) out->push_back({id, e});
    return true;
  }
  std::vector<std::string> take_log() { return std::exchange(log, {}); }
};

PathConfig sub(const char* ifname, bool backup = false) {
  PathConfig p;
  p.interface = ifname;
  p.subflow = true;
  p.backup = backup;
  return p;
}

// up0 = ifindex 2 with 198.18.1.1 + 2001:db8:1::1 + link-local; up1 = 3 with 198.18.3.1.
Planner two_paths() {
  Planner p({sub("up0"), sub("up1")});
  p.link_changed(1, "lo", true);
  p.link_changed(2, "up0", true);
  p.link_changed(3, "up1", true);
  p.address_added(1, addr("127.0.0.1"), true);
  p.address_added(2, addr("198.18.1.1"), true);
  p.address_added(2, addr("fe80::1"), true);
  p.address_added(2, addr("2001:db8:1::1"), true);
  p.address_added(3, addr("198.18.3.1"), true);
  return p;
}

}  // namespace

TEST_CASE("flags, validation and limits follow the kernel's names and bounds") {
  PathConfig p = sub("up0", true);
  CHECK(kernel_flags(p) == (kFlagSubflow | kFlagBackup));
  CHECK(flags_str(kernel_flags(p)) == "subflow,backup");
  CHECK(path_error(p).empty());
  p.signal = true;
  p.fullmesh = true;
  CHECK(path_error(p) == "signal and fullmesh cannot be combined");
  CHECK_FALSE(path_error(PathConfig{}).empty());
  PathConfig lam = sub("up1");
  lam.laminar = true;
  CHECK(kernel_flags(lam) == (kFlagSubflow | kFlagLaminar));
  CHECK(flags_str(kernel_flags(lam)) == "subflow,laminar");
  CHECK(kFlagLaminar == 32);  // MPTCP_PM_ADDR_FLAG_LAMINAR, Linux 6.18

  PmSettings s;
  s.paths = {sub("up0"), sub("up1")};
  CHECK(effective_limits(s) == Limits{4, 2});
  s.paths.resize(6, sub("x"));
  CHECK(effective_limits(s).subflows == kMaxLimit);
  s.limits.subflows = 3;
  s.limits.add_addr_accepted = 1;
  CHECK(effective_limits(s) == Limits{3, 1});
  s.role = PmRole::Concentrator;
  s.limits = {};
  CHECK(effective_limits(s) == Limits{kMaxLimit, 0});
}

TEST_CASE("start: one endpoint per path and family, link-local and other links skipped") {
  Planner p = two_paths();
  CHECK(p.missing_interfaces().empty());
  auto acts = p.plan();
  REQUIRE(acts.size() == 3);
  for (const Action& a : acts) CHECK(a.kind == Action::Kind::Add);
  CHECK(acts[0].spec == EndpointSpec{addr("198.18.1.1"), 2, kFlagSubflow});
  CHECK(acts[1].spec == EndpointSpec{addr("2001:db8:1::1"), 2, kFlagSubflow});
  CHECK(acts[2].spec == EndpointSpec{addr("198.18.3.1"), 3, kFlagSubflow});
  CHECK(acts[2].path == 1);
}

TEST_CASE("an address path: that address, on whichever up link holds it") {
  PathConfig direct;
  direct.signal = true;
  direct.address = addr("198.18.100.11");
  CHECK(path_error(direct).empty());
  Planner p({direct});
  p.link_changed(2, "wan0", true);
  p.link_changed(4, "svc0", true);
  p.address_added(2, addr("198.18.110.11"), true);
  p.address_added(4, addr("198.18.100.1"), true);  // another address of the link
  CHECK(p.missing_interfaces().empty());
  CHECK(p.plan().empty());  // not there yet
  p.address_added(4, addr("198.18.100.11"), false);
  auto acts = p.plan();
  REQUIRE(acts.size() == 1);
  CHECK(acts[0].spec == EndpointSpec{addr("198.18.100.11"), 4, kFlagSignal});
  p.added(acts[0].spec, 0, 5);
  p.link_changed(4, "svc0", false);
  acts = p.plan();
  REQUIRE(acts.size() == 1);
  CHECK(acts[0].kind == Action::Kind::Del);
  CHECK(acts[0].id == 5);
}

TEST_CASE("a configured interface that does not exist is reported") {
  Planner p({sub("up0"), sub("nope")});
  p.link_changed(2, "up0", true);
  CHECK(p.missing_interfaces() == std::vector<std::string>{"nope"});
}

TEST_CASE("apply_plan records kernel ids; teardown removes only ours") {
  FakePm fake;
  Stats stats;
  fake.eps[1] = {addr("198.18.9.9"), 0, kFlagSignal};  // someone else's
  Planner p = two_paths();
  apply_plan(p, fake, stats);
  CHECK(p.owned().size() == 3);
  CHECK(fake.eps.size() == 4);
  CHECK(stats.get(Counter::pm_endpoints_added) == 3);
  CHECK(p.plan().empty());  // nothing changed: nothing to do
  apply_plan(p, fake, stats);
  CHECK(fake.eps.size() == 4);

  apply_teardown(p, fake, stats);
  REQUIRE(fake.eps.size() == 1);
  CHECK(fake.eps.begin()->first == 1);
  CHECK(p.owned().empty());
  CHECK(stats.get(Counter::pm_endpoints_removed) == 3);
}

TEST_CASE("an interface going down loses its endpoints; coming back re-adds them") {
  FakePm fake;
  Stats stats;
  Planner p = two_paths();
  apply_plan(p, fake, stats);
  fake.take_log();
  std::uint8_t up0_v4 = p.owned()[0].id;

  p.link_changed(2, "up0", false);
  apply_plan(p, fake, stats);
  auto log = fake.take_log();
  CHECK(log.size() == 2);
  CHECK(log[0] == "del " + std::to_string(up0_v4));
  CHECK(p.owned().size() == 1);

  // IPv6 addresses go with the link (keep_addr_on_down=0); IPv4 stays.
  p.address_removed(2, addr("2001:db8:1::1"));
  p.link_changed(2, "up0", true);
  apply_plan(p, fake, stats);
  CHECK(fake.take_log() == std::vector<std::string>{"add 198.18.1.1 2 subflow"});
}

TEST_CASE("a new address moves the endpoint: delete the old, add the new") {
  FakePm fake;
  Stats stats;
  Planner p = two_paths();
  apply_plan(p, fake, stats);
  fake.take_log();
  std::uint8_t old_id = p.owned()[2].id;

  p.address_added(3, addr("198.18.3.5"), false);
  apply_plan(p, fake, stats);
  CHECK(fake.take_log() ==
        std::vector<std::string>{"del " + std::to_string(old_id), "add 198.18.3.5 3 subflow"});

  // The old address going away changes nothing more; the new one going back to the old.
  p.address_removed(3, addr("198.18.3.1"));
  CHECK(p.plan().empty());
  p.address_removed(3, addr("198.18.3.5"));
  apply_plan(p, fake, stats);
  CHECK(fake.take_log().size() == 1);  // the del
  CHECK(p.owned().size() == 2);

  // The same address re-reported (lifetime update) is not a new address.
  p.address_added(2, addr("198.18.1.1"), false);
  CHECK(p.plan().empty());
}

TEST_CASE("changed flags on reload replace the endpoint; a dropped path removes it") {
  FakePm fake;
  Stats stats;
  Planner p = two_paths();
  apply_plan(p, fake, stats);
  fake.take_log();
  p.set_paths({sub("up0"), sub("up1", true)});
  apply_plan(p, fake, stats);
  auto log = fake.take_log();
  REQUIRE(log.size() == 2);
  CHECK(log[1] == "add 198.18.3.1 3 subflow,backup");
  p.set_paths({sub("up0")});
  apply_plan(p, fake, stats);
  CHECK(fake.take_log().size() == 1);
  CHECK(p.owned().size() == 2);
}

TEST_CASE("a failed add is counted, not recorded, and retried on the next change") {
  FakePm fake;
  Stats stats;
  Planner p({sub("up1")});
  p.link_changed(3, "up1", true);
  p.address_added(3, addr("198.18.3.1"), true);
  fake.fail_next_add = true;
  apply_plan(p, fake, stats);
  CHECK(p.owned().empty());
  CHECK(stats.get(Counter::pm_netlink_errors) == 1);
  apply_plan(p, fake, stats);
  CHECK(p.owned().size() == 1);
}

TEST_CASE("a link removed and recreated under another index") {
  FakePm fake;
  Stats stats;
  Planner p({sub("up0")});
  p.link_changed(2, "up0", true);
  p.address_added(2, addr("198.18.1.1"), true);
  apply_plan(p, fake, stats);
  p.link_removed(2);
  apply_plan(p, fake, stats);
  CHECK(p.owned().empty());
  p.link_changed(7, "up0", true);
  p.address_added(7, addr("198.18.1.1"), false);
  apply_plan(p, fake, stats);
  REQUIRE(p.owned().size() == 1);
  CHECK(p.owned()[0].spec.ifindex == 7);
}

TEST_CASE("a removed endpoint frees its address for another path's endpoint") {
  // Deletes run before adds, so an address moving between paths never collides.
  FakePm fake;
  Stats stats;
  Planner p({sub("up0")});
  p.link_changed(2, "up0", true);
  p.address_added(2, addr("198.18.1.1"), true);
  apply_plan(p, fake, stats);
  p.link_changed(2, "wan", true);  // renamed
  p.set_paths({sub("wan", true)});
  apply_plan(p, fake, stats);
  REQUIRE(p.owned().size() == 1);
  CHECK(p.owned()[0].spec.flags == (kFlagSubflow | kFlagBackup));
  CHECK(stats.get(Counter::pm_netlink_errors) == 0);
}

TEST_CASE("the address monitor keeps the set equal to what rtnetlink reports", "[pm]") {
  Loop* loop = ev_loop_new(EVFLAG_AUTO);
  REQUIRE(loop != nullptr);
  {
    AddressSet own;
    pm::AddressMonitor monitor(loop, own);
    pm::LinkObserver& obs = monitor;  // what the link monitor calls
    const Endpoint a = *Endpoint::parse_address("198.18.1.1");
    const Endpoint b = *Endpoint::parse_address("2001:db8:1::1");
    obs.on_links_reset();
    obs.on_address(2, a, true, true);
    obs.on_address(2, b, true, true);
    obs.on_address(3, a, true, true);
    obs.on_changes_done();
    CHECK(own.size() == 2);
    obs.on_address(2, a, true, false);  // a lifetime update counts once
    obs.on_address(2, a, false, false);
    CHECK(own.contains(a));             // interface 3 still has it
    obs.on_link_gone(3);
    CHECK_FALSE(own.contains(a));
    CHECK(own.contains(b));
    obs.on_address(2, b, false, false);  // tentative or removed
    CHECK(own.size() == 0);
    obs.on_address(4, a, true, false);
    obs.on_links_reset();  // changes were lost: a full dump follows
    CHECK(own.size() == 0);
  }
  ev_loop_destroy(loop);
}

// tunnel.path_recovery: fast (pm/recovery.h): what is written, what is put back.
namespace {

struct FakeSysctls {
  std::map<std::string, std::string> values;
  SysctlRead reader() {
    return [this](const std::string& key) -> std::optional<std::string> {
      auto it = values.find(key);
      if (it == values.end()) return std::nullopt;
      return it->second;
    };
  }
  void write(const std::vector<SysctlChange>& changes) {
    for (const SysctlChange& c : changes) values[c.key] = c.after;
  }
};

}  // namespace

TEST_CASE("path recovery: the fast settings", "[pm][recovery]") {
  const auto want = fast_recovery_settings();
  std::map<std::string, std::string> m;
  for (const auto& v : want) m[v.key] = v.value;
  CHECK(m == std::map<std::string, std::string>{{"net.mptcp.stale_loss_cnt", "1"},
                                                {"net.ipv4.tcp_thin_linear_timeouts", "1"},
                                                {"net.ipv4.tcp_rto_min_us", "50000"}});
  CHECK(sysctl_path("net.mptcp.stale_loss_cnt") == "/proc/sys/net/mptcp/stale_loss_cnt");
  CHECK(sysctl_path("net.ipv4.tcp_rto_min_us") == "/proc/sys/net/ipv4/tcp_rto_min_us");
}

TEST_CASE("path recovery: applied over the kernel's defaults, then put back", "[pm][recovery]") {
  FakeSysctls k;
  k.values = {{"net.mptcp.stale_loss_cnt", "4"},
              {"net.ipv4.tcp_thin_linear_timeouts", "0"},
              {"net.ipv4.tcp_rto_min_us", "200000"}};
  const auto defaults = k.values;
  std::vector<std::string> missing;
  const auto applied = plan_apply(fast_recovery_settings(), k.reader(), &missing);
  CHECK(missing.empty());
  REQUIRE(applied.size() == 3);
  CHECK(applied[0].key == "net.mptcp.stale_loss_cnt");
  CHECK(applied[0].before == "4");
  CHECK(applied[0].after == "1");
  k.write(applied);
  CHECK(k.values.at("net.ipv4.tcp_rto_min_us") == "50000");
  // A second apply finds nothing to do.
  CHECK(plan_apply(fast_recovery_settings(), k.reader(), nullptr).empty());
  // Putting back restores every one, last first.
  const auto back = plan_restore(applied, k.reader());
  REQUIRE(back.size() == 3);
  CHECK(back[0].key == "net.ipv4.tcp_rto_min_us");
  CHECK(back[0].after == "200000");
  k.write(back);
  CHECK(k.values == defaults);
}

TEST_CASE("path recovery: what was already set, missing or changed by others is left alone",
          "[pm][recovery]") {
  FakeSysctls k;
  // An operator already chose stale_loss_cnt 1; this kernel has no tcp_rto_min_us (before
  // Linux 6.11).
  k.values = {{"net.mptcp.stale_loss_cnt", "1"}, {"net.ipv4.tcp_thin_linear_timeouts", "0"}};
  std::vector<std::string> missing;
  const auto applied = plan_apply(fast_recovery_settings(), k.reader(), &missing);
  REQUIRE(applied.size() == 1);
  CHECK(applied[0].key == "net.ipv4.tcp_thin_linear_timeouts");
  CHECK(missing == std::vector<std::string>{"net.ipv4.tcp_rto_min_us"});
  k.write(applied);
  // Someone else changes it meanwhile: theirs stays at exit.
  k.values["net.ipv4.tcp_thin_linear_timeouts"] = "0";
  CHECK(plan_restore(applied, k.reader()).empty());
  // And the operator's stale_loss_cnt was never ours to put back.
  k.values["net.ipv4.tcp_thin_linear_timeouts"] = "1";
  const auto back = plan_restore(applied, k.reader());
  REQUIRE(back.size() == 1);
  CHECK(back[0].key == "net.ipv4.tcp_thin_linear_timeouts");
  k.write(back);
  CHECK(k.values.at("net.mptcp.stale_loss_cnt") == "1");
}

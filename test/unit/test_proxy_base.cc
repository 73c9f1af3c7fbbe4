// ProxyBase::tunnel_datagram with an express connection: light flows go express, heavy
// ones main, and a flow is announced with OPEN on a connection before its first DATA
// there, whichever connection it used before (docs/PROTOCOL.md, "Express connection");
// with copy carriers, light flows go in numbered copies on each (tunnel.copies).
#include <catch2/catch.hpp>

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <vector>

#include "core/proxy_base.h"
#include "wire/frame.h"

using namespace mpudp;

namespace {

struct NullHandler final : ConnectionHandler {
  void on_frame(Connection&, const wire::Frame&) override {}
  void on_closed(Connection&, std::string_view) override {}
};

struct TestProxy final : ProxyBase {
  using ProxyBase::ProxyBase;
  using ProxyBase::conn_ctx;
  using ProxyBase::table_;
  using ProxyBase::send_close;
  using ProxyBase::tunnel_datagram;
  using ProxyBase::first_copy;
  // The table's observer is this class: empty the table while it still exists.
  ~TestProxy() override { table_.remove_scope(0, RemoveReason::Shutdown); }
  std::vector<Connection*> conns;  // what for_each_connection shows
  void for_each_connection(const std::function<void(Connection&)>& fn) const override {
    for (Connection* c : conns) fn(*c);
  }
  void on_binding_removed(Binding&, RemoveReason) override {}
  // The copy carriers every binding's datagrams may take (none unless a test sets them).
  std::vector<CopyLane> lanes;
  std::size_t copy_lanes_for(const Binding&, CopyLanes& out) override {
    std::copy(lanes.begin(), lanes.end(), out.begin());
    return lanes.size();
  }
};

struct LoopOwner {
  Loop* loop = ev_loop_new(EVFLAG_AUTO);
  ~LoopOwner() { ev_loop_destroy(loop); }
};

// One connection over a socketpair; `frames()` decodes what reached the other end.
struct Pipe {
  int peer = -1;
  std::unique_ptr<Connection> conn;
  std::vector<std::uint8_t> got;
  Pipe(TestProxy& p, NullHandler& h) {
    int sv[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == 0);
    peer = sv[1];
    conn = Connection::adopt(p.conn_ctx(), Fd(sv[0]), Endpoint{}, ConnectionOptions{}, h);
  }
  ~Pipe() {
    conn.reset();
    ::close(peer);
  }
  // (type, flow id) of each frame that arrived since the last call (CLOSE: id 0).
  std::vector<std::pair<wire::Type, std::uint32_t>> frames() {
    std::uint8_t buf[65536];
    for (ssize_t n; (n = ::recv(peer, buf, sizeof buf, MSG_DONTWAIT)) > 0;)
      got.insert(got.end(), buf, buf + n);
    std::vector<std::pair<wire::Type, std::uint32_t>> out;
    std::size_t at = 0;
    for (;;) {
      const wire::Decoded d = wire::decode(std::span(got).subspan(at));
      if (d.status != wire::DecodeStatus::Ok) break;
      if (const auto* o = std::get_if<wire::Open>(&d.frame)) out.emplace_back(wire::Type::Open, o->flow_id);
      if (const auto* x = std::get_if<wire::Data>(&d.frame)) out.emplace_back(wire::Type::Data, x->flow_id);
      if (std::holds_alternative<wire::Close>(d.frame)) out.emplace_back(wire::Type::Close, 0);
      at += d.consumed;
    }
    got.erase(got.begin(), got.begin() + static_cast<std::ptrdiff_t>(at));
    return out;
  }
};

using F = std::vector<std::pair<wire::Type, std::uint32_t>>;

// What reached a carrier: "OPEN 1" and "DATA 1#seq" (sequenced) or "DATA 1" lines.
std::vector<std::string> copies_on(Pipe& pipe) {
  std::uint8_t buf[65536];
  for (ssize_t n; (n = ::recv(pipe.peer, buf, sizeof buf, MSG_DONTWAIT)) > 0;)
    pipe.got.insert(pipe.got.end(), buf, buf + n);
  std::vector<std::string> out;
  std::size_t at = 0;
  for (;;) {
    const wire::Decoded d = wire::decode(std::span(pipe.got).subspan(at));
    if (d.status != wire::DecodeStatus::Ok) break;
    // Appended piece by piece: GCC 12 at -O3 warns (-Wrestrict, a false positive) on
    // "literal" + std::string chains.
    std::string line;
    if (const auto* o = std::get_if<wire::Open>(&d.frame)) {
      line.append("OPEN ").append(std::to_string(o->flow_id));
      if (o->has_payload) line.append("+");
      out.push_back(line);
    } else if (const auto* x = std::get_if<wire::Data>(&d.frame)) {
      line.append("DATA ").append(std::to_string(x->flow_id));
      if (x->sequenced) line.append("#").append(std::to_string(x->seq));
      if (x->copy_back) line.append("^");
      out.push_back(line);
    } else if (std::holds_alternative<wire::Close>(d.frame)) {
      out.push_back("CLOSE");
    }
    at += d.consumed;
  }
  pipe.got.erase(pipe.got.begin(), pipe.got.begin() + static_cast<std::ptrdiff_t>(at));
  return out;
}
using S = std::vector<std::string>;

std::string show(const F& f) {
  std::string s;
  for (const auto& [t, id] : f) s += std::string(wire::to_string(t)) + "(" + std::to_string(id) + ") ";
  return s;
}
constexpr auto kOpen = wire::Type::Open;
constexpr auto kData = wire::Type::Data;
constexpr auto kClose = wire::Type::Close;

// A proxy with a main and an express connection, each over a socketpair.
struct Fixture {
  LoopOwner lo;
  Config cfg;
  Stats stats;
  TestProxy p{lo.loop, cfg, stats};
  NullHandler h;
  Pipe main{p, h}, express{p, h};
  void run() {
    for (int i = 0; i < 4; ++i) ev_run(lo.loop, EVRUN_NOWAIT);
  }
};

}  // namespace

TEST_CASE_METHOD(Fixture, "light flows ride the express connection, announced there first",
                 "[express]") {
  Binding* b = p.table_.create(0, *Endpoint::parse("198.18.0.2:4000"));
  REQUIRE(b != nullptr);
  // Flows live in a vector in the binding: look them up again after adding one.
  auto flow = [&](std::uint32_t id) -> Flow& { return *b->find_flow_id(id); };
  REQUIRE(p.table_.add_flow(*b, *Endpoint::parse("198.18.4.2:5060"), 1) != nullptr);
  const std::vector<std::uint8_t> small(160, 1), big(1200, 2);

  // A call: OPEN then DATA, all on the express connection.
  for (int i = 0; i < 5; ++i) REQUIRE(p.tunnel_datagram(*main.conn, express.conn.get(), *b, flow(1), small));
  run();
  CHECK(express.frames() == F{{kOpen, 1}, {kData, 1}, {kData, 1}, {kData, 1}, {kData, 1}});
  CHECK(main.frames().empty());

  // A bulk flow: its first 16 KiB express, then main, where it is announced first.
  REQUIRE(p.table_.add_flow(*b, *Endpoint::parse("198.18.4.2:443"), 2) != nullptr);
  for (int i = 0; i < 20; ++i) REQUIRE(p.tunnel_datagram(*main.conn, express.conn.get(), *b, flow(2), big));
  run();
  const F on_express = express.frames();
  const F on_main = main.frames();
  const std::size_t burst = ExpressMeter::burst(cfg.tunnel.express_rate) / big.size();
  REQUIRE(on_express.size() == burst);
  CHECK(on_express.front() == std::pair{kOpen, 2u});
  REQUIRE(on_main.size() == 20 - burst);
  CHECK(on_main.front() == std::pair{kOpen, 2u});
  CHECK(on_main.back() == std::pair{kData, 2u});
  CHECK(stats.get(Counter::express_tx_datagrams) == 5 + burst);
  CHECK(stats.get(Counter::flows_opened) == 2);  // each flow once, not per connection

  // The call still light: on express, no second OPEN. Without an express connection: on
  // main, announced there first.
  REQUIRE(p.tunnel_datagram(*main.conn, express.conn.get(), *b, flow(1), small));
  REQUIRE(p.tunnel_datagram(*main.conn, nullptr, *b, flow(1), small));
  REQUIRE(p.tunnel_datagram(*main.conn, nullptr, *b, flow(1), small));
  run();
  const F ex2 = express.frames(), main2 = main.frames();
  INFO("express: " << show(ex2) << " main: " << show(main2));
  CHECK(ex2 == F{{kData, 1}});
  CHECK(main2 == F{{kOpen, 1}, {kData, 1}});

  // A new express connection (another id): announced again before its first DATA; a
  // flow the peer announced needs no OPEN anywhere.
  Pipe again(p, h);
  constexpr std::uint32_t kTheirs = wire::kConcentratorFlowBit | 7;
  REQUIRE(p.table_.add_flow(*b, *Endpoint::parse("198.18.4.3:53"), kTheirs) != nullptr);
  flow(kTheirs).announced = true;
  flow(kTheirs).express_conn = Flow::kKnownEverywhere;
  REQUIRE(p.tunnel_datagram(*main.conn, again.conn.get(), *b, flow(1), small));
  REQUIRE(p.tunnel_datagram(*main.conn, again.conn.get(), *b, flow(kTheirs), small));
  run();
  CHECK(again.frames() == F{{kOpen, 1}, {kData, kTheirs}});
}

TEST_CASE_METHOD(Fixture,
                 "CLOSE follows the binding's frames on every connection that carried them",
                 "[express]") {
  const std::vector<std::uint8_t> small(160, 1), big(1200, 2);
  auto binding = [&](const char* client, std::uint32_t id) {
    Binding* b = p.table_.create(0, *Endpoint::parse(client));
    REQUIRE(b != nullptr);
    REQUIRE(p.table_.add_flow(*b, *Endpoint::parse("198.18.4.2:5060"), id) != nullptr);
    return b;
  };

  // A light flow's frames all went express: its CLOSE goes there, behind them, so a new
  // binding's OPEN queued after it on express cannot overtake it.
  Binding* call = binding("198.18.0.2:4000", 1);
  REQUIRE(p.tunnel_datagram(*main.conn, express.conn.get(), *call, *call->find_flow_id(1), small));
  p.send_close(main.conn.get(), express.conn.get(), *call, RemoveReason::Evicted);
  run();
  CHECK(express.frames() == F{{kOpen, 1}, {kClose, 0}});
  CHECK(main.frames().empty());

  // A flow that used both connections: a CLOSE on each.
  Binding* bulk = binding("198.18.0.2:4001", 2);
  for (int i = 0; i < 20; ++i)
    REQUIRE(p.tunnel_datagram(*main.conn, express.conn.get(), *bulk, *bulk->find_flow_id(2), big));
  p.send_close(main.conn.get(), express.conn.get(), *bulk, RemoveReason::Expired);
  run();
  const F ex = express.frames(), mn = main.frames();
  INFO("express: " << show(ex) << " main: " << show(mn));
  REQUIRE(!ex.empty());
  REQUIRE(!mn.empty());
  CHECK(ex.back() == std::pair{kClose, 0u});
  CHECK(mn.back() == std::pair{kClose, 0u});

  // Nothing sent yet, or no express connection (any more): on main. Removals the peer
  // caused or knows of already: no CLOSE at all.
  Binding* quiet = binding("198.18.0.2:4002", 3);
  p.send_close(main.conn.get(), express.conn.get(), *quiet, RemoveReason::Shutdown);
  p.send_close(main.conn.get(), nullptr, *call, RemoveReason::Evicted);
  p.send_close(main.conn.get(), express.conn.get(), *call, RemoveReason::PeerClosed);
  p.send_close(main.conn.get(), express.conn.get(), *call, RemoveReason::SessionLost);
  run();
  CHECK(main.frames() == F{{kClose, 0}, {kClose, 0}});
  CHECK(express.frames().empty());
  CHECK(stats.get(Counter::closes_tx) == 5);
}

TEST_CASE_METHOD(Fixture, "a reload applies the tunnel options to the live connections",
                 "[reload]") {
  p.conns = {main.conn.get(), express.conn.get()};
  ConnectionOptions probe;
  probe.keepalive_role = ConnectionOptions::Keepalive::Probe;
  main.conn->set_options(probe);
  Config next = cfg;
  next.tunnel.queue_bytes = 64 * 1024;
  next.tunnel.target_delay = std::chrono::milliseconds(0);
  next.tunnel.keepalive = std::chrono::seconds(3);
  next.tunnel.queue_target = std::chrono::milliseconds(8);
  next.tunnel.queue_interval = std::chrono::milliseconds(300);
  p.reload(next);
  for (Connection* c : p.conns) {
    CHECK(c->options().queue_bytes == 64 * 1024);
    CHECK(c->options().queue_target == std::chrono::milliseconds(8));
    CHECK(c->options().queue_interval == std::chrono::milliseconds(300));
    CHECK(c->options().keepalive == std::chrono::seconds(3));
    CHECK(c->send_limit() == 0);  // target_delay 0: no limit
  }
  // Each keeps its own keepalive role (the CPE's main connection probes).
  CHECK(main.conn->options().keepalive_role == ConnectionOptions::Keepalive::Probe);
  CHECK(express.conn->options().keepalive_role == ConnectionOptions::Keepalive::Off);
  // The new bound holds at once: 64 KiB of datagrams, not 2 MiB.
  Binding* b = p.table_.create(0, *Endpoint::parse("198.18.0.2:4000"));
  REQUIRE(p.table_.add_flow(*b, *Endpoint::parse("198.18.4.2:443"), 1) != nullptr);
  const std::vector<std::uint8_t> big(1200, 2);
  std::size_t taken = 0;
  while (taken < 1000 && p.tunnel_datagram(*main.conn, nullptr, *b, *b->find_flow_id(1), big)) ++taken;
  INFO(taken << " datagrams taken");
  CHECK(taken * 1200 <= 64 * 1024);  // the loop did not run: nothing went to the kernel
  CHECK(taken >= 50);
}

TEST_CASE_METHOD(Fixture, "light flows go in numbered copies on every carrier with budget",
                 "[copies]") {
  Pipe c0{p, h}, c1{p, h};
  ExpressMeter b0, b1;
  p.lanes = {{c0.conn.get(), &b0, 0}, {c1.conn.get(), &b1, 1}};
  std::span<CopyLane> lanes(p.lanes);
  Binding* b = p.table_.create(0, *Endpoint::parse("198.18.0.2:4000"));
  REQUIRE(b != nullptr);
  auto flow = [&](std::uint32_t id) -> Flow& { return *b->find_flow_id(id); };
  REQUIRE(p.table_.add_flow(*b, *Endpoint::parse("198.18.4.2:5060"), 1) != nullptr);
  const std::vector<std::uint8_t> small(160, 1), big(1200, 2);
  auto send = [&](std::uint32_t id, const std::vector<std::uint8_t>& d) {
    return p.tunnel_datagram(*main.conn, express.conn.get(), *b, flow(id), d);
  };

  SECTION("each carrier: the flow announced once, then every datagram with one number") {
    for (int i = 0; i < 3; ++i) REQUIRE(send(1, small));
    run();
    const S want{"OPEN 1", "DATA 1#1", "DATA 1#2", "DATA 1#3"};
    CHECK(copies_on(c0) == want);
    CHECK(copies_on(c1) == want);  // no ^: not in a class, replies copied by their rate
    CHECK(main.frames().empty());
    CHECK(express.frames().empty());
    CHECK(stats.get(Counter::copies_tx) == 6);
    CHECK(stats.get(Counter::duplicates_tx) == 3);
    CHECK(b->duplicates_tx == 3);  // the binding's own share of the cost
    CHECK(stats.get(Counter::flows_opened) == 1);
  }
  SECTION("a flow the peer began is known on every carrier: no OPEN") {
    flow(1).express_conn = Flow::kKnownEverywhere;
    REQUIRE(send(1, small));
    run();
    CHECK(copies_on(c0) == S{"DATA 1#1"});
    CHECK(copies_on(c1) == S{"DATA 1#1"});
  }
  SECTION("a carrier whose budget is spent is skipped; with none left, express takes it") {
    const auto now_ms = static_cast<std::uint32_t>(
        static_cast<std::uint64_t>(ev_now(lo.loop) * 1000.0) & 0xffffffffu);
    // The bucket overdrawn: a whole burst's worth taken, then more.
    b1.light(now_ms, 1 << 20, cfg.tunnel.copy_rate);
    REQUIRE_FALSE(b1.light(now_ms, 1, cfg.tunnel.copy_rate));
    REQUIRE(send(1, small));
    run();
    CHECK(copies_on(c0) == S{"OPEN 1", "DATA 1#1"});
    CHECK(copies_on(c1).empty());
    CHECK(stats.get(Counter::copies_skipped) == 1);
    CHECK(stats.get(Counter::duplicates_tx) == 0);
    CHECK(b->duplicates_tx == 0);
    b0.light(now_ms, 1 << 20, cfg.tunnel.copy_rate);
    REQUIRE_FALSE(b0.light(now_ms, 1, cfg.tunnel.copy_rate));
    REQUIRE(send(1, small));
    run();
    CHECK(copies_on(c0).empty());
    CHECK(express.frames() == F{{kOpen, 1}});  // the datagram rides inside the OPEN
    CHECK(stats.get(Counter::flows_opened) == 1);
  }
  SECTION("a heavy flow is never copied") {
    REQUIRE(p.table_.add_flow(*b, *Endpoint::parse("198.18.4.2:443"), 2) != nullptr);
    const std::size_t burst = ExpressMeter::burst(cfg.tunnel.express_rate) / big.size();
    for (std::size_t i = 0; i < burst + 5; ++i) REQUIRE(send(2, big));
    run();
    CHECK(copies_on(c0).size() == burst + 1);  // its OPEN, then the light start
    CHECK(main.frames().size() == 5);  // an OPEN with the first datagram inside, 4 DATA
  }
  SECTION("a flow in a copy class is copied whatever its rate, replies asked for too") {
    REQUIRE(p.table_.add_flow(*b, *Endpoint::parse("198.18.4.2:3478"), 2) != nullptr);
    flow(2).copy_class = true;
    const std::size_t burst = ExpressMeter::burst(cfg.tunnel.express_rate) / big.size();
    for (std::size_t i = 0; i < burst + 5; ++i) REQUIRE(send(2, big));
    run();
    const S got = copies_on(c0);
    REQUIRE(got.size() == burst + 6);  // its OPEN, then every datagram
    CHECK(got.back() == "DATA 2#" + std::to_string(burst + 5) + "^");
    CHECK(copies_on(c1) == got);
    CHECK(main.frames().empty());
    // Past the carriers' budgets it goes the way its rate says: heavy, main.
    const auto now_ms = static_cast<std::uint32_t>(
        static_cast<std::uint64_t>(ev_now(lo.loop) * 1000.0) & 0xffffffffu);
    b0.light(now_ms, 1 << 20, cfg.tunnel.copy_rate);
    b1.light(now_ms, 1 << 20, cfg.tunnel.copy_rate);
    REQUIRE(send(2, big));
    run();
    CHECK(main.frames() == F{{kOpen, 2}});
    // The budgets spent, a light flow takes express.
    REQUIRE(send(1, small));
    run();
    CHECK(express.frames() == F{{kOpen, 1}});
  }
  SECTION("one copy per uplink, on its carrier with the least to wait behind") {
    Pipe s0{p, h}, s1{p, h};
    ExpressMeter bs0, bs1;
    p.lanes[1].path = 1;
    p.lanes.push_back({s0.conn.get(), &bs0, 2, true, false, 0});
    p.lanes.push_back({s1.conn.get(), &bs1, 3, true, false, 1});
    REQUIRE(send(1, small));
    run();
    CHECK(copies_on(c0) == S{"OPEN 1", "DATA 1#1"});
    CHECK(copies_on(c1) == S{"OPEN 1", "DATA 1#1"});
    CHECK(copies_on(s0).empty());
    CHECK(copies_on(s1).empty());
    // Uplink 1's primary has segments in flight, its spare none: the spare takes it.
    p.lanes[1].exposure = 2;
    REQUIRE(send(1, small));
    run();
    CHECK(copies_on(c0) == S{"DATA 1#2"});
    CHECK(copies_on(c1).empty());
    CHECK(copies_on(s1) == S{"OPEN 1", "DATA 1#2"});
    CHECK(stats.get(Counter::spare_copies_tx) == 1);
    CHECK(b->duplicates_tx == 1 + 1);
    // Uplink 0 dark: its carrier stalls and gets nothing, nor does its idle spare (into
    // the same outage); both of uplink 1's carriers take one. Still one beyond the first.
    p.lanes[0].stalled = true;
    REQUIRE(send(1, small));
    run();
    CHECK(copies_on(c0).empty());
    CHECK(copies_on(s0).empty());
    CHECK(copies_on(c1) == S{"DATA 1#3"});
    CHECK(copies_on(s1) == S{"DATA 1#3"});
    CHECK(stats.get(Counter::copies_stalled) == 1);
    CHECK(b->duplicates_tx == 1 + 1 + 1);
    // Uplink 0 delivers again but its carrier is recovering: its spare, clean, is taken.
    p.lanes[0].stalled = false;
    p.lanes[0].recovering = true;
    REQUIRE(send(1, small));
    run();
    CHECK(copies_on(c0).empty());
    CHECK(copies_on(s0) == S{"OPEN 1", "DATA 1#4"});
    CHECK(copies_on(c1).empty());
    CHECK(copies_on(s1) == S{"DATA 1#4"});
    // Every carrier stalled: the express connection takes the datagram.
    for (CopyLane& l : p.lanes) l.stalled = true;
    REQUIRE(send(1, small));
    run();
    CHECK(express.frames() == F{{kOpen, 1}});
  }
  SECTION("a spent budget passes the copy to the next carrier in the plan") {
    Pipe s1{p, h};
    ExpressMeter bs1;
    p.lanes[1].path = 1;
    p.lanes.push_back({s1.conn.get(), &bs1, 2, true, false, 1});
    const auto now_ms = static_cast<std::uint32_t>(
        static_cast<std::uint64_t>(ev_now(lo.loop) * 1000.0) & 0xffffffffu);
    b1.light(now_ms, 1 << 20, cfg.tunnel.copy_rate);
    REQUIRE(send(1, small));
    run();
    CHECK(copies_on(c0) == S{"OPEN 1", "DATA 1#1"});
    CHECK(copies_on(c1).empty());
    CHECK(copies_on(s1) == S{"OPEN 1", "DATA 1#1"});
    CHECK(stats.get(Counter::copies_skipped) == 1);
  }
  SECTION("a CLOSE follows the copies on each carrier the binding was announced on") {
    REQUIRE(send(1, small));
    run();
    copies_on(c0);
    copies_on(c1);
    p.table_.forget_copy_slot(0, 1);  // as if carrier 1 were new: nothing of it there
    p.send_close(main.conn.get(), express.conn.get(), *b, RemoveReason::Expired, lanes);
    run();
    CHECK(copies_on(c0) == S{"CLOSE"});
    CHECK(copies_on(c1).empty());
    CHECK(main.frames() == F{{kClose, 0}});
  }
  SECTION("a replaced carrier's slot is forgotten: the flow is announced on it again") {
    REQUIRE(send(1, small));
    run();
    copies_on(c0);
    copies_on(c1);
    p.table_.forget_copy_slot(0, 1);
    REQUIRE(send(1, small));
    run();
    CHECK(copies_on(c0) == S{"DATA 1#2"});
    CHECK(copies_on(c1) == S{"OPEN 1", "DATA 1#2"});
  }
  SECTION("the receiver delivers the first copy of a number and counts the others") {
    const auto copy = [](std::uint32_t seq) { return wire::Data{1, {}, true, seq}; };
    CHECK(p.first_copy(*c1.conn, flow(1), copy(7)));
    CHECK_FALSE(p.first_copy(*c0.conn, flow(1), copy(7)));
    CHECK(p.first_copy(*c0.conn, flow(1), copy(9)));
    CHECK(p.first_copy(*c0.conn, flow(1), copy(8)));  // late, but the first of its number
    CHECK_FALSE(p.first_copy(*c1.conn, flow(1), copy(8)));
    CHECK_FALSE(p.first_copy(*c1.conn, flow(1), copy(9)));
    CHECK(c0.conn->first_arrivals == 2);
    CHECK(c1.conn->first_arrivals == 1);
    CHECK(stats.get(Counter::duplicates_dropped) == 3);
    // A new session on the peer's side numbers from the start again.
    p.table_.forget_announcements(0);
    CHECK(p.first_copy(*c1.conn, flow(1), copy(1)));
  }
}

#include "core/proxy_base.h"

#include <algorithm>
#include <map>

#include "core/tls_setup.h"
#include "ctl/log.h"
#include "io/socket.h"
#include "tunnel/subflows.h"
#include "tunnel/tls_transport.h"
#include "wire/auth.h"

namespace mpudp {

BindingLimits binding_limits(const Config& cfg) {
  BindingLimits l;
  l.max_bindings = cfg.bindings.max;
  l.max_flows_per_binding = cfg.bindings.max_remotes;
  l.idle_timeout = std::chrono::duration_cast<Duration>(cfg.bindings.idle_timeout);
  // Tenants are CPEs on the concentrator, LAN hosts on a CPE (when capped).
  l.max_per_tenant = cfg.role == ProxyRole::Concentrator ? cfg.concentrator.max_bindings_per_cpe
                                                         : cfg.cpe.max_bindings_per_host;
  return l;
}

ConnectionOptions connection_options(const Config& cfg, ConnectionOptions::Keepalive role) {
  ConnectionOptions o;
  o.queue_bytes = cfg.tunnel.queue_bytes;
  o.queue_target = std::chrono::duration_cast<Duration>(cfg.tunnel.queue_target);
  o.queue_interval = std::chrono::duration_cast<Duration>(cfg.tunnel.queue_interval);
  o.keepalive = std::chrono::duration_cast<Duration>(cfg.tunnel.keepalive);
  o.keepalive_role = role;
  o.target_delay = std::chrono::duration_cast<Duration>(cfg.tunnel.target_delay);
  o.limit_path_queue = cfg.tunnel.limit_path_queue;
  o.express_priority = cfg.tunnel.express_priority;
  o.express_dscp = cfg.tunnel.express_dscp;
  o.congestion_control = cfg.tunnel.congestion_control;
  if (cfg.tunnel.copies) o.copy_congestion_control = cfg.tunnel.copy_congestion_control_name();
  o.receive_buffer = cfg.tunnel.receive_buffer;
  return o;
}

wire::SessionMode wire_mode(SessionModeConfig m) {
  return m == SessionModeConfig::PerBinding ? wire::SessionMode::PerBinding
                                            : wire::SessionMode::Multiplexed;
}

ProxyBase::ProxyBase(Loop* loop, const Config& cfg, Stats& stats)
    : loop_(loop),
      cfg_(cfg),
      stats_(stats),
      deferred_(loop),
      flusher_(deferred_),
      table_(binding_limits(cfg), clock_, this),
      expiry_timer_(loop, [this] { on_expiry_timer(); }),
      descriptor_budget_(descriptor_budget()) {}

namespace {
// The TLS context a configuration asks for: null for encryption: none.
bool build_tls(const Config& cfg, std::shared_ptr<TlsContext>& out, std::string* err) {
  out.reset();
  const std::optional<TlsSettings> settings = tls_settings(cfg);
  if (!settings) return true;
  auto made = TlsContext::create(*settings);
  if (auto* why = std::get_if<std::string>(&made)) {
    if (err) *err = "TLS: " + *why;
    return false;
  }
  out = std::get<std::shared_ptr<TlsContext>>(std::move(made));
  return true;
}
}  // namespace

bool ProxyBase::start_tls(std::string* err) { return build_tls(cfg_, tls_, err); }

bool ProxyBase::prepare_reload(const Config& next, std::string* err) {
  next_tls_ready_ = build_tls(next, next_tls_, err);
  return next_tls_ready_;
}

bool ProxyBase::log_tls_failure(const Connection& c, const std::string& what) {
  const TlsSession* t = c.tls();
  if (t == nullptr || !t->failed()) return false;
  std::uint64_t held = 0;
  if (tls_log_[static_cast<std::size_t>(t->failure())].allow(ev_now(loop_), &held)) {
    const std::string more =
        held == 0 ? std::string() : " (" + std::to_string(held) + " more like it not logged)";
    // A closing peer is not a failure worth an error line.
    if (t->failure() == TlsFailure::Closed)
      PEER_INFO(c.identity(), "%s: TLS closed by the peer%s", what.c_str(), more.c_str());
    else
      PEER_WARN(c.identity(), "%s: TLS failed: %s%s", what.c_str(), t->failure_text().c_str(),
                more.c_str());
  }
  return true;
}

std::unique_ptr<Transport> ProxyBase::new_transport(bool accept_cleartext) const {
  if (!tls_) return nullptr;
  return std::make_unique<TlsTransport>(tls_, accept_cleartext);
}

void ProxyBase::reload(const Config& cfg) {
  cfg_ = cfg;
  if (next_tls_ready_) {
    tls_ = std::move(next_tls_);
    next_tls_ready_ = false;
  }
  table_.set_limits(binding_limits(cfg));
  arm_expiry();
  // Multiplexed connections live as long as the daemon: a new queue bound, send limit,
  // keepalive period or express marks must reach them, not only the next connection.
  for_each_connection([this](Connection& c) {
    c.set_options(connection_options(cfg_, c.options().keepalive_role));
  });
}

std::string ProxyBase::status_json(double uptime_s) const {
  json::Writer w;
  w.begin_object();
  w.key("role").value(to_string(cfg_.role));
  w.key("version").value(MPUDP_VERSION_STRING);
  w.key("uptime_s").value(uptime_s);
  w.key("session_mode").value(to_string(cfg_.session_mode));
  w.key("bindings").begin_object();
  w.key("count").value(static_cast<std::uint64_t>(table_.size()));
  w.key("max").value(static_cast<std::uint64_t>(cfg_.bindings.max));
  w.key("idle_timeout_s").value(std::chrono::duration<double>(cfg_.bindings.idle_timeout).count());
  w.end_object();
  w.key("connections").begin_array();
  for_each_connection([this, &w](const Connection& c) { write_connection(w, c); });
  w.end_array();
  w.key("stats").raw(stats_.to_json());
  w.end_object();
  return w.str();
}

std::vector<Gauge> ProxyBase::gauges() const {
  std::vector<Gauge> g;
  g.push_back({"bindings", "bindings in the table", static_cast<double>(table_.size()), {}, {}});
  Gauge tenants{"tenant_bindings", "bindings per tenant (a CPE's TLS identity or address)", 0,
                "tenant", {}};
  table_.for_each_tenant([&](const std::string& key, std::size_t n) {
    if (!key.empty()) tenants.series.emplace_back(key, static_cast<double>(n));
  });
  std::sort(tenants.series.begin(), tenants.series.end());
  if (!tenants.series.empty()) g.push_back(std::move(tenants));
  std::map<std::string, double> per_identity;
  for_each_connection([&](Connection& c) { per_identity[std::string(c.identity())] += 1; });
  Gauge conns{"tunnel_connections", "tunnel connections per peer identity (its address before "
              "it authenticated)", 0, "identity", {per_identity.begin(), per_identity.end()}};
  g.push_back(std::move(conns));
  return g;
}

std::string ProxyBase::bindings_json() const {
  const TimePoint now = clock_.now();
  auto secs = [](auto d) { return std::chrono::duration<double>(d).count(); };
  json::Writer w;
  w.begin_object();
  w.key("bindings").begin_array();
  table_.for_each([&](const Binding& b) {
    w.begin_object();
    w.key("client").value(b.client.str());
    w.key("scope").value(b.scope);
    w.key("tenant").value(b.tenant());
    w.key("remotes").begin_array();
    for (const Flow& f : b.flows) w.value(f.remote.str());
    w.end_array();
    w.key("age_s").value(secs(now - b.created));
    w.key("idle_s").value(secs(now - b.last_active));
    w.key("up_datagrams").value(b.upstream.datagrams);
    w.key("up_bytes").value(b.upstream.bytes);
    w.key("down_datagrams").value(b.downstream.datagrams);
    w.key("down_bytes").value(b.downstream.bytes);
    w.key("duplicates_tx").value(b.duplicates_tx);
    w.end_object();
  });
  w.end_array();
  w.end_object();
  return w.str();
}

void ProxyBase::write_connection(json::Writer& w, const Connection& c) const {
  w.begin_object();
  w.key("id").value(c.id());
  w.key("peer").value(c.peer().str());
  w.key("state").value(c.open() ? "open" : c.usable() ? "connecting" : "closed");
  // The peer's identity once a handshake proved it (its address before).
  w.key("identity").value(c.identity());
  if (const TlsSession* t = c.tls(); t != nullptr && t->established()) {
    w.key("tls").begin_object();
    w.key("cipher").value(t->cipher());
    w.key("group").value(t->key_exchange_group());
    w.key("resumed").value(t->resumed());
    w.key("key_updates").value(t->key_updates_sent());
    w.end_object();
  } else {
    w.key("tls").raw("null");
  }
  w.key("mptcp").value(c.is_mptcp());
  w.key("express_connection").value(c.express);
  w.key("copy_carrier").value(c.carrier);
  if (c.carrier) {
    w.key("carrier_interface").value(c.carrier_interface);
    w.key("first_arrivals").value(c.first_arrivals);
    w.key("copy_spare").value(c.spare);
    w.key("stalled").value(c.stalled());
  }
  w.key("queued_bytes").value(static_cast<std::uint64_t>(c.queued_bytes()));
  w.key("express_bytes").value(static_cast<std::uint64_t>(c.express_bytes()));
  w.key("queued_datagrams").value(c.queued_datagrams());
  w.key("buffer_bytes").value(static_cast<std::uint64_t>(c.buffer_bytes()));
  w.key("send_limit_bytes").value(static_cast<std::uint64_t>(c.send_limit()));
  w.key("send_rate_bps").value(static_cast<std::uint64_t>(c.send_rate() * 8));
  w.key("subflows").begin_array();
  if (c.open()) {
    auto subflows = subflows_of(c.fd(), nullptr);
    if (annotate_subflows) annotate_subflows(subflows);
    for (const SubflowInfo& sf : subflows) {
      w.begin_object();
      w.key("interface").value(sf.interface);
      w.key("local").value(sf.local.str());
      w.key("remote").value(sf.remote.str());
      w.key("tx_bytes").value(sf.bytes_sent);
      w.key("rx_bytes").value(sf.bytes_received);
      w.key("rtt_us").value(sf.rtt_us);
      w.key("min_rtt_us").value(sf.min_rtt_us);
      w.key("path_queued_bytes").value(sf.path_queued_bytes);
      w.key("backup").value(sf.backup);
      w.end_object();
    }
  }
  w.end_array();
  w.end_object();
}

bool ProxyBase::tunnel_datagram(Connection& main, Connection* express, Binding& b,
                                Flow& f, std::span<const std::uint8_t> payload) {
  if (payload.size() > wire::kMaxDataPayload) {
    stats_.drop(Drop::too_large);
    return false;
  }
  // The meter runs for every datagram, so a flow's weight is known the moment an express
  // connection comes up.
  const auto now_ms = static_cast<std::uint32_t>(
      static_cast<std::uint64_t>(ev_now(loop_) * 1000.0) & 0xffffffffu);
  const bool light = f.meter.light(now_ms, payload.size(), cfg_.tunnel.express_rate);
  // A flow in a copy class is copied whatever its rate; past the carriers' budgets it
  // takes the connection its rate says, as any other flow.
  if (light || f.copy_class) {
    CopyLanes lanes;
    const std::size_t n = copy_lanes_for(b, lanes);
    if (n != 0 && send_copies(std::span(lanes.data(), n), b, f, payload, now_ms)) return true;
  }
  const bool use_express = express != nullptr && light;
  Connection& c = use_express ? *express : main;
  // Fair queueing among the flows sharing a multiplexed main connection (a per-binding
  // one carries one client's flows only, an express one light flows only).
  QueueMark* mark =
      cfg_.session_mode == SessionModeConfig::Multiplexed && !use_express ? &f.mark : nullptr;
  const bool known = use_express ? f.express_conn == c.id() ||
                                       f.express_conn == Flow::kKnownEverywhere
                                 : f.announced;
  bool ok;
  if (!known) {
    wire::Open open{f.id, b.client, f.remote, true, payload};
    if (wire::encoded_size(open) == 0) {
      // Too big to ride along: announce the pair, then send the datagram as DATA.
      open.has_payload = false;
      open.payload = {};
      ok = c.send(open, mark) && c.send_data(f.id, payload, mark);
    } else {
      ok = c.send(open, mark);
    }
    if (ok) {
      // A flow moving to the other connection is announced there again (an OPEN for a
      // known pair is harmless), so its DATA never arrives before its OPEN; it is still
      // one flow.
      if (!f.announced && f.express_conn == 0 && f.copy_seq == 0)
        stats_.add(Counter::flows_opened);
      if (use_express)
        f.express_conn = c.id();
      else
        f.announced = true;
    }
  } else {
    ok = c.send_data(f.id, payload, mark);
  }
  // tunnel_tx_datagrams is counted by the connection, as the kernel takes each whole.
  if (ok) {
    (use_express ? f.sent_express : f.sent_main) = true;
    if (use_express) stats_.add(Counter::express_tx_datagrams);
  } else {
    stats_.drop(Drop::tunnel_queue_full);
  }
  return ok;
}

bool ProxyBase::send_copies(std::span<CopyLane> carriers, Binding& b, Flow& f,
                            std::span<const std::uint8_t> payload, std::uint32_t now_ms) {
  if (payload.size() + wire::kSeqSize > wire::kMaxDataPayload) return false;
  // The same number on every copy: the receiver delivers whichever arrives first. A flow
  // the peer began (kKnownEverywhere) needs no OPEN; one of ours is announced on each
  // carrier before its first copy there, as TCP keeps the two in order on it.
  // The CPE asks for the replies of its classed flows to be copied too (the concentrator
  // knows no classes); a concentrator's copies ask nothing.
  const wire::Data copy{f.id, payload, true, f.copy_seq + 1,
                        f.copy_class && cfg_.role == ProxyRole::Cpe};
  const std::size_t cost = payload.size() + wire::kDataOverhead + wire::kSeqSize;
  std::uint64_t sent = 0, on_spares = 0;
  const CopyPlan plan = plan_copies(carriers);
  stats_.add(Counter::copies_stalled, carriers.size() - plan.tries);
  for (std::size_t i = 0; i < plan.tries && sent < plan.wanted; ++i) {
    if (i >= plan.dark_from && sent > 0) break;
    CopyLane& lane = carriers[plan.order[i]];
    if (!lane.budget->light(now_ms, cost, cfg_.tunnel.copy_rate)) {
      stats_.add(Counter::copies_skipped);
      continue;
    }
    const auto bit = static_cast<std::uint8_t>(1u << lane.slot);
    if (f.express_conn != Flow::kKnownEverywhere && (f.copy_known & bit) == 0) {
      if (!lane.conn->send(wire::Open{f.id, b.client, f.remote, false, {}})) continue;
      f.copy_known |= bit;
    }
    if (lane.conn->send(copy)) {
      ++sent;
      if (lane.spare) ++on_spares;
    }
  }
  if (sent == 0) return false;  // the express or main connection takes it instead
  if (f.copy_seq == 0 && !f.announced && f.express_conn == 0)
    stats_.add(Counter::flows_opened);
  ++f.copy_seq;
  stats_.add(Counter::copies_tx, sent);
  stats_.add(Counter::duplicates_tx, sent - 1);
  b.duplicates_tx += sent - 1;
  stats_.add(Counter::spare_copies_tx, on_spares);
  return true;
}

bool ProxyBase::first_copy(Connection& c, Flow& f, const wire::Data& d) {
  if (f.copies_seen.accept(d.seq) == DedupWindow::Verdict::Duplicate) {
    stats_.add(Counter::duplicates_dropped);
    return false;
  }
  ++c.first_arrivals;
  return true;
}

void ProxyBase::send_close(Connection* main, Connection* express, const Binding& b,
                           RemoveReason why, std::span<CopyLane> carriers) {
  wire::CloseReason reason;
  switch (why) {
    case RemoveReason::Expired: reason = wire::CloseReason::Idle; break;
    case RemoveReason::Evicted:
    case RemoveReason::QuotaEvicted: reason = wire::CloseReason::Evicted; break;
    case RemoveReason::Shutdown: reason = wire::CloseReason::Shutdown; break;
    default: return;
  }
  bool on_main = false, on_express = false;
  for (const Flow& f : b.flows) {
    on_main = on_main || f.sent_main;
    on_express = on_express || f.sent_express;
  }
  if (express == nullptr || !express->open()) on_express = false;
  if (!on_express) on_main = true;
  if (main == nullptr || !main->open()) on_main = false;
  const wire::Close close{b.client, reason};
  if (on_express && express->send(close)) stats_.add(Counter::closes_tx);
  if (on_main && main->send(close)) stats_.add(Counter::closes_tx);
  // Behind the copies too: an OPEN still queued on a stalled carrier must not bring the
  // binding back at the peer after the CLOSE on main.
  std::uint8_t announced = 0;
  for (const Flow& f : b.flows) announced |= f.copy_known;
  for (CopyLane& lane : carriers)
    if ((announced & (1u << lane.slot)) != 0 && lane.conn->send(close))
      stats_.add(Counter::closes_tx);
}

bool ProxyBase::count_rx_datagram(const wire::Frame& f) {
  const auto* o = std::get_if<wire::Open>(&f);
  const bool carries = std::holds_alternative<wire::Data>(f) || (o != nullptr && o->has_payload);
  if (carries) stats_.add(Counter::tunnel_rx_datagrams);
  return carries;
}

void ProxyBase::on_created(const Binding& b) {
  stats_.add(Counter::bindings_created);
  LOG_DEBUG("binding created client=%s scope=%u", b.client.str().c_str(), b.scope);
  if (!expiry_timer_.active()) arm_expiry();
}

void ProxyBase::on_sent(int kind, std::size_t bytes) {
  const bool lan = kind == kSendLan;
  stats_.add(lan ? Counter::lan_tx_datagrams : Counter::wan_tx_datagrams);
  stats_.add(lan ? Counter::lan_tx_bytes : Counter::wan_tx_bytes, bytes);
}

void ProxyBase::on_send_failed(int kind, int err, const sockaddr* to, socklen_t to_len) {
  LOG_DEBUG("%s send to %s: %s", kind == kSendLan ? "reply" : "relay",
            Endpoint::from_sockaddr(to, to_len).value_or(Endpoint{}).str().c_str(),
            errno_str(err).c_str());
  stats_.drop(Drop::send_failed);
}

void ProxyBase::account_removal(const Binding& b, RemoveReason why) {
  sends_.flush();
  switch (why) {
    case RemoveReason::Expired: stats_.add(Counter::bindings_expired); break;
    case RemoveReason::Evicted: stats_.add(Counter::bindings_evicted); break;
    case RemoveReason::QuotaEvicted: stats_.add(Counter::bindings_evicted_quota); break;
    case RemoveReason::PeerClosed: stats_.add(Counter::bindings_closed_by_peer); break;
    case RemoveReason::PeerReset: stats_.add(Counter::bindings_reset_by_peer); break;
    case RemoveReason::SessionLost: stats_.add(Counter::bindings_session_lost); break;
    case RemoveReason::Refused:
    case RemoveReason::Shutdown: break;
  }
  LOG_DEBUG("binding removed client=%s scope=%u reason=%s up=%llu/%lluB down=%llu/%lluB",
            b.client.str().c_str(), b.scope, to_string(why),
            static_cast<unsigned long long>(b.upstream.datagrams),
            static_cast<unsigned long long>(b.upstream.bytes),
            static_cast<unsigned long long>(b.downstream.datagrams),
            static_cast<unsigned long long>(b.downstream.bytes));
}

void ProxyBase::arm_expiry() {
  auto next = table_.next_expiry();
  if (!next) {
    expiry_timer_.stop();
    return;
  }
  const auto wait = std::chrono::duration<double>(*next - clock_.now()).count();
  // A millisecond late is harmless; firing early would just re-arm.
  expiry_timer_.start(wait + 0.001);
}

void ProxyBase::on_expiry_timer() {
  table_.expire();
  arm_expiry();
}

bool ProxyBase::at_descriptor_budget(std::size_t in_use, bool has_payload) {
  if (in_use < descriptor_budget_) return false;
  if (has_payload) stats_.drop(Drop::descriptor_limit);
  const double now = ev_now(loop_);
  if (now - descriptor_logged_ < 10.0) {
    ++descriptor_held_;
    return true;
  }
  LOG_WARN("new bindings refused: %zu descriptors in use (%zu bindings) of a budget of %zu, "
           "the open-file limit less a reserve for control and tunnel connections; raise "
           "the limit (LimitNOFILE=)%s",
           in_use, table_.size(), descriptor_budget_,
           wire::LogLimiter::note(descriptor_held_).c_str());
  descriptor_logged_ = now;
  descriptor_held_ = 0;
  return true;
}

void ProxyBase::watch_own_addresses() {
  own_monitor_ = std::make_unique<pm::AddressMonitor>(loop_, own_addresses_);
  std::string err;
  if (!own_monitor_->start(&err))
    LOG_WARN("cannot follow this host's addresses (%s): the loop checks use the %zu seen now",
             err.c_str(), own_addresses_.size());
}

void ProxyBase::refuse(Drop d, bool datagram, const char* what, const Endpoint& from,
                       const Endpoint& to, const char* why) {
  if (datagram) stats_.drop(d);
  std::uint64_t held = 0;
  if (log::enabled(log::Level::Info) &&
      refuse_log_[static_cast<std::size_t>(d)].allow(ev_now(loop_), &held))
    LOG_INFO("%s %s -> %s refused: %s%s", what, from.str().c_str(), to.str().c_str(), why,
              wire::LogLimiter::note(held).c_str());
}

}  // namespace mpudp

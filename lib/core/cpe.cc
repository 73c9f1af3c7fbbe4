#include "core/cpe.h"

#include <algorithm>

#include "core/tls_setup.h"
#include "ctl/log.h"
#include "tunnel/tls_transport.h"
#include "io/socket.h"

namespace mpudp {
namespace {
constexpr std::size_t kReplySockets = 1024;
constexpr std::chrono::milliseconds kBackoffMin{200};
constexpr std::chrono::milliseconds kBackoffMax{10000};
// After an established session is lost, this many redials wait kBackoffMin (jittered)
// before the doubling starts: with one of three concentrators dead and still in the
// balancer's map, four quick attempts all land on it one time in 81.
constexpr int kQuickRedials = 3;
// From connect() to the TCP handshake's end, and again from there to the concentrator's
// proof of the key.
constexpr std::chrono::seconds kHandshakeDeadline{5};
}  // namespace

// Per-binding mode: the binding's own connection, aborted (MP_FASTCLOSE) with it. It hears
// the connection's events and passes them on with its handshake and binding.
struct CpeProxy::BindingConn final : BindingEdge, ConnectionHandler {
  BindingConn(CpeProxy& p, Binding& b) : proxy(p), binding(&b) {}
  void on_connected(Connection& c) override { proxy.on_connected(c); }
  void on_secured(Connection& c) override { proxy.on_secured(c); }
  void on_frame(Connection& c, const wire::Frame& f) override {
    if (binding != nullptr) proxy.on_tunnel_frame(c, hs, f);  // else: being aborted
  }
  void on_frames_done(Connection& c) override { proxy.on_frames_done(c); }
  void on_closed(Connection&, std::string_view reason) override {
    proxy.on_binding_conn_closed(*this, reason);
  }

  CpeProxy& proxy;
  Binding* binding;  // null once the binding is gone
  std::unique_ptr<Connection> conn;
  wire::Handshake hs;
};

// Redundant delivery: one uplink's copy carrier. It hears its connection's events and
// passes them on with its handshake; it outlives the connection (redials).
struct CpeProxy::Carrier final : ConnectionHandler {
  Carrier(CpeProxy& p, unsigned s, std::string ifname, bool is_spare, std::uint8_t uplink)
      : proxy(p), slot(s), interface(std::move(ifname)), spare(is_spare), path(uplink),
        timer(p.loop_, [this] { proxy.connect_carrier(*this); }) {}
  void on_connected(Connection& c) override {
    c.start_handshake_deadline(kHandshakeDeadline);
  }
  void on_secured(Connection& c) override { proxy.on_secured(c); }
  void on_frame(Connection& c, const wire::Frame& f) override {
    proxy.on_tunnel_frame(c, hs, f);
  }
  void on_frames_done(Connection&) override { proxy.sends_.flush(); }
  void on_closed(Connection&, std::string_view reason) override {
    proxy.on_carrier_closed(*this, reason);
  }

  CpeProxy& proxy;
  unsigned slot;          // its bit in Flow::copy_known
  std::string interface;  // the uplink it is bound to
  bool spare;             // one of its uplink's spares (tunnel.copy_spares)
  std::uint8_t path;      // the uplink's place in paths[]
  std::unique_ptr<Connection> conn;
  wire::Handshake hs;
  Timer timer;
  std::chrono::milliseconds backoff{0};
  ExpressMeter budget;    // tunnel.copy_rate
  bool warned = false;    // a failing uplink is logged once until it comes up
};

CpeProxy::CpeProxy(Loop* loop, const Config& cfg, Stats& stats)
    : ProxyBase(loop, cfg, stats),
      // Cached sockets must leave room under the descriptor budget (OpenWrt's limit can
      // be as low as 1024) for the per-binding connections and the control socket.
      replies_(std::min(kReplySockets, descriptor_budget() / 2), sends_, stats),
      express_timer_(loop, [this] { connect_express(); }),
      reconnect_timer_(loop, [this] { connect_main(); }),
      rng_(std::random_device{}()) {}

CpeProxy::~CpeProxy() { shutdown(); }

bool CpeProxy::start(std::string* err) {
  if (!start_tls(err)) return false;
  if (!tls_ && !cfg_.auth.none && cfg_.auth.psk.empty()) {
    if (err) *err = "no pre-shared key loaded (auth: {psk_file: ...}, or auth: none)";
    return false;
  }
  if (!wire::auth_init()) {
    if (err) *err = "OpenSSL has no HMAC-SHA256 or no entropy source";
    return false;
  }
  if (tls_ && cfg_.auth.mode == Config::AuthMode::SharedKey)
    LOG_WARN("auth: {psk_file} alone: TLS with the one key every CPE shares (identity \"%s\"): "
             "give this CPE an identity and a key of its own (auth: {identity, psk_file}; "
             "docs/CONFIG.md, \"auth\")",
             kSharedKeyIdentity);
  watch_own_addresses();
  {
    std::string e;
    icmp_ = IcmpErrors::open(stats_, &e);
    if (!icmp_)
      LOG_WARN("%s: clients will not hear of closed ports or a smaller path MTU behind the "
               "concentrator (ICMP transparency off)", e.c_str());
  }
  if (cfg_.intercept == InterceptMode::Nfqueue) {
    NfqueueIntercept::Options o;
    o.queue = cfg_.nfqueue.queue;
    o.fail_open = cfg_.nfqueue.fail_open;
    std::string e;
    nfqueue_ = NfqueueIntercept::open(loop_, o, *this, stats_, &e);
    if (nfqueue_) raw_ = RawReplies::open(stats_, &e);
    if (!nfqueue_ || !raw_) {
      if (err) *err = "NFQUEUE " + std::to_string(o.queue) + ": " + e;
      return false;
    }
    LOG_INFO("cpe: intercepting from NFQUEUE %u (fail %s), concentrator %s, %s sessions",
             o.queue, o.fail_open ? "open" : "closed", cfg_.cpe.concentrator.str().c_str(),
             to_string(cfg_.session_mode));
    if (cfg_.session_mode == SessionModeConfig::Multiplexed) connect_main();
    return true;
  }
  for (Family fam : {Family::V4, Family::V6}) {
    std::string e;
    auto s = TproxySocket::open(loop_, fam, cfg_.cpe.tproxy_port, batch_, *this, stats_, &e);
    if (!s) {
      if (err) *err = std::string("TPROXY socket (") + (fam == Family::V4 ? "IPv4" : "IPv6") +
                      ", port " + std::to_string(cfg_.cpe.tproxy_port) + "): " + e;
      return false;
    }
    lan_.push_back(std::move(s));
  }
  LOG_INFO("cpe: intercepting on port %u, concentrator %s, %s sessions", cfg_.cpe.tproxy_port,
           cfg_.cpe.concentrator.str().c_str(), to_string(cfg_.session_mode));
  if (cfg_.session_mode == SessionModeConfig::Multiplexed) connect_main();
  return true;
}

std::unique_ptr<Connection> CpeProxy::open_connection(ConnectionHandler& handler,
                                                       wire::Handshake& hs, std::string* err,
                                                       std::uint64_t express_token,
                                                       const Endpoint* to,
                                                       const std::string* device,
                                                       bool spare) {
  const auto ka = cfg_.session_mode == SessionModeConfig::Multiplexed
                      ? ConnectionOptions::Keepalive::Probe
                      : ConnectionOptions::Keepalive::Off;
  auto c = Connection::connect(conn_ctx(), to != nullptr ? *to : cfg_.cpe.concentrator,
                               connection_options(cfg_, ka), handler, err, new_transport(),
                               device != nullptr ? *device : std::string());
  if (!c) return nullptr;
  // From the connect() on, not only from the TCP handshake: a dead concentrator whose
  // address still draws SYNs (a balancer that has not noticed) would otherwise hold the
  // attempt for the kernel's SYN retries, two minutes. on_connected re-arms it.
  c->start_handshake_deadline(kHandshakeDeadline);
  // Inside TLS, which has authenticated both ends before a frame leaves, the HELLO is
  // version 2 and carries no key proof; in clear text it is version 1 with the HMAC
  // handshake (or none, with auth: none).
  if (tls_)
    hs = wire::Handshake(wire::Role::Cpe, {}, wire::kVersionTls);
  else
    hs = wire::Handshake(wire::Role::Cpe,
                         std::span(reinterpret_cast<const std::uint8_t*>(cfg_.auth.psk.data()),
                                   cfg_.auth.psk.size()));
  // The HELLO leaves with the handshake's first write (with TLS: its first record).
  // Without a key, frames follow it at once; with one they queue behind the AUTH slot
  // until the concentrator has proved the key, so no datagram leaves towards an impostor
  // and none is lost waiting. With TLS they wait for the TLS handshake, for the same
  // reason.
  wire::Hello hello = hs.first_hello(wire_mode(cfg_.session_mode));
  if (cfg_.session_mode == SessionModeConfig::Multiplexed && cfg_.tunnel.express) {
    hello.capabilities |= wire::kCapExpress;
    hello.express_token = express_token;
    if (device != nullptr) hello.capabilities |= wire::kCapCopy;
    if (spare) hello.capabilities |= wire::kCapCopySpare;
  }
  // Only a CPE that can send the errors asks for them.
  if (icmp_) hello.capabilities |= wire::kCapIcmp;
  c->send(hello);
  if (hs.authenticating() && !c->reserve_held_slot(wire::Auth{})) {
    if (err) *err = "cannot queue the AUTH frame";
    return nullptr;
  }
  return c;
}

void CpeProxy::connect_main() {
  std::string err;
  main_ = open_connection(*this, main_hs_, &err);
  if (!main_) {
    stats_.add(Counter::tunnel_connect_failures);
    LOG_WARN("tunnel to %s: %s", cfg_.cpe.concentrator.str().c_str(), err.c_str());
    schedule_reconnect();
  }
}

double CpeProxy::next_backoff(std::chrono::milliseconds& b) {
  b = b.count() == 0 ? kBackoffMin : std::min(b * 2, kBackoffMax);
  // Jitter, so that many CPEs cut off together do not come back in lockstep.
  std::uniform_real_distribution<double> jitter(0.75, 1.25);
  return std::chrono::duration<double>(b).count() * jitter(rng_);
}

void CpeProxy::schedule_reconnect() {
  if (stopping_) return;
  double wait = 0;
  if (quick_redials_ > 0) {
    --quick_redials_;
    std::chrono::milliseconds first{0};  // kBackoffMin, jittered; backoff_ stays put
    wait = next_backoff(first);
  } else {
    wait = next_backoff(backoff_);
  }
  LOG_INFO("reconnecting to %s in %.1f s", cfg_.cpe.concentrator.str().c_str(), wait);
  reconnect_timer_.start(wait);
}

void CpeProxy::connect_express() {
  if (stopping_ || express_ || express_token_ == 0 || !main_ || !main_hs_.done()) return;
  std::string err;
  const Endpoint& to = direct_.valid() ? direct_ : cfg_.cpe.concentrator;
  express_ = open_connection(*this, express_hs_, &err, express_token_, &to);
  if (!express_) {
    LOG_WARN("express connection to %s: %s", to.str().c_str(), err.c_str());
    drop_express(true);
    return;
  }
  express_->make_express();
}

void CpeProxy::drop_express(bool again) {
  if (express_) {
    express_->close();
    deferred_.destroy_later(std::move(express_));
  }
  express_timer_.stop();
  if (again && !stopping_ && express_token_ != 0 && main_ && main_hs_.done())
    express_timer_.start(next_backoff(express_backoff_));
}

void CpeProxy::connect_carriers() {
  if (stopping_ || !copy_offered_) return;
  if (carriers_.empty()) {
    // Every uplink's carrier first, then a round of spares per tunnel.copy_spares while
    // slots are left: with more than four uplinks the spares are what goes without.
    for (unsigned round = 0; round <= cfg_.tunnel.copy_spares; ++round) {
      const bool spare = round > 0;
      for (std::size_t i = 0; i < cfg_.paths.size(); ++i) {
        const Config::Path& p = cfg_.paths[i];
        if (!p.carries_copies() || carriers_.size() == kMaxCopyCarriers) continue;
        carriers_.push_back(std::make_unique<Carrier>(*this,
                                                      static_cast<unsigned>(carriers_.size()),
                                                      p.interface, spare,
                                                      static_cast<std::uint8_t>(i)));
      }
    }
    if (carriers_.empty())
      LOG_WARN("tunnel.copies: no path carries copies (paths[] lists no uplink, or only "
               "backup ones without copies: true): light flows keep to the express connection");
  }
  for (auto& k : carriers_) connect_carrier(*k);
}

void CpeProxy::connect_carrier(Carrier& k) {
  if (stopping_ || k.conn || !copy_offered_ || express_token_ == 0 || !main_ ||
      !main_hs_.done())
    return;
  std::string err;
  const Endpoint& to = direct_.valid() ? direct_ : cfg_.cpe.concentrator;
  k.conn = open_connection(k, k.hs, &err, express_token_, &to, &k.interface, k.spare);
  if (!k.conn) {
    if (!k.warned)
      LOG_WARN("copy carrier over %s to %s: %s", k.interface.c_str(), to.str().c_str(),
               err.c_str());
    k.warned = true;
    drop_carrier(k, true);
    return;
  }
  k.conn->make_carrier(k.interface);
  k.conn->spare = k.spare;
}

void CpeProxy::drop_carrier(Carrier& k, bool again) {
  if (k.conn) {
    k.conn->close();
    deferred_.destroy_later(std::move(k.conn));
  }
  k.timer.stop();
  if (again && !stopping_ && copy_offered_ && main_ && main_hs_.done())
    k.timer.start(next_backoff(k.backoff));
}

void CpeProxy::on_carrier_closed(Carrier& k, std::string_view reason) {
  if (!k.conn) return;
  const bool tls_logged = log_tls_failure(*k.conn, "copy carrier to " + k.conn->peer().str());
  if (!tls_logged && !k.warned)
    PEER_WARN(k.conn->identity(), "copy carrier over %s to %s lost: %.*s", k.interface.c_str(),
              k.conn->peer().str().c_str(), static_cast<int>(reason.size()), reason.data());
  k.warned = true;
  drop_carrier(k, true);
}

CpeProxy::Carrier* CpeProxy::carrier_of(const Connection& c) {
  for (auto& k : carriers_)
    if (k->conn.get() == &c) return k.get();
  return nullptr;
}

// Every binding's the same: the session's carriers (none in per-binding mode, where
// tunnel.copies is refused).
std::size_t CpeProxy::copy_lanes_for(const Binding&, CopyLanes& out) {
  std::size_t n = 0;
  for (auto& k : carriers_)
    if (k->conn && k->conn->open() && k->hs.done())
      out[n++] = CopyLane{k->conn.get(), &k->budget, k->slot, k->spare, k->conn->stalled(),
                          k->path, k->conn->recovering(), k->conn->exposure()};
  return n;
}

Connection* CpeProxy::connection_for(Binding& b) {
  if (cfg_.session_mode == SessionModeConfig::Multiplexed) return main_.get();
  auto* edge = static_cast<BindingConn*>(b.edge.get());
  return edge ? edge->conn.get() : nullptr;
}

void CpeProxy::on_lan_datagram(const Endpoint& client, const Endpoint& orig_dst,
                               std::span<const std::uint8_t> payload, std::uint8_t dscp) {
  if (client.family != orig_dst.family) {
    stats_.drop(Drop::family_mismatch);
    return;
  }
  if (!lan_destination_ok(client, orig_dst)) return;
  Binding* b = table_.find(0, client);
  if (b == nullptr) {
    if (main_ && main_->congested()) {
      stats_.drop(Drop::tunnel_congested_new_flow);
      return;
    }
    // Per-binding mode holds a connection per binding, besides the cached reply sockets.
    if (cfg_.session_mode == SessionModeConfig::PerBinding &&
        at_descriptor_budget(table_.size() + replies_.size(), true))
      return;
    // With cpe.max_bindings_per_host, each LAN host is a tenant of its own: one cycling
    // source ports evicts its own oldest bindings, never another host's.
    b = table_.create(0, client,
                      cfg_.cpe.max_bindings_per_host != 0 ? client.address_str() : std::string());
    if (b == nullptr) {
      stats_.drop(table_.full() ? Drop::binding_table_full : Drop::binding_refused);
      return;
    }
    if (cfg_.session_mode == SessionModeConfig::PerBinding) {
      std::string err;
      auto edge = std::make_unique<BindingConn>(*this, *b);
      edge->conn = open_connection(*edge, edge->hs, &err);
      if (!edge->conn) {
        LOG_WARN("tunnel for %s: %s", client.str().c_str(), err.c_str());
        stats_.add(Counter::tunnel_connect_failures);
        table_.remove(*b, RemoveReason::Refused);
        stats_.drop(Drop::tunnel_down);
        return;
      }
      b->edge = std::move(edge);
    }
    on_created(*b);
  }
  table_.touch(*b);
  Connection* c = connection_for(*b);
  if (c == nullptr || !c->usable()) {
    stats_.drop(Drop::tunnel_down);
    return;
  }
  Flow* f = b->find_flow(orig_dst);
  if (f == nullptr) {
    f = table_.add_flow(*b, orig_dst, table_.allocate_flow_id(0, 0));
    if (f == nullptr) {
      stats_.drop(Drop::remote_limit);
      return;
    }
    f->copy_class = cfg_.tunnel.copies && cfg_.cpe.copy_classes.matches(client, orig_dst);
  }
  // A marked datagram puts its whole flow in the class: a phone marks its voice EF, and
  // its few unmarked ones (a re-INVITE, STUN) belong to the same call.
  if (dscp != 0 && !f->copy_class && cfg_.tunnel.copies &&
      cfg_.cpe.copy_classes.matches_dscp(dscp))
    f->copy_class = true;
  send_upstream(*c, *b, *f, payload);
}

bool CpeProxy::lan_destination_ok(const Endpoint& client, const Endpoint& orig_dst) {
  // Sent to the CPE itself (its intercept port from the WAN side, one of its addresses
  // from the LAN): through the tunnel the concentrator would send it back here, and
  // round again. Embedded IPv4 forms (NAT64, 6to4, mapped) count as the address inside.
  if (own_addresses_.covers(orig_dst)) {
    refuse(Drop::loop_refused, true, "datagram", client, orig_dst, "the CPE's own address");
    return false;
  }
  if (orig_dst.port == 0) {
    refuse(Drop::port_zero, true, "datagram", client, orig_dst, "port 0");
    return false;
  }
  return true;
}

void CpeProxy::send_upstream(Connection& c, Binding& b, Flow& f,
                             std::span<const std::uint8_t> payload) {
  // Light flows take the express connection once its own handshake is done.
  Connection* express = express_ && express_hs_.done() && &c == main_.get() &&
                                !express_->pathless()
                            ? express_.get()
                            : nullptr;
  if (!tunnel_datagram(c, express, b, f, payload)) return;
  b.upstream.datagrams++;
  b.upstream.bytes += payload.size();
}

void CpeProxy::deliver(Binding& b, const Endpoint& from, std::span<const std::uint8_t> payload) {
  table_.touch(b);
  // NFQUEUE mode answers with raw packets (no transparent bind per destination); what
  // exceeds the MTU goes through a transparent socket, which the kernel can fragment.
  if (raw_) {
    if (!sends_.empty()) sends_.flush();  // a raw reply must not overtake batched ones
    const auto r = raw_->send(from, b.client, payload);
    if (r == RawReplies::Result::Sent) {
      b.downstream.datagrams++;
      b.downstream.bytes += payload.size();
      return;
    }
    if (r == RawReplies::Result::Failed) {
      stats_.drop(Drop::send_failed);
      return;
    }
  }
  replies_.send(from, b.client, payload, &b.downstream.datagrams, &b.downstream.bytes);
}

void CpeProxy::on_connected(Connection& c) {
  c.start_handshake_deadline(kHandshakeDeadline);
  if (&c == main_.get()) {
    // The backoff is reset only once the handshake completes: a concentrator that
    // accepts TCP but refuses our key must not be redialled five times a second.
    PEER_INFO(c.identity(), "tunnel up to %s over %s", c.peer().str().c_str(),
              c.is_mptcp() ? "MPTCP" : "TCP");
  }
}

void CpeProxy::on_secured(Connection& c) {
  const TlsSession* t = c.tls();
  if (t == nullptr) return;
  // The peer here is the concentrator: its certificate's name when it has one.
  if (!t->peer_certificate_name().empty()) c.set_identity(t->peer_certificate_name());
  PEER_DEBUG(c.identity(), "tunnel to %s: TLS %s (%s, %s)%s", c.peer().str().c_str(),
             t->resumed() ? "resumed" : "established", t->cipher().c_str(),
             t->key_exchange_group().c_str(),
             t->peer_certificate_name().empty()
                 ? ""
                 : (" concentrator " + t->peer_certificate_name()).c_str());
}

void CpeProxy::auth_failed(Connection& c, wire::AuthFailure why) {
  stats_.add(Counter::auth_failures);
  std::uint64_t held = 0;
  // Per-binding mode makes a connection per client: one line per second per reason.
  if (auth_log_.allow(why, ev_now(loop_), &held))
    PEER_ERROR(c.identity(), "tunnel to %s: authentication failed: %s; closing%s",
               c.peer().str().c_str(), wire::to_string(why), wire::LogLimiter::note(held).c_str());
  c.fail("authentication failed");
}

void CpeProxy::on_frame(Connection& c, const wire::Frame& frame) {
  if (&c == main_.get()) on_tunnel_frame(c, main_hs_, frame);
  else if (&c == express_.get()) on_tunnel_frame(c, express_hs_, frame);
  // carriers' frames come through their Carrier
}

void CpeProxy::on_tunnel_frame(Connection& c, wire::Handshake& hs, const wire::Frame& frame) {
  const bool datagram = count_rx_datagram(frame);
  const auto step = hs.on_frame(frame);
  if (step == wire::Handshake::Step::Failed) {
    if (datagram) stats_.drop(Drop::protocol_error);
    auth_failed(c, hs.failure());
    return;
  }
  if (step != wire::Handshake::Step::Deliver) {
    if (std::holds_alternative<wire::Hello>(frame) &&
        hs.peer_hello().mode != wire_mode(cfg_.session_mode)) {
      PEER_ERROR(c.identity(), "peer %s is not a concentrator in %s mode: closing",
                 c.peer().str().c_str(), to_string(cfg_.session_mode));
      c.fail("unexpected HELLO");
      return;
    }
    if (const auto* h = std::get_if<wire::Hello>(&frame)) {
      const bool offered = (h->capabilities & wire::kCapExpress) != 0 && h->express_token != 0;
      if (&c == main_.get()) {
        express_token_ = offered && cfg_.tunnel.express ? h->express_token : 0;
        copy_offered_ = (h->capabilities & wire::kCapCopy) != 0 && cfg_.tunnel.copies;
        // Inside TLS the token is the main session's exporter value, which the
        // concentrator derives the same way: one that differs is not from our session.
        if (express_token_ != 0 && c.tls() != nullptr &&
            express_token_ != express_token_of(*c.tls())) {
          PEER_WARN(c.identity(), "express connection to %s: the offered token is not this "
                    "session's; one connection it is", c.peer().str().c_str());
          express_token_ = 0;
        }
        if (express_token_ == 0) copy_offered_ = false;
        if (cfg_.tunnel.copies && !copy_offered_)
          PEER_WARN(c.identity(), "tunnel.copies: the concentrator at %s does not take copy "
                    "carriers (tunnel.copies off there, or express): no redundant delivery",
                    c.peer().str().c_str());
        direct_ = {};
        if ((h->capabilities & wire::kCapDirect) != 0) {
          if (wire::direct_usable(h->direct, cfg_.cpe.concentrator)) {
            direct_ = h->direct;
            PEER_INFO(c.identity(), "tunnel to %s: the concentrator's own address is %s",
                      c.peer().str().c_str(), direct_.str().c_str());
            // Joins reach that address only from fullmesh or laminar endpoints (the C flag
            // forbids joining the balanced one): with subflow endpoints alone, one join
            // at most, over the first uplink (measured on 6.18, docs/SCALE.md). The
            // address dialled at another port is one of several daemons of one host
            // (concentrator.instance_port): joins go to the dialled address as always.
            const bool same_host = direct_.same_address(c.peer());
            const bool joins_ok = same_host ||
                std::any_of(cfg_.paths.begin(), cfg_.paths.end(),
                            [](const Config::Path& p) { return p.fullmesh || p.laminar; });
            if (!cfg_.paths.empty() && !joins_ok && !warned_no_fullmesh_) {
              warned_no_fullmesh_ = true;
              LOG_WARN("the concentrator named its own address (it sits behind a load "
                       "balancer): paths without fullmesh or laminar will not join it over "
                       "every uplink (docs/SCALE.md)");
            }
          } else {
            // Not fatal: the express connection goes to the configured address, as
            // with a concentrator that names none (it may land on another machine and
            // be refused, leaving the session on one connection).
            stats_.add(Counter::direct_address_ignored);
            PEER_WARN(c.identity(), "tunnel to %s: ignoring the direct address %s it named "
                      "(not a unicast address and port of the family of %s)",
                      c.peer().str().c_str(), h->direct.str().c_str(),
                      cfg_.cpe.concentrator.str().c_str());
          }
        }
      } else if (&c == express_.get() && (!offered || h->express_token != express_token_)) {
        // The concentrator no longer offers it (reconfigured): stay on the main one.
        PEER_INFO(c.identity(), "express connection to %s: not offered; one connection it is",
                  c.peer().str().c_str());
        express_token_ = 0;
        drop_express(false);
        return;
      } else if (Carrier* k = carrier_of(c);
                 k != nullptr && (!offered || h->express_token != express_token_ ||
                                  (h->capabilities & wire::kCapCopy) == 0)) {
        PEER_WARN(c.identity(), "copy carrier over %s to %s: not taken; no copies on it",
                  k->interface.c_str(), c.peer().str().c_str());
        stats_.add(Counter::copy_carrier_refused);
        drop_carrier(*k, false);
        return;
      }
    }
    if (step == wire::Handshake::Step::Authenticated &&
        !c.fill_held_slot(wire::Auth{hs.proof()})) {
      // Cannot happen with a slot reserved in open_connection; if it did, the held
      // frames would never leave, so give the connection up rather than hang.
      c.fail("internal error: no AUTH slot");
      return;
    }
    if (hs.done()) {
      c.handshake_complete();
      if (&c == main_.get()) {
        backoff_ = std::chrono::milliseconds(0);
        connect_express();
        connect_carriers();
      } else if (Carrier* k = carrier_of(c)) {
        k->backoff = std::chrono::milliseconds(0);
        k->warned = false;
        stats_.add(Counter::copy_carrier_connects);
        PEER_INFO(c.identity(), "%scopy carrier up to %s over %s", k->spare ? "spare " : "",
                  c.peer().str().c_str(), k->interface.c_str());
      } else if (&c == express_.get()) {
        express_backoff_ = std::chrono::milliseconds(0);
        PEER_INFO(c.identity(), "express connection up to %s over %s", c.peer().str().c_str(),
                  c.is_mptcp() ? "MPTCP" : "TCP");
      }
      PEER_DEBUG(c.identity(), "tunnel to %s: handshake complete (%s)", c.peer().str().c_str(),
                 hs.authenticating() ? "key verified" : "auth: none");
    }
    return;
  }
  if (const auto* d = std::get_if<wire::Data>(&frame)) {
    Binding* b = table_.find_by_flow(0, d->flow_id);
    Flow* f = b ? b->find_flow_id(d->flow_id) : nullptr;
    if (f == nullptr) {
      stats_.drop(Drop::unknown_flow);
      if (c.send(wire::Reset{d->flow_id, wire::ResetReason::UnknownFlow}))
        stats_.add(Counter::resets_tx);
      return;
    }
    if (d->sequenced && !first_copy(c, *f, *d)) return;
    deliver(*b, f->remote, d->payload);
  } else if (const auto* o = std::get_if<wire::Open>(&frame)) {
    // A remote the client has not sent to answered through the concentrator's mapping.
    Binding* b = table_.find(0, o->client);
    Flow* f = nullptr;
    if (b != nullptr) {
      f = b->find_flow_id(o->flow_id);
      if (f == nullptr) f = table_.add_flow(*b, o->remote, o->flow_id);
    }
    if (f == nullptr || f->remote != o->remote) {
      if (o->has_payload) stats_.drop(b ? Drop::remote_limit : Drop::unknown_binding);
      if (c.send(wire::Reset{o->flow_id, b ? wire::ResetReason::Refused
                                           : wire::ResetReason::UnknownFlow}))
        stats_.add(Counter::resets_tx);
      return;
    }
    f->announced = true;
    f->express_conn = Flow::kKnownEverywhere;
    if (o->has_payload) deliver(*b, f->remote, o->payload);
  } else if (const auto* cl = std::get_if<wire::Close>(&frame)) {
    if (Binding* b = table_.find(0, cl->client)) table_.remove(*b, RemoveReason::PeerClosed);
  } else if (const auto* r = std::get_if<wire::Reset>(&frame)) {
    if (Binding* b = table_.find_by_flow(0, r->flow_id)) {
      LOG_DEBUG("concentrator reset flow %u (reason %u)", r->flow_id,
                static_cast<unsigned>(r->reason));
      table_.remove(*b, RemoveReason::PeerReset);
    }
  } else if (const auto* k = std::get_if<wire::Keepalive>(&frame)) {
    stats_.add(Counter::tunnel_keepalives_rx);
    if (k->reply_requested && c.send(wire::Keepalive{false}))
      stats_.add(Counter::tunnel_keepalives_tx);
  } else if (const auto* m = std::get_if<wire::Icmp>(&frame)) {
    stats_.add(Counter::icmp_frames_rx);
    Binding* b = table_.find_by_flow(0, m->flow_id);
    const Flow* f = b ? b->find_flow_id(m->flow_id) : nullptr;
    // An unknown flow is not answered with RESET: the error may simply have crossed a
    // CLOSE, and an error is information, never a reason to end a binding (nor, here,
    // to keep one alive: it does not touch the binding).
    if (f == nullptr || !icmp_) {
      stats_.add(Counter::lan_icmp_failed);
      return;
    }
    icmp_->send(f->remote, b->client, m->kind, m->mtu, m->length, ev_now(loop_));
  }
}

void CpeProxy::on_closed(Connection& c, std::string_view reason) {
  const bool tls_logged = log_tls_failure(c, "tunnel to " + c.peer().str());
  if (&c == express_.get()) {
    // The bindings live on the main connection: light flows go there meanwhile.
    if (!tls_logged)
      PEER_WARN(c.identity(), "express connection to %s lost: %.*s", c.peer().str().c_str(),
              static_cast<int>(reason.size()), reason.data());
    drop_express(true);
    return;
  }
  if (&c == main_.get()) {
    if (!tls_logged)
      PEER_WARN(c.identity(), "tunnel to %s lost: %.*s", c.peer().str().c_str(),
                static_cast<int>(reason.size()), reason.data());
    // The session, and with it the express connection's token, is gone on both sides.
    // A session that was up lost its concentrator: redial quickly a few times.
    if (main_hs_.done()) quick_redials_ = kQuickRedials;
    express_token_ = 0;
    direct_ = {};
    drop_express(false);
    copy_offered_ = false;
    for (auto& k : carriers_) drop_carrier(*k, false);
    carriers_.clear();
    table_.forget_announcements(0);
    deferred_.destroy_later(std::move(main_));
    schedule_reconnect();
    return;
  }
}

void CpeProxy::on_binding_conn_closed(BindingConn& edge, std::string_view reason) {
  if (edge.conn) log_tls_failure(*edge.conn, "tunnel to " + edge.conn->peer().str());
  if (Binding* b = edge.binding) {
    LOG_DEBUG("tunnel for %s ended: %.*s", b->client.str().c_str(),
              static_cast<int>(reason.size()), reason.data());
    table_.remove(*b, RemoveReason::SessionLost);
  }
}

void CpeProxy::on_binding_removed(Binding& b, RemoveReason why) {
  account_removal(b, why);
  if (cfg_.session_mode == SessionModeConfig::PerBinding) {
    if (auto* edge = static_cast<BindingConn*>(b.edge.get()); edge && edge->conn) {
      edge->binding = nullptr;
      // SO_LINGER 0: the kernel ends the MPTCP connection with MP_FASTCLOSE.
      edge->conn->abort();
    }
    deferred_.destroy_later(std::move(b.edge));
    return;
  }
  CopyLanes lanes;
  const std::size_t n = copy_lanes_for(b, lanes);
  send_close(main_.get(), express_ && express_hs_.done() ? express_.get() : nullptr, b, why,
             std::span(lanes.data(), n));
}

void CpeProxy::for_each_connection(const std::function<void(Connection&)>& fn) const {
  if (main_) fn(*main_);
  if (express_) fn(*express_);
  for (const auto& k : carriers_)
    if (k->conn) fn(*k->conn);
  table_.for_each([&fn](const Binding& b) {
    if (const auto* edge = static_cast<const BindingConn*>(b.edge.get()); edge && edge->conn)
      fn(*edge->conn);
  });
}

void CpeProxy::shutdown() {
  if (stopping_) return;
  stopping_ = true;
  reconnect_timer_.stop();
  table_.remove_scope(0, RemoveReason::Shutdown);
  if (express_ && express_->open()) express_->flush();  // what light flows queued last
  drop_express(false);
  for (auto& k : carriers_) {
    if (k->conn && k->conn->open()) k->conn->flush();
    drop_carrier(*k, false);
  }
  if (main_) {
    main_->flush();
    main_->close();
  }
  lan_.clear();
  nfqueue_.reset();
}

}  // namespace mpudp

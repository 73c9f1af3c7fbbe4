#include "core/concentrator.h"

#include <sys/resource.h>

#include <algorithm>
#include <netinet/in.h>

#include "core/tls_setup.h"
#include "ctl/log.h"
#include "tunnel/tls_transport.h"
#include "io/socket.h"

namespace mpudp {
namespace {
Admission::Limits admission_limits(const Config& cfg) {
  Admission::Limits l;
  l.max_handshaking = cfg.concentrator.max_handshaking;
  l.max_per_prefix = cfg.concentrator.max_handshaking_per_prefix;
  return l;
}

constexpr double kQuarantineSeconds = 3.0;

// Quarantined sockets hold descriptors that live bindings may need: at most an eighth of
// the open-file limit, and never more than 8192.
std::size_t max_quarantined() {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return 8192;
  return std::min<std::size_t>(8192, static_cast<std::size_t>(rl.rlim_cur / 8));
}
}  // namespace

ConcentratorProxy::ConcentratorProxy(Loop* loop, const Config& cfg, Stats& stats)
    : ProxyBase(loop, cfg, stats),
      admission_(admission_limits(cfg)),
      quarantine_timer_(loop, [this] { on_quarantine_timer(); }),
      binding_log_timer_(loop, [this] {
        if (binding_log_) binding_log_->flush();
      }) {
  deferred_.add_task([this] { reap_sessions(); });
}

ConcentratorProxy::~ConcentratorProxy() { shutdown(); }

void ConcentratorProxy::load_policy() {
  auto cidrs = [](const std::vector<std::string>& texts) {
    std::vector<Cidr> out;
    for (const auto& t : texts)
      if (auto c = Cidr::parse(t)) out.push_back(*c);  // the loader validated them
    return out;
  };
  policy_ = DestinationPolicy(cidrs(cfg_.concentrator.allow_destinations),
                              cidrs(cfg_.concentrator.deny_destinations));
  // Followed as they change: a CPE must not reach the concentrator's services through
  // it, nor send a datagram round to a CPE's tunnel address.
  policy_.follow(&own_addresses_, &cpe_addresses_);
}

void ConcentratorProxy::reload(const Config& cfg) {
  // First, so that bindings a lower limit evicts now are logged where the new settings say.
  apply_binding_log(cfg.concentrator.binding_log);
  ProxyBase::reload(cfg);
  load_policy();
  admission_.set_limits(admission_limits(cfg_));
  revoke_sessions();
}

void ConcentratorProxy::revoke_sessions() {
  if (!tls_) return;
  // A removed identity, a changed key or a newly revoked certificate ends that CPE's
  // sessions now; the others' go on untouched (their identities are still accepted).
  std::vector<Session*> gone;
  for (auto& [id, s] : sessions_) {
    const TlsSession* t = s->conn->tls();
    if (t == nullptr || !t->established() || !s->conn->usable()) continue;
    if (!t->still_accepted_by(*tls_)) gone.push_back(s.get());
  }
  for (Session* s : gone) {
    stats_.add(Counter::tls_revoked);
    PEER_WARN(s->conn->identity(), "session %u (%s): no longer accepted after reload; closing",
              s->conn->id(), s->conn->identity().data());
    s->conn->abort();
    end_session_later(s->conn->id());
  }
}

// Private, loopback, link-local and CGN ranges: an operator's own access network, where
// clear text may be a choice. Anything else (a wildcard included) reaches the Internet.
static bool private_address(const Endpoint& e) {
  static const char* const kPrivate[] = {"10.0.0.0/8",     "172.16.0.0/12", "192.168.0.0/16",
                                         "100.64.0.0/10",  "127.0.0.0/8",   "169.254.0.0/16",
                                         "fc00::/7",       "fe80::/10",     "::1/128"};
  for (const char* text : kPrivate)
    if (auto c = Cidr::parse(text); c && !e.is_unspecified() && c->contains(e)) return true;
  return false;
}

bool ConcentratorProxy::start(std::string* err) {
  if (!start_tls(err)) return false;
  // The loader guarantees a key or an explicit `auth: none`; a Config built some other
  // way must not end up as an open concentrator by accident either.
  if (!tls_ && !cfg_.auth.none && cfg_.auth.psk.empty()) {
    if (err) *err = "no pre-shared key loaded (auth: {psk_file: ...}, or auth: none)";
    return false;
  }
  if (!wire::auth_init()) {
    if (err) *err = "OpenSSL has no HMAC-SHA256 or no entropy source";
    return false;
  }
  if (tls_ && cfg_.auth.mode == Config::AuthMode::SharedKey)
    LOG_WARN("auth: {psk_file} alone: every CPE shares one key (TLS identity \"%s\"): they "
             "cannot be told apart or revoked one by one, and each can pose as this "
             "concentrator to the others; give each CPE its own (auth: {peers_file}, "
             "docs/CONFIG.md, \"auth\")",
             kSharedKeyIdentity);
  const bool cleartext = !tls_ || cfg_.tls.accept_cleartext;
  for (const Endpoint& at : cfg_.concentrator.listen)
    if (cleartext && !private_address(at))
      LOG_WARN("serving clear text on %s, which is not a private address: datagrams, "
               "addresses and keys of %s CPEs cross the uplinks unencrypted and unprotected",
               at.str().c_str(), tls_ ? "accept_cleartext" : "all");
  if (cfg_.concentrator.binding_log.enabled()) {
    std::string e;
    binding_log_ = open_binding_log(cfg_.concentrator.binding_log, stats_, &e);
    if (!binding_log_) {
      if (err) *err = "concentrator.binding_log: " + e;
      return false;
    }
    LOG_INFO("binding log: %s", binding_log_->target().c_str());
  }
  watch_own_addresses();
  load_policy();
  if (cfg_.concentrator.reuse_port) {
    const auto [lo, hi] = local_port_range();
    mappings_.set_sibling_ports(lo, hi);
  }
  std::vector<Endpoint> listen = cfg_.concentrator.listen;
  direct_ = direct_endpoint(cfg_);
  if (direct_.valid()) {
    if (!listens_on(listen, direct_)) listen.push_back(direct_);
    check_join_sysctl();
  }
  // concentrator.instance_port: the same addresses at this daemon's own port, not shared.
  const std::size_t shared = listen.size();
  if (const std::uint16_t ip = cfg_.concentrator.instance_port; ip != 0)
    for (std::size_t i = 0; i < shared; ++i) {
      Endpoint own = listen[i];
      own.port = ip;
      if (!listens_on(listen, own)) listen.push_back(own);
    }
  for (std::size_t i = 0; i < listen.size(); ++i) {
    const Endpoint& at = listen[i];
    std::string e;
    auto l = Listener::open(
        loop_, at, cfg_.concentrator.reuse_port && i < shared,
        [this](Fd fd, const Endpoint& peer) { on_accept(std::move(fd), peer); }, &e);
    if (!l) {
      if (err) *err = "listen " + at.str() + ": " + e;
      return false;
    }
    LOG_INFO("concentrator: listening on %s%s", at.str().c_str(),
             at == direct_                               ? " (direct_address)"
             : i >= shared                               ? " (instance_port)"
             : cfg_.concentrator.reuse_port ? " (shared: reuse_port)"
                                            : "");
    listeners_.push_back(std::move(l));
  }
  if (direct_.valid())
    LOG_INFO("concentrator: naming %s to CPEs as this concentrator's own address",
             direct_.str().c_str());
  return true;
}

void ConcentratorProxy::check_join_sysctl() {
  // Per network namespace. With 1 (the default) MP_CAPABLE lacks the C flag, and CPEs
  // also send joins to the balanced address, where the balancer hands most of them to
  // another concentrator: they fail (MPTcpExtMPJoinNoTokenFound there) and those
  // subflows are missing. Said, not changed: host settings are the operator's.
  const std::string v = read_first_line("/proc/sys/net/mptcp/allow_join_initial_addr_port");
  if (v == "1")
    LOG_WARN("concentrator.direct_address is set but net.mptcp.allow_join_initial_addr_port "
             "is 1: CPEs will also send joins to the balanced address, which may reach "
             "another concentrator; set it to 0 in this network namespace "
             "(docs/SCALE.md)");
}

std::string ConcentratorProxy::tenant_key(const Session& main) {
  // The CPE's authenticated identity: every connection of one CPE (per-binding mode
  // makes many, from several uplinks) shares the quota. Without TLS, its address. The
  // prefixes keep an identity from colliding with an address.
  if (const TlsSession* t = main.conn->tls(); t != nullptr && t->established())
    return "id:" + t->identity();
  return "addr:" + main.conn->peer().address_str();
}

void ConcentratorProxy::on_accept(Fd fd, const Endpoint& peer) {
  if (sessions_.size() >= cfg_.concentrator.max_sessions) {
    // Refused at once: closing costs the flooder a handshake and us nothing more.
    stats_.add(Counter::sessions_refused);
    LOG_DEBUG("connection from %s refused: %zu sessions", peer.str().c_str(), sessions_.size());
    return;
  }
  auto s = std::make_unique<Session>(*this);
  if (cfg_.concentrator.instance_port != 0) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&ss), &len) == 0)
      s->local = Endpoint::from_sockaddr(reinterpret_cast<const sockaddr*>(&ss), len)
                     .value_or(Endpoint{});
  }
  s->conn = Connection::adopt(conn_ctx(), std::move(fd), peer,
                              connection_options(cfg_, ConnectionOptions::Keepalive::Off), *s,
                              new_transport(cfg_.tls.accept_cleartext));
  // With TLS the frame handshake starts once TLS is up (on_secured); in clear text now.
  if (!tls_) s->hs = cleartext_handshake();
  // Until the CPE has completed TLS and said HELLO (in clear text: proved the key) it
  // gets nothing but the handshake, and only for this long.
  s->conn->start_handshake_deadline(cfg_.concentrator.handshake_timeout);
  stats_.add(Counter::tunnel_connects);
  LOG_DEBUG("session %u: connection from %s (%s)", s->conn->id(), peer.str().c_str(),
            s->conn->is_mptcp() ? "MPTCP" : "TCP");
  const std::uint32_t id = s->conn->id();
  sessions_.emplace(id, std::move(s));
  // Admitted always; at a cap an older handshaking connection makes room (admission.h).
  if (const auto d = admission_.admit(id, peer, ev_now(loop_)); d.evicted) evict_handshaking(d);
}

void ConcentratorProxy::evict_handshaking(const Admission::Decision& d) {
  const auto id = static_cast<std::uint32_t>(*d.evicted);
  stats_.add(d.why == Admission::Reason::PrefixCap ? Counter::preauth_evicted_prefix
                                                   : Counter::preauth_evicted_total);
  std::uint64_t held = 0;
  // A flood evicts one connection per connection it opens: one line a second.
  if (preauth_log_.allow(ev_now(loop_), &held))
    PEER_WARN(d.evicted_peer.str(),
              "session %u from %s: closed after %.1f s without authenticating, to admit a "
              "newer connection: %s%s",
              id, d.evicted_peer.str().c_str(), d.evicted_age, to_string(d.why),
              wire::LogLimiter::note(held).c_str());
  if (Session* v = session_of(id)) {
    v->conn->close();
    end_session_later(id);
  }
}

wire::Handshake ConcentratorProxy::cleartext_handshake() const {
  return wire::Handshake(
      wire::Role::Concentrator,
      std::span(reinterpret_cast<const std::uint8_t*>(cfg_.auth.psk.data()), cfg_.auth.psk.size()));
}

void ConcentratorProxy::on_secured(Session& s, Connection& c) {
  const TlsSession* t = c.tls();
  if (t == nullptr) {
    // accept_cleartext, and the CPE speaks version 1: its key check (with the shared key
    // when this concentrator has one, none otherwise).
    s.hs = cleartext_handshake();
    PEER_INFO(c.identity(), "session %u from %s: clear-text CPE (accept_cleartext)", c.id(),
              c.peer().str().c_str());
    return;
  }
  c.set_identity(t->identity());
  s.hs = wire::Handshake(wire::Role::Concentrator, {}, wire::kVersionTls);
  PEER_DEBUG(c.identity(), "session %u from %s: TLS %s (%s, %s)", c.id(), c.peer().str().c_str(),
             t->resumed() ? "resumed" : "established", t->cipher().c_str(),
             t->key_exchange_group().c_str());
}

ConcentratorProxy::Session* ConcentratorProxy::session_of(std::uint32_t scope) {
  auto it = sessions_.find(scope);
  return it == sessions_.end() ? nullptr : it->second.get();
}

void ConcentratorProxy::send_reset(Connection& c, std::uint32_t flow_id,
                                   wire::ResetReason why) {
  if (c.send(wire::Reset{flow_id, why})) stats_.add(Counter::resets_tx);
}

void ConcentratorProxy::on_frame(Session& s, Connection& c, const wire::Frame& frame) {
  // Every frame passes the handshake first: before it completes only HELLO and AUTH are
  // allowed, after it a second HELLO or AUTH is an error.
  const bool datagram = count_rx_datagram(frame);
  const auto step = s.hs.on_frame(frame);
  if (step == wire::Handshake::Step::Failed) {
    if (datagram) stats_.drop(Drop::protocol_error);
    reject_session(c, s.hs.failure(), "");
    return;
  }
  if (step == wire::Handshake::Step::SendChallenge) {
    const wire::Hello& h = s.hs.peer_hello();
    s.mode = h.mode;
    s.icmp = (h.capabilities & wire::kCapIcmp) != 0;
    wire::Hello reply = s.hs.reply_hello(h.mode);
    // Echoed: the CPE (and a capture) can tell that this concentrator sends them.
    if (s.icmp) reply.capabilities |= wire::kCapIcmp;
    if (cfg_.concentrator.instance_port != 0 && (direct_.valid() || s.local.valid())) {
      // One of several daemons on this host: the CPE's express connection must reach
      // this one, at its own port (on its direct address behind a balancer, else where
      // the CPE's connection arrived).
      reply.capabilities |= wire::kCapDirect;
      reply.direct = direct_.valid() ? direct_ : s.local;
      reply.direct.port = cfg_.concentrator.instance_port;
    } else if (direct_.valid()) {
      reply.capabilities |= wire::kCapDirect;
      reply.direct = direct_;
    }
    if (h.mode == wire::SessionMode::Multiplexed && (h.capabilities & wire::kCapExpress) &&
        cfg_.tunnel.express) {
      // A main connection gets the token to join with (usable once its key is proved);
      // an express one hears its own token back. Without the bit the CPE stays on one.
      reply.capabilities |= wire::kCapExpress;
      // Inside TLS the token is this session's exporter value (only its two ends can
      // compute it); in clear text a random one, as good as the key check before it.
      if (h.express_token == 0)
        s.token = c.tls() != nullptr ? express_token_of(*c.tls()) : wire::random_token();
      reply.express_token = h.express_token == 0 ? s.token : h.express_token;
      // Offered on a main connection, echoed to a carrier: this side takes copies.
      if (cfg_.tunnel.copies && (h.express_token == 0 || (h.capabilities & wire::kCapCopy)))
        reply.capabilities |= wire::kCapCopy;
    }
    c.send(reply);
    if (s.hs.authenticating()) c.send(wire::Auth{s.hs.proof()});
  }
  if (step != wire::Handshake::Step::Deliver) {
    if (s.hs.done()) {
      c.handshake_complete();
      admission_.authenticated(c.id());
      cpe_addresses_.add(c.id(), c.peer());
      const wire::Hello& h = s.hs.peer_hello();
      if (s.mode == wire::SessionMode::Multiplexed) {
        if ((h.capabilities & wire::kCapExpress) && h.express_token != 0 &&
            cfg_.tunnel.express &&
            !((h.capabilities & wire::kCapCopy) ? join_carrier(s, c) : join_express(s, c)))
          return;
        if (s.token != 0) tokens_[s.token] = c.id();
        c.set_options(connection_options(cfg_, ConnectionOptions::Keepalive::Expect));
      }
      c.report_fallback();
      PEER_INFO(c.identity(), "session %u from %s: %s over %s, %s", c.id(), c.peer().str().c_str(),
                s.mode == wire::SessionMode::PerBinding ? "per-binding"
                : s.carrier                             ? "copy carrier"
                : s.joined != 0                         ? "express connection"
                                                        : "multiplexed",
                c.is_mptcp() ? "MPTCP" : "TCP",
                c.tls() != nullptr         ? "TLS"
                : s.hs.authenticating()    ? "key verified"
                                           : "auth: none");
    }
    return;
  }
  // An express connection carries frames of its main session's bindings.
  Session* main = s.joined != 0 ? session_of(s.joined) : &s;
  if (main == nullptr) return;  // the main session is going; this one goes with it
  const std::uint32_t scope = s.scope();
  if (const auto* d = std::get_if<wire::Data>(&frame)) {
    Binding* b = table_.find_by_flow(scope, d->flow_id);
    Flow* f = b ? b->find_flow_id(d->flow_id) : nullptr;
    if (f == nullptr) {
      stats_.drop(Drop::unknown_flow);
      send_reset(c, d->flow_id, wire::ResetReason::UnknownFlow);
      return;
    }
    // The CPE's copies say whether the replies are copied whatever their rate (its
    // class). Its plain DATA says nothing: a classed flow past the carriers' budgets
    // goes plain for a while and stays in its class.
    if (d->sequenced) f->copy_class = d->copy_back;
    if (d->sequenced && !first_copy(c, *f, *d)) return;
    table_.touch(*b);
    f->client_sent = true;
    if (f->hairpin)
      hairpin(*b, f->remote, d->payload);
    else
      static_cast<RelaySocket*>(b->edge.get())->send_to(f->remote, d->payload);
  } else if (const auto* o = std::get_if<wire::Open>(&frame)) {
    on_open(*main, c, *o);
  } else if (const auto* cl = std::get_if<wire::Close>(&frame)) {
    if (Binding* b = table_.find(scope, cl->client)) table_.remove(*b, RemoveReason::PeerClosed);
  } else if (const auto* r = std::get_if<wire::Reset>(&frame)) {
    if (Binding* b = table_.find_by_flow(scope, r->flow_id))
      table_.remove(*b, RemoveReason::PeerReset);
  } else if (const auto* k = std::get_if<wire::Keepalive>(&frame)) {
    stats_.add(Counter::tunnel_keepalives_rx);
    if (k->reply_requested && c.send(wire::Keepalive{false}))
      stats_.add(Counter::tunnel_keepalives_tx);
  }
}

ConcentratorProxy::Session* ConcentratorProxy::joinable(Session& s, Connection& c,
                                                        Counter refused, const char* what) {
  const std::uint64_t token = s.hs.peer_hello().express_token;
  auto it = tokens_.find(token);
  Session* main = it == tokens_.end() ? nullptr : session_of(it->second);
  // Only after the key is proved, so a token cannot be guessed by someone without it.
  // Inside TLS the token is also worth nothing to another CPE: the express connection
  // must have authenticated as the same identity as the session it joins.
  const TlsSession* mine = c.tls();
  const TlsSession* theirs = main != nullptr ? main->conn->tls() : nullptr;
  const bool same_peer = (mine == nullptr && theirs == nullptr) ||
                         (mine != nullptr && theirs != nullptr &&
                          mine->identity() == theirs->identity());
  if (main == nullptr || !main->conn->open() || !same_peer) {
    stats_.add(refused);
    PEER_WARN(c.identity(), "session %u from %s: %s refused: %s", c.id(),
              c.peer().str().c_str(), what,
              main == nullptr || !main->conn->open() ? "unknown token"
                                                     : "the token belongs to another identity");
    c.close();
    end_session_later(c.id());
    return nullptr;
  }
  return main;
}

bool ConcentratorProxy::join_express(Session& s, Connection& c) {
  Session* main = joinable(s, c, Counter::express_refused, "express connection");
  if (main == nullptr) return false;
  // A CPE dials a new express connection only once it has lost the one before, which
  // this side may not have noticed yet (its keepalive deadline is a minute): the new one
  // replaces it.
  if (Session* old = main->express != 0 ? session_of(main->express) : nullptr) {
    LOG_INFO("session %u: express connection %u replaces %u", main->conn->id(), c.id(),
             old->conn->id());
    old->joined = 0;  // no longer serving the session: its end must not touch it
    old->conn->close();
    end_session_later(old->conn->id());
  }
  s.joined = main->conn->id();
  main->express = c.id();
  c.make_express();
  stats_.add(Counter::express_connects);
  return true;
}

bool ConcentratorProxy::join_carrier(Session& s, Connection& c) {
  if (!cfg_.tunnel.copies) {
    // The HELLO answer did not echo the bit: the CPE closes it too.
    stats_.add(Counter::copy_carrier_refused);
    c.close();
    end_session_later(c.id());
    return false;
  }
  Session* main = joinable(s, c, Counter::copy_carrier_refused, "copy carrier");
  if (main == nullptr) return false;
  // A free slot; with none, the oldest carrier goes. A carrier the CPE lost and redialled
  // keeps its slot here until this side notices (keepalives, a minute): its copies are
  // dropped meanwhile (copy_queue_sojourn), the other carriers still carry them. Not
  // replaced by address: two uplinks behind one NAT address would replace each other.
  const std::size_t none = main->carriers.size();
  std::size_t slot = none;
  for (std::size_t i = 0; i < main->carriers.size() && slot == none; ++i)
    if (main->carriers[i] == 0 || session_of(main->carriers[i]) == nullptr) slot = i;
  if (slot == none) {
    slot = static_cast<std::size_t>(
        std::min_element(main->carriers.begin(), main->carriers.end()) - main->carriers.begin());
    if (Session* old = session_of(main->carriers[slot])) {
      LOG_INFO("session %u: copy carrier %u replaces %u", main->conn->id(), c.id(),
               old->conn->id());
      old->joined = 0;
      old->conn->close();
      end_session_later(old->conn->id());
    }
  }
  main->carriers[slot] = c.id();
  // Flows announced on the carrier that had the slot are announced on this one again.
  table_.forget_copy_slot(main->conn->id(), static_cast<unsigned>(slot));
  s.joined = main->conn->id();
  s.carrier = true;
  s.slot = static_cast<unsigned>(slot);
  c.make_carrier("");
  c.spare = (s.hs.peer_hello().capabilities & wire::kCapCopySpare) != 0;
  stats_.add(Counter::copy_carrier_connects);
  return true;
}

std::size_t ConcentratorProxy::copy_lanes_for(const Binding& b, CopyLanes& out) {
  const Session* s = session_of(b.scope);
  return s != nullptr ? copy_lanes(*s, out) : 0;
}

std::size_t ConcentratorProxy::copy_lanes(const Session& s, CopyLanes& out) {
  std::size_t n = 0;
  for (std::uint32_t id : s.carriers) {
    if (id == 0) continue;
    Session* k = session_of(id);
    if (k == nullptr || !k->carrier || !k->conn->open()) continue;
    // Carriers from one address are taken for one uplink (CopyLane::path).
    std::uint8_t path = static_cast<std::uint8_t>(n);
    for (std::size_t j = 0; j < n; ++j)
      if (out[j].conn->peer().same_address(k->conn->peer())) {
        path = out[j].path;
        break;
      }
    out[n] = CopyLane{k->conn.get(), &k->budget, k->slot, k->conn->spare, k->conn->stalled(),
                      path, k->conn->recovering(), k->conn->exposure()};
    ++n;
  }
  return n;
}

Connection* ConcentratorProxy::express_of(const Session& s) {
  if (s.express == 0) return nullptr;
  Session* x = session_of(s.express);
  // One the CPE has lost may look open here for seconds yet: with its subflows reset
  // it delivers nothing, and the CPE, which sends its light flows on the main connection
  // until its new one joins, hears the replies there.
  return x != nullptr && x->conn->open() && !x->conn->pathless() ? x->conn.get() : nullptr;
}

void ConcentratorProxy::reject_session(Connection& c, wire::AuthFailure why,
                                       std::string_view detail) {
  stats_.add(Counter::auth_failures);
  std::uint64_t held = 0;
  // A flood of bad connections must not become a flood of log lines: one per second
  // per reason, with the count of the ones left out.
  if (auth_log_.allow(why, ev_now(loop_), &held))
    PEER_WARN(c.identity(), "session %u from %s: authentication failed: %s%s%.*s; closing%s",
              c.id(), c.peer().str().c_str(), wire::to_string(why), detail.empty() ? "" : ": ",
              static_cast<int>(detail.size()), detail.data(), wire::LogLimiter::note(held).c_str());
  c.close();
  end_session_later(c.id());
}

void ConcentratorProxy::on_open(Session& main, Connection& c, const wire::Open& o) {
  const std::uint32_t scope = main.conn->id();
  auto verdict = policy_.check_client(o.client);
  const bool client_ok = verdict == PolicyVerdict::Allow;
  if (client_ok) verdict = policy_.check(o.remote);
  // The public mapping of a live binding is one of the concentrator's own addresses, but
  // no loop: its datagrams never leave (hairpin()). Any other port there still is one.
  // Only the target's existence is settled here: creating this binding below may evict it.
  const bool own = verdict == PolicyVerdict::OwnAddress && o.remote.family == o.client.family;
  const bool hairpinned = own && mappings_.hairpin_target(o.remote, own_addresses_) != nullptr;
  // Another daemon's public mapping on this host (reuse_port): sent through the kernel.
  if (hairpinned || (own && mappings_.sibling_mapping(o.remote, own_addresses_)))
    verdict = PolicyVerdict::Allow;
  if (verdict != PolicyVerdict::Allow) {
    // Never relayed: counted, and the CPE drops the binding on the RESET.
    const Drop why = !client_ok                           ? Drop::client_refused
                     : is_loop(verdict)                   ? Drop::loop_refused
                     : verdict == PolicyVerdict::PortZero ? Drop::port_zero
                                                          : Drop::destination_refused;
    refuse(why, o.has_payload, "OPEN", o.client, o.remote, to_string(verdict));
    send_reset(c, o.flow_id, wire::ResetReason::Refused);
    if (Binding* b = table_.find(scope, o.client)) table_.remove(*b, RemoveReason::Refused);
    return;
  }
  Binding* b = table_.find(scope, o.client);
  if (b == nullptr) {
    if (at_descriptor_budget(descriptors_in_use(), o.has_payload)) {
      send_reset(c, o.flow_id, wire::ResetReason::Refused);
      return;
    }
    // At its quota (concentrator.max_bindings_per_cpe) the CPE's own oldest binding goes.
    b = table_.create(scope, o.client, tenant_key(main));
    const bool table_full = b == nullptr && table_.full();
    std::string err;
    std::unique_ptr<RelaySocket> sock;
    if (b != nullptr) {
      sock = RelaySocket::open(loop_, o.client.family, *b, batch_, sends_, *this, stats_, &err);
      if (!sock) {
        LOG_WARN("binding for %s: %s", o.client.str().c_str(), err.c_str());
        table_.remove(*b, RemoveReason::Refused);
        b = nullptr;
      }
    }
    if (b == nullptr) {
      if (o.has_payload) stats_.drop(table_full ? Drop::binding_table_full : Drop::binding_refused);
      send_reset(c, o.flow_id, wire::ResetReason::Refused);
      return;
    }
    if (binding_log_) log_binding_open(*b, *sock, o.remote);
    mappings_.add(o.client.family, sock->port(), *b);
    b->edge = std::move(sock);
    on_created(*b);
  }
  Flow* f = b->find_flow_id(o.flow_id);
  if (f != nullptr && f->remote != o.remote) {
    if (o.has_payload) stats_.drop(Drop::unknown_flow);
    send_reset(c, o.flow_id, wire::ResetReason::FlowIdInUse);
    return;
  }
  // The CPE announces a flow again on each connection it moves to: one flow still.
  const bool fresh = f == nullptr;
  if (fresh) f = table_.add_flow(*b, o.remote, o.flow_id);
  if (f == nullptr) {
    if (o.has_payload) stats_.drop(Drop::remote_limit);
    send_reset(c, o.flow_id, wire::ResetReason::Refused);
    return;
  }
  f->announced = true;
  f->express_conn = Flow::kKnownEverywhere;
  f->client_sent = true;
  if (fresh) {
    f->hairpin = hairpinned;
    stats_.add(Counter::flows_opened);
  }
  table_.touch(*b);
  if (!o.has_payload) return;
  if (f->hairpin)
    hairpin(*b, f->remote, o.payload);
  else
    static_cast<RelaySocket*>(b->edge.get())->send_to(f->remote, o.payload);
}

void ConcentratorProxy::hairpin(Binding& b, const Endpoint& to,
                                std::span<const std::uint8_t> payload) {
  Binding* target = mappings_.hairpin_target(to, own_addresses_);
  if (target == nullptr) {
    // The mapping ended (or the address went) since the flow began: what is left is the
    // concentrator's own address, refused as the loop it would be.
    refuse(Drop::loop_refused, true, "hairpin", b.client, to, "no live binding on that port");
    return;
  }
  // The source is b's public mapping as the target's client must answer it: the address
  // the datagram was sent to (the sockets are bound to the wildcard, so any of the
  // concentrator's addresses is b's too) with b's port.
  Endpoint from = to;
  from.port = static_cast<const RelaySocket*>(b.edge.get())->port();
  b.upstream.datagrams++;
  b.upstream.bytes += payload.size();
  stats_.add(Counter::hairpin_datagrams);
  // `to` may be a flow of b's, which deliver() may move (b == target: a client that
  // sends to its own mapping); `from` is a copy.
  deliver(*target, from, payload, true);
}

void ConcentratorProxy::on_remote_datagram(Binding& b, const Endpoint& from,
                                           std::span<const std::uint8_t> payload) {
  deliver(b, from, payload, false);
}

void ConcentratorProxy::deliver(Binding& b, const Endpoint& from,
                                std::span<const std::uint8_t> payload, bool hairpinned) {
  Session* s = session_of(b.scope);
  if (s == nullptr || !s->conn->open()) {
    stats_.drop(Drop::tunnel_down);
    return;
  }
  Flow* f = b.find_flow(from);
  if (f == nullptr) {
    // A source the client could not have sent to (the concentrator itself, a CPE's
    // address, a refused range) must not reach it either; a live mapping of this
    // concentrator's, or of a sibling daemon's, is one it can send to.
    if (const auto verdict = policy_.check(from);
        verdict != PolicyVerdict::Allow && !hairpinned &&
        !(verdict == PolicyVerdict::OwnAddress &&
          mappings_.sibling_mapping(from, own_addresses_))) {
      refuse(Drop::reply_source_refused, true, "reply", from, b.client, to_string(verdict));
      return;
    }
  }
  // Endpoint-independent filtering (RFC 4787 REQ-8, the default): a remote the client has
  // not sent to may reach the binding's port; address-dependent: only from an address it
  // has sent to. Judged on a known flow too until the client sends on it: the flow may
  // date from endpoint-independent filtering before a reload.
  if ((f == nullptr || !f->client_sent) &&
      !filter_admits(cfg_.concentrator.filtering, b, from)) {
    refuse(Drop::filtered, true, "datagram", from, b.client,
           "address-dependent filtering, the client never sent to that address");
    return;
  }
  if (f == nullptr) {
    // The CPE learns the new pair from the OPEN tunnel_datagram() sends.
    f = table_.add_flow(b, from, table_.allocate_flow_id(b.scope, wire::kConcentratorFlowBit));
    if (f == nullptr) {
      stats_.drop(Drop::remote_limit);
      return;
    }
    // The client's answers to it must be hairpinned too, not sent to our own address.
    f->hairpin = hairpinned;
  }
  if (!tunnel_datagram(*s->conn, express_of(*s), b, *f, payload)) return;
  // Outbound traffic always refreshes the mapping (RFC 4787 REQ-6); inbound as set.
  if (cfg_.concentrator.refresh_on_inbound) table_.touch(b);
  b.downstream.datagrams++;
  b.downstream.bytes += payload.size();
}

void ConcentratorProxy::on_remote_error(Binding& b, const Endpoint& remote,
                                        wire::IcmpKind kind, std::uint16_t mtu,
                                        std::size_t length) {
  Session* s = session_of(b.scope);
  Flow* f = b.find_flow(remote);
  // The flow's remote is where the client sent to; an error about another remote (one
  // that only replied through the mapping) still has its flow. None: nothing to name.
  if (s == nullptr || !s->icmp || !s->conn->usable() || f == nullptr) {
    stats_.add(Counter::icmp_not_sent);
    return;
  }
  wire::Icmp m;
  m.flow_id = f->id;
  m.kind = kind;
  m.mtu = kind == wire::IcmpKind::TooBig ? mtu : 0;
  m.length = static_cast<std::uint16_t>(std::min<std::size_t>(length, 0xffff));
  // Not a datagram: it does not touch the binding's lifetime, and never ends it.
  if (s->conn->send(m)) stats_.add(Counter::icmp_frames_tx);
  else stats_.add(Counter::icmp_not_sent);
  LOG_DEBUG("binding %s: %s from %s (mtu %u)", b.client.str().c_str(), wire::to_string(kind),
            remote.str().c_str(), static_cast<unsigned>(m.mtu));
}

void ConcentratorProxy::on_closed(Session& s, Connection& c, std::string_view reason) {
  const std::string what = "session " + std::to_string(c.id()) + " from " + c.peer().str();
  if (log_tls_failure(c, what) && !s.hs.done()) {
    end_session_later(c.id());
    return;
  }
  if (!s.hs.done()) {
    // Garbage, a silent peer, or a CPE that hung up on our proof (its key differs).
    const bool timeout = reason == kHandshakeTimeoutReason;
    stats_.add(Counter::auth_failures);
    std::uint64_t held = 0;
    const auto why = timeout ? wire::AuthFailure::Timeout : wire::AuthFailure::Closed;
    if (auth_log_.allow(why, ev_now(loop_), &held))
      PEER_WARN(c.identity(), "session %u from %s: authentication failed: %s: %.*s%s", c.id(),
                c.peer().str().c_str(), wire::to_string(why), static_cast<int>(reason.size()),
                reason.data(), wire::LogLimiter::note(held).c_str());
    end_session_later(c.id());
    return;
  }
  PEER_INFO(c.identity(), "session %u from %s ended: %.*s", c.id(), c.peer().str().c_str(),
            static_cast<int>(reason.size()), reason.data());
  end_session_later(c.id());
}

void ConcentratorProxy::on_binding_removed(Binding& b, RemoveReason why) {
  account_removal(b, why);  // sends what is queued first: the counts below are final
  if (binding_log_ && b.edge) log_binding_close(b, why);
  Session* s = session_of(b.scope);
  if (auto* sock = static_cast<RelaySocket*>(b.edge.get())) {
    mappings_.remove(b.client.family, sock->port(), b);
    sock->quiesce();
    quarantine(std::move(b.edge));
  }
  if (s == nullptr || !s->conn->usable()) return;
  if (s->mode == wire::SessionMode::PerBinding) {
    if (why == RemoveReason::Expired || why == RemoveReason::Evicted ||
        why == RemoveReason::QuotaEvicted ||
        why == RemoveReason::Shutdown || why == RemoveReason::Refused) {
      // The binding was the connection's reason to exist: end both abortively, so the
      // kernel sends MP_FASTCLOSE and the CPE's table follows.
      s->conn->abort();
      end_session_later(b.scope);
    }
    return;
  }
  CopyLanes lanes;
  const std::size_t n = copy_lanes(*s, lanes);
  send_close(s->conn.get(), express_of(*s), b, why, std::span(lanes.data(), n));
}

void ConcentratorProxy::quarantine(std::unique_ptr<BindingEdge> sock) {
  static const std::size_t kMaxQuarantined = max_quarantined();
  if (quarantine_.size() >= kMaxQuarantined) {
    deferred_.destroy_later(std::move(quarantine_.front().second));
    quarantine_.pop_front();
  }
  quarantine_.emplace_back(ev_now(loop_) + kQuarantineSeconds, std::move(sock));
  if (!quarantine_timer_.active()) quarantine_timer_.start(kQuarantineSeconds);
}

void ConcentratorProxy::on_quarantine_timer() {
  const double now = ev_now(loop_);
  while (!quarantine_.empty() && quarantine_.front().first <= now) {
    deferred_.destroy_later(std::move(quarantine_.front().second));
    quarantine_.pop_front();
  }
  if (!quarantine_.empty()) quarantine_timer_.start(quarantine_.front().first - now + 0.01);
}

void ConcentratorProxy::end_session_later(std::uint32_t scope) { dying_.push_back(scope); }

void ConcentratorProxy::reap_sessions() {
  while (!dying_.empty()) {
    std::vector<std::uint32_t> now;
    now.swap(dying_);
    for (std::uint32_t scope : now) {
      auto it = sessions_.find(scope);
      if (it == sessions_.end()) continue;
      Session& s = *it->second;
      admission_.closed(scope);
      if (s.token != 0) tokens_.erase(s.token);
      cpe_addresses_.remove_holder(scope);
      // An express connection goes with its main session; the main one loses its
      // express connection and carries everything again.
      if (s.express != 0) dying_.push_back(s.express);
      for (std::uint32_t k : s.carriers)
        if (k != 0) dying_.push_back(k);
      if (s.joined != 0)
        if (Session* m = session_of(s.joined); m != nullptr) {
          if (m->express == scope) m->express = 0;
          if (s.carrier && m->carriers[s.slot] == scope) m->carriers[s.slot] = 0;
        }
      s.conn->close();
      table_.remove_scope(scope, RemoveReason::SessionLost);
      deferred_.destroy_later(std::move(it->second));
      sessions_.erase(it);
    }
  }
}

void ConcentratorProxy::for_each_connection(const std::function<void(Connection&)>& fn) const {
  for (const auto& [scope, s] : sessions_) fn(*s->conn);
}

void ConcentratorProxy::shutdown() {
  listeners_.clear();
  quarantine_timer_.stop();
  for (auto& [scope, s] : sessions_) {
    table_.remove_scope(scope, RemoveReason::Shutdown);
    admission_.closed(scope);
    if (s->conn->open()) s->conn->flush();
    s->conn->close();
  }
  sessions_.clear();
  dying_.clear();
  quarantine_.clear();
  binding_log_timer_.stop();
  if (binding_log_) binding_log_->flush();
}

std::unique_ptr<BindingLogWriter> ConcentratorProxy::open_binding_log(
    const Config::Concentrator::BindingLog& settings, Stats& stats, std::string* err) {
  if (settings.syslog) return BindingLogWriter::open_syslog(settings.syslog_facility, stats, err);
  return BindingLogWriter::open_file(settings.path, stats, err);
}

void ConcentratorProxy::apply_binding_log(const Config::Concentrator::BindingLog& settings) {
  if (!settings.enabled()) {
    if (binding_log_) LOG_INFO("binding log: off");
    binding_log_timer_.stop();
    binding_log_.reset();  // flushes
    return;
  }
  std::string err;
  if (binding_log_ && binding_log_->target() ==
                          (settings.syslog ? "syslog " + settings.syslog_facility
                                           : "file " + settings.path)) {
    // The same file: opened again by its name, so that logrotate's move takes effect.
    if (!binding_log_->reopen(&err))
      LOG_ERROR("binding log: cannot reopen %s; writing on to the file already open",
                err.c_str());
    return;
  }
  auto next = open_binding_log(settings, stats_, &err);
  if (!next) {
    // The rest of the reload stands; the lines go on where they went.
    LOG_ERROR("concentrator.binding_log: %s; %s", err.c_str(),
              binding_log_ ? ("still writing to " + binding_log_->target()).c_str()
                           : "no binding log");
    return;
  }
  LOG_INFO("binding log: %s", next->target().c_str());
  binding_log_ = std::move(next);  // the old one flushes as it goes
}

void ConcentratorProxy::reopen_binding_log() {
  if (!binding_log_) return;
  std::string err;
  if (!binding_log_->reopen(&err))
    LOG_ERROR("binding log: cannot reopen %s; writing on to the file already open", err.c_str());
}

Endpoint ConcentratorProxy::external_address(const Endpoint& remote) {
  RouteMemo& m = route_memo_[remote.is_v6() ? 1 : 0];
  Endpoint addr = remote;
  addr.port = 0;
  const double now = ev_now(loop_);
  if (!(m.remote == addr) || now - m.at > 1.0) {
    m.remote = addr;
    m.source = route_source(remote);
    m.at = now;
  }
  return m.source;
}

void ConcentratorProxy::fill_who(const Binding& b, BindingLogRecord& r, std::string& peer) const {
  std::string_view tenant = b.tenant();
  if (tenant.starts_with("id:")) r.identity = tenant.substr(3);
  auto it = sessions_.find(b.scope);
  if (it != sessions_.end())
    peer = it->second->conn->peer().address_str();
  else if (tenant.starts_with("addr:"))
    peer = std::string(tenant.substr(5));
  r.peer = peer;
  r.session = b.scope;
  r.client = b.client;
}

WallTime ConcentratorProxy::started(const Binding& b) const {
  // The wall clock now less the binding's age on the monotonic clock: the open and the
  // close line name the same start (unless the wall clock is set in between), and the
  // duration is right even then. Nothing per binding is stored for it.
  return std::chrono::system_clock::now() -
         std::chrono::duration_cast<std::chrono::system_clock::duration>(clock_.now() - b.created);
}

void ConcentratorProxy::log_binding_open(const Binding& b, RelaySocket& sock,
                                         const Endpoint& remote) {
  // The port is the socket's own; the address, the kernel's choice towards the first
  // remote (the socket is bound to the wildcard, which no remote ever sees).
  Endpoint ext = external_address(remote);
  const Endpoint local = sock.local();
  if (ext.valid()) {
    ext.port = local.port;
  } else {
    ext = local;
  }
  sock.set_external(ext);
  BindingLogRecord r;
  std::string peer;
  fill_who(b, r, peer);
  r.external = ext;
  r.start = started(b);
  binding_log_->write(format_binding_open(r));
  written_to_binding_log();
}

void ConcentratorProxy::log_binding_close(const Binding& b, RemoveReason why) {
  BindingLogRecord r;
  std::string peer;
  fill_who(b, r, peer);
  const auto* sock = static_cast<const RelaySocket*>(b.edge.get());
  // A binding made while the log was off (a reload turned it on) has no recorded
  // address: its port at least.
  r.external = sock->external().valid() ? sock->external() : sock->local();
  r.end = std::chrono::system_clock::now();
  r.start = started(b);
  r.reason = why;
  r.up = b.upstream;
  r.down = b.downstream;
  binding_log_->write(format_binding_close(r));
  written_to_binding_log();
}

void ConcentratorProxy::written_to_binding_log() {
  if (binding_log_->pending() && !binding_log_timer_.active())
    binding_log_timer_.start(kBindingLogFlushSeconds);
}

}  // namespace mpudp

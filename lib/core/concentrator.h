// The concentrator side: tunnel sessions from CPEs in, plain UDP to the remotes out, and
// replies back through the session that owns the binding.
#pragma once

#include <array>

#include <deque>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "binding/binding_log.h"
#include "core/proxy_base.h"
#include "ctl/binding_log_writer.h"
#include "relay/nat.h"
#include "relay/policy.h"
#include "relay/relay_socket.h"
#include "tunnel/admission.h"
#include "tunnel/listener.h"
#include "wire/auth.h"

namespace mpudp {

class ConcentratorProxy final : public ProxyBase, public RemoteSink {
 public:
  ConcentratorProxy(Loop* loop, const Config& cfg, Stats& stats);
  ~ConcentratorProxy() override;
  bool start(std::string* err);
  void shutdown();
  void reload(const Config& cfg) override;
  std::size_t session_count() const { return sessions_.size(); }
  // Opens the binding log's file again by its name (logrotate moved it): what SIGHUP
  // does when the configuration cannot be reloaded (a reload reopens it anyway).
  void reopen_binding_log();

 private:
  // A CPE's connection with its handshake state; it hears the connection's events and
  // passes them on with itself.
  struct Session final : ConnectionHandler {
    explicit Session(ConcentratorProxy& p) : proxy(p) {}
    void on_secured(Connection& c) override { proxy.on_secured(*this, c); }
    void on_frame(Connection& c, const wire::Frame& f) override { proxy.on_frame(*this, c, f); }
    void on_frames_done(Connection&) override { proxy.sends_.flush(); }
    void on_closed(Connection& c, std::string_view reason) override {
      proxy.on_closed(*this, c, reason);
    }

    ConcentratorProxy& proxy;
    std::unique_ptr<Connection> conn;
    // The key handshake; until done(), nothing but HELLO and AUTH is acted on.
    wire::Handshake hs;
    wire::SessionMode mode = wire::SessionMode::Multiplexed;
    // Multiplexed sessions with an express connection (docs/PROTOCOL.md): a main session
    // holds the token it handed out and the id of the session that joined with it; an
    // express session, the main session's id, which is the scope of its bindings.
    std::uint64_t token = 0;
    std::uint32_t express = 0;
    std::uint32_t joined = 0;
    // Redundant delivery (tunnel.copies): a main session holds the ids of the copy
    // carriers that joined it (0: free slot; the slot is the bit in Flow::copy_known); a
    // carrier, its slot and its budget for copies (tunnel.copy_rate).
    std::array<std::uint32_t, kMaxCopyCarriers> carriers{};
    bool carrier = false;
    unsigned slot = 0;
    ExpressMeter budget;
    // The CPE's HELLO had kCapIcmp: it takes ICMP frames.
    bool icmp = false;
    // The address the CPE's connection arrived at (concentrator.instance_port names it
    // back with this daemon's own port).
    Endpoint local;
    std::uint32_t scope() const { return joined != 0 ? joined : conn->id(); }
  };
  // The express connection of main session `s` once it can carry datagrams, or null.
  Connection* express_of(const Session& s);
  // Joins express session `s` to the main session its HELLO names; false if refused.
  bool join_express(Session& s, Connection& c);
  // The main session the express or carrier session `s` names with its token, if `c`
  // may join it (same identity); null, logged, counted as `refused` and closed if not.
  Session* joinable(Session& s, Connection& c, Counter refused, const char* what);
  // Joins copy carrier `s` to the main session its HELLO names; false if refused.
  bool join_carrier(Session& s, Connection& c);
  // The carriers of main session `s` that can take copies now, in `out`; how many.
  std::size_t copy_lanes(const Session& s, CopyLanes& out);
  std::size_t copy_lanes_for(const Binding& b, CopyLanes& out) override;
  // Logs (rate-limited), counts and closes a session that failed the handshake.
  void reject_session(Connection& c, wire::AuthFailure why, std::string_view detail);
  wire::LogLimiter auth_log_;

  void on_accept(Fd fd, const Endpoint& peer);
  // TLS is up (identity known), or an accept_cleartext peer spoke clear text.
  void on_secured(Session& s, Connection& c);
  // The version 1 key check (shared key, or none with auth: none).
  wire::Handshake cleartext_handshake() const;
  // After a reload: ends the sessions whose identity the new TLS context refuses.
  void revoke_sessions();
  // Closes the handshaking connection admission gave up to make room for a newer one.
  void evict_handshaking(const Admission::Decision& d);
  // Connections not yet authenticated (concentrator.max_handshaking*): taken at accept,
  // given back when the handshake completes or the session is reaped.
  Admission admission_;
  log::Throttle preauth_log_;
  void on_frame(Session& s, Connection& c, const wire::Frame& f);
  void on_closed(Session& s, Connection& c, std::string_view reason);
  void on_binding_removed(Binding& b, RemoveReason why) override;
  void for_each_connection(const std::function<void(Connection&)>& fn) const override;
  void on_remote_datagram(Binding& b, const Endpoint& from,
                          std::span<const std::uint8_t> payload) override;
  void on_remote_error(Binding& b, const Endpoint& remote, wire::IcmpKind kind,
                       std::uint16_t mtu, std::size_t length) override;
  // A datagram for binding `b`'s client from `from`: through the filter, into the tunnel.
  // `hairpinned`: `from` is the public mapping of one of this concentrator's bindings,
  // which the destination policy would refuse as its own address.
  void deliver(Binding& b, const Endpoint& from, std::span<const std::uint8_t> payload,
               bool hairpinned);
  // A datagram of binding `b` to `to`, the public mapping of a binding of this
  // concentrator (Flow::hairpin): handed to that binding as if it came from b's public
  // mapping, never sent. Dropped as a loop when no live binding holds the port any more.
  void hairpin(Binding& b, const Endpoint& to, std::span<const std::uint8_t> payload);

  // `main`: the session the bindings belong to; `c`: the connection the OPEN came on.
  void on_open(Session& main, Connection& c, const wire::Open& o);
  void send_reset(Connection& c, std::uint32_t flow_id, wire::ResetReason why);
  Session* session_of(std::uint32_t scope);
  // Ends a session outside of any table callback: its bindings go, then the session.
  void end_session_later(std::uint32_t scope);
  void reap_sessions();
  void quarantine(std::unique_ptr<BindingEdge> sock);
  void on_quarantine_timer();

  void load_policy();
  // Relay sockets, quarantined sockets and sessions: what counts against the budget.
  std::size_t descriptors_in_use() const {
    return table_.size() + quarantine_.size() + sessions_.size();
  }

  // The tenant of a session's bindings (concentrator.max_bindings_per_cpe counts them).
  static std::string tenant_key(const Session& main);

  DestinationPolicy policy_;
  // The live bindings by their public port, for hairpinning.
  Mappings mappings_;
  // Where connected CPEs' tunnels come from (by session), for the destination policy.
  AddressSet cpe_addresses_;
  std::vector<std::unique_ptr<Listener>> listeners_;
  // direct_endpoint(cfg_) as of start: listened on and named in every HELLO (kCapDirect).
  Endpoint direct_;
  // Warns when the kernel would still let CPEs join at the balanced address.
  void check_join_sysctl();
  std::unordered_map<std::uint32_t, std::unique_ptr<Session>> sessions_;
  std::unordered_map<std::uint64_t, std::uint32_t> tokens_;  // express token -> main session
  std::vector<std::uint32_t> dying_;
  // Sockets of ended bindings keep their port a while, so that replies still on their
  // way to it cannot reach a new binding that the kernel would give the same port.
  std::deque<std::pair<double, std::unique_ptr<BindingEdge>>> quarantine_;
  Timer quarantine_timer_;

  // concentrator.binding_log: a line per binding made and ended (binding/binding_log.h).
  // Null when off. Lines wait in the writer's buffer at most kBindingLogFlushSeconds.
  static constexpr double kBindingLogFlushSeconds = 1.0;
  static std::unique_ptr<BindingLogWriter> open_binding_log(
      const Config::Concentrator::BindingLog& settings, Stats& stats, std::string* err);
  void apply_binding_log(const Config::Concentrator::BindingLog& settings);
  void log_binding_open(const Binding& b, RelaySocket& sock, const Endpoint& remote);
  void log_binding_close(const Binding& b, RemoveReason why);
  void written_to_binding_log();
  WallTime started(const Binding& b) const;
  // The record's identity and peer for binding `b` (its tenant says who, its session
  // where from, while there is one).
  void fill_who(const Binding& b, BindingLogRecord& r, std::string& peer) const;
  // route_source() for `remote`, remembered a second per family: a burst of new bindings
  // towards one server (a resolver, a game) costs one route look-up, not one each.
  Endpoint external_address(const Endpoint& remote);
  struct RouteMemo {
    Endpoint remote;  // address only
    Endpoint source;
    double at = -1e9;
  };
  RouteMemo route_memo_[2];
  std::unique_ptr<BindingLogWriter> binding_log_;
  Timer binding_log_timer_;
};

}  // namespace mpudp

// What the CPE and the concentrator share: the event-loop plumbing (deferred work,
// coalesced tunnel writes, the shared receive buffers), the binding table with its single
// expiry timer, and the bookkeeping of removals.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "binding/binding_table.h"
#include "config/config.h"
#include "core/copy_plan.h"
#include "ctl/json.h"
#include "ctl/log.h"
#include "ctl/metrics.h"
#include "ctl/stats.h"
#include "io/loop.h"
#include "io/recv_batch.h"
#include "io/send_batch.h"
#include "net/address_set.h"
#include "pm/address_monitor.h"
#include "tunnel/connection.h"
#include "tunnel/subflows.h"
#include "wire/frame.h"

namespace mpudp {

BindingLimits binding_limits(const Config& cfg);
ConnectionOptions connection_options(const Config& cfg, ConnectionOptions::Keepalive role);
wire::SessionMode wire_mode(SessionModeConfig m);

class ProxyBase : public BindingObserver, public SendBatch::Report {
 public:
  ProxyBase(Loop* loop, const Config& cfg, Stats& stats);
  ~ProxyBase() override { deferred_.collect_garbage(); }

  const BindingTable& bindings() const { return table_; }
  const Config& config() const { return cfg_; }
  // Applies what can change at run time: limits, timeouts, log level, and the TLS
  // context prepare_reload built.
  virtual void reload(const Config& cfg);
  // Builds what a reload to `next` needs and can fail (the TLS context: certificate, CA
  // and CRL files are parsed here). False, with the reason, refuses the reload.
  bool prepare_reload(const Config& next, std::string* err);

  // Control-socket reports (schema in docs/CONTROL.md).
  std::string status_json(double uptime_s) const;
  std::string bindings_json() const;
  // Metrics gauges: bindings in all, bindings per tenant (the concentrator's: one per
  // CPE identity, "id:NAME", or address, "addr:IP"), tunnel connections per peer identity.
  std::vector<Gauge> gauges() const;
  // Fills in what only the path manager knows about subflows (the backup flag of the
  // endpoint each one runs from); set by the daemon when paths are configured.
  std::function<void(std::vector<SubflowInfo>&)> annotate_subflows;

 protected:
  // Every tunnel connection this proxy holds, in status order: status reads them, a
  // reload applies the new tunnel options to them.
  virtual void for_each_connection(const std::function<void(Connection&)>& fn) const = 0;
  // One JSON object per tunnel connection, into an open array.
  void write_connection(json::Writer& w, const Connection& c) const;
  // Sends what the batch holds (it may point at this binding's socket and counters),
  // counts the removal and logs it; subclasses call it first in on_binding_removed.
  void account_removal(const Binding& b, RemoveReason why);
  // SendBatch::Report: the counters of a datagram that left (or did not).
  void on_sent(int kind, std::size_t bytes) override;
  void on_send_failed(int kind, int err, const sockaddr* to, socklen_t to_len) override;
  // Keeps the expiry timer pointed at the table's least recently used binding.
  void arm_expiry();
  void on_created(const Binding& b);
  // Counts a received frame that carries a datagram (DATA, OPEN with payload), so that
  // every datagram taken in is either passed on or counted as dropped; true if it does.
  bool count_rx_datagram(const wire::Frame& f);
  // Puts one datagram of flow `f` into the tunnel: an OPEN naming the pair the first time
  // on that connection (with the datagram inside when it fits), DATA after that. false
  // when it was dropped (counted here). `main` carries the session; `express`, when not
  // null, is its express connection, which light flows take (see Flow::meter).
  // With copy carriers (redundant delivery, tunnel.copies; copy_lanes_for), a light
  // flow's datagram, or a classed flow's, goes instead on every carrier whose copy_rate
  // budget has room, numbered (sequenced DATA), and on main or express only when none
  // took it.
  bool tunnel_datagram(Connection& main, Connection* express, Binding& b, Flow& f,
                       std::span<const std::uint8_t> payload);
  // The copy carriers of binding `b`'s session, into `out`; how many. Asked only for a
  // datagram that may be copied, so bulk datagrams never pay for the lookup.
  virtual std::size_t copy_lanes_for(const Binding& b, CopyLanes& out) = 0;
  // Tells the peer that multiplexed binding `b` is gone (expired, evicted, shutdown; other
  // removals the peer knows of already): a CLOSE on each connection that carried the
  // binding's frames, behind them, or on `main` when none did. One CLOSE on main alone
  // could overtake frames still queued on the express connection (an OPEN there would
  // bring the binding back at the peer) and lets the peer see a new binding's OPEN on
  // express before the CLOSE of the binding evicted for it.
  // With `carriers`, also on each copy carrier the binding's flows were announced on.
  void send_close(Connection* main, Connection* express, const Binding& b, RemoveReason why,
                  std::span<CopyLane> carriers = {});
  // The copies of a light flow's datagram, one on each carrier with budget left; false
  // when none took it (the caller sends it the usual way).
  bool send_copies(std::span<CopyLane> carriers, Binding& b, Flow& f,
                   std::span<const std::uint8_t> payload, std::uint32_t now_ms);
  // A sequenced DATA (a copy) of flow `f` came in on `c`: true if it is the first copy of
  // its number and is to be delivered; a later one is counted and dropped.
  bool first_copy(Connection& c, Flow& f, const wire::Data& d);
  ConnectionContext conn_ctx() { return {loop_, deferred_, flusher_, stats_, &clock_}; }
  // The transport of a new tunnel connection: TLS with the current context, or null
  // (clear text) with encryption: none.
  std::unique_ptr<Transport> new_transport(bool accept_cleartext = false) const;
  // Builds tls_ from cfg_ (start()); false with the reason when a file is unusable.
  bool start_tls(std::string* err);
  // When `c` closed for a TLS failure: logs "<what>: TLS failed: <cause>" (at most one
  // line per second per cause, the rest counted into the next) and returns true.
  bool log_tls_failure(const Connection& c, const std::string& what);
  // True when `in_use` descriptors (what this proxy holds per binding) leave no room in
  // the budget for another binding: then the new binding is refused, counted (when
  // `has_payload`) as descriptor_limit and logged at most every 10 s. Refusing before the
  // last descriptors go keeps the control socket and the tunnel connections working.
  bool at_descriptor_budget(std::size_t in_use, bool has_payload);
  // Fills own_addresses_ and keeps it following this host's addresses (start()).
  void watch_own_addresses();
  // Counts a refused datagram (when `datagram`) under `d` and logs it at info level, at
  // most once a second per reason: "<what> <from> -> <to> refused: <why>".
  void refuse(Drop d, bool datagram, const char* what, const Endpoint& from, const Endpoint& to,
              const char* why);

  Loop* loop_;
  Config cfg_;
  Stats& stats_;
  Deferred deferred_;
  Flusher flusher_;
  RecvBatch batch_;
  // UDP sends gathered while a tunnel read is decoded; flushed at the end of each
  // (on_frames_done), before a binding goes and before a cached socket closes.
  SendBatch sends_{*this};
  SteadyClockSource clock_;
  BindingTable table_;
  // This host's addresses: no datagram is relayed to one of them (it would loop).
  AddressSet own_addresses_;
  // The TLS context new connections take (null: encryption: none). A reload replaces
  // it; live sessions keep the one they were made with.
  std::shared_ptr<TlsContext> tls_;

 private:
  void on_expiry_timer();
  Timer expiry_timer_;
  std::unique_ptr<pm::AddressMonitor> own_monitor_;
  std::shared_ptr<TlsContext> next_tls_;  // prepare_reload's, for reload
  bool next_tls_ready_ = false;
  std::array<log::Throttle, static_cast<std::size_t>(Drop::kCount)> refuse_log_;
  std::array<log::Throttle, static_cast<std::size_t>(TlsFailure::kCount)> tls_log_;
  // io/socket.h descriptor_budget(), taken at construction (the daemon has raised the
  // limit by then).
  std::size_t descriptor_budget_;
  double descriptor_logged_ = -1e9;
  std::uint64_t descriptor_held_ = 0;
};

}  // namespace mpudp

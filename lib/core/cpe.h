// The CPE side: LAN datagrams in through TPROXY, out through the tunnel; replies back to
// the client from the original destination.
#pragma once

#include <array>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/proxy_base.h"
#include "intercept/icmp_errors.h"
#include "intercept/nfqueue.h"
#include "intercept/tproxy.h"
#include "wire/auth.h"

namespace mpudp {

class CpeProxy final : public ProxyBase, public LanSink, public ConnectionHandler {
 public:
  CpeProxy(Loop* loop, const Config& cfg, Stats& stats);
  ~CpeProxy() override;
  bool start(std::string* err);
  // Ends every binding (CLOSE, or MP_FASTCLOSE per binding) and writes what it can.
  void shutdown();
  const Connection* main_connection() const { return main_.get(); }
  const Connection* express_connection() const { return express_.get(); }

 private:
  struct BindingConn;
  struct Carrier;

  void on_lan_datagram(const Endpoint& client, const Endpoint& orig_dst,
                       std::span<const std::uint8_t> payload, std::uint8_t dscp) override;
  // ConnectionHandler of the main and express connections, told apart by identity; a
  // per-binding connection is heard by its BindingConn, which comes here with its own.
  void on_connected(Connection& c) override;
  void on_secured(Connection& c) override;
  void on_frame(Connection& c, const wire::Frame& f) override;
  void on_frames_done(Connection&) override { sends_.flush(); }
  void on_closed(Connection& c, std::string_view reason) override;
  // Every frame of every connection, with that connection's handshake.
  void on_tunnel_frame(Connection& c, wire::Handshake& hs, const wire::Frame& f);
  void on_binding_conn_closed(BindingConn& edge, std::string_view reason);
  void on_binding_removed(Binding& b, RemoveReason why) override;
  void for_each_connection(const std::function<void(Connection&)>& fn) const override;

  Connection* connection_for(Binding& b);
  // False (counted, logged) for a destination that is the CPE's own or port 0.
  bool lan_destination_ok(const Endpoint& client, const Endpoint& orig_dst);
  // Connects (events to `handler`) and queues the HELLO; with a key, also the held AUTH
  // slot (see Connection::reserve_held_slot), so frames queued now leave once the key is
  // proved.
  // In multiplexed mode with tunnel.express, the HELLO asks for an express token (main
  // connection, `express_token` 0) or joins the session that handed it out.
  // `to`: the configured concentrator unless given (the express connection goes to the
  // concentrator's direct endpoint when it named one). With `device`, a copy carrier
  // bound to that interface; `spare`, one of its uplink's spares (tunnel.copy_spares).
  std::unique_ptr<Connection> open_connection(ConnectionHandler& handler, wire::Handshake& hs,
                                              std::string* err, std::uint64_t express_token = 0,
                                              const Endpoint* to = nullptr,
                                              const std::string* device = nullptr,
                                              bool spare = false);
  void auth_failed(Connection& c, wire::AuthFailure why);
  void connect_main();
  void schedule_reconnect();
  void connect_express();
  // The express connection goes (closed by us or lost); redial it later if `again`.
  void drop_express(bool again);
  // Redundant delivery (tunnel.copies, once the concentrator offered it): a copy carrier
  // per uplink that carries copies (paths[], Config::Path::carries_copies), each a plain
  // TCP connection bound to its interface that joins the session with the express token.
  void connect_carriers();
  void connect_carrier(Carrier& k);
  // The carrier's connection goes; redialled later if `again`.
  void drop_carrier(Carrier& k, bool again);
  void on_carrier_closed(Carrier& k, std::string_view reason);
  Carrier* carrier_of(const Connection& c);
  // The carriers that can take copies now, in `out`; how many.
  std::size_t copy_lanes_for(const Binding& b, CopyLanes& out) override;
  // The next wait of a doubling, jittered backoff (200 ms .. 10 s) kept in `b`, in s.
  double next_backoff(std::chrono::milliseconds& b);
  void send_upstream(Connection& c, Binding& b, Flow& f, std::span<const std::uint8_t> payload);
  void deliver(Binding& b, const Endpoint& from, std::span<const std::uint8_t> payload);

  std::vector<std::unique_ptr<TproxySocket>> lan_;
  std::unique_ptr<NfqueueIntercept> nfqueue_;  // intercept: nfqueue
  std::unique_ptr<RawReplies> raw_;            // intercept: nfqueue
  ReplySockets replies_;
  // ICMP frames become errors to clients through it; null (and kCapIcmp not announced)
  // without CAP_NET_RAW.
  std::unique_ptr<IcmpErrors> icmp_;
  std::unique_ptr<Connection> main_;  // multiplexed mode
  wire::Handshake main_hs_;           // main_'s handshake
  // Multiplexed mode: the second connection that light flows take (docs/PROTOCOL.md,
  // "Express connection"); usable once its own handshake is done.
  std::unique_ptr<Connection> express_;
  wire::Handshake express_hs_;
  std::uint64_t express_token_ = 0;  // offered in main_'s HELLO answer; 0: none
  // The concentrator's own endpoint, named in main_'s HELLO answer (kCapDirect) when it
  // sits behind a load balancer with others: the express connection goes there, where
  // its session is, not to the balanced address. Family None: the configured address.
  Endpoint direct_;
  // Quick redials left after losing an established session: a balancer may still send
  // some attempts to the concentrator that just died, each refused at once, and each new
  // attempt (a new source port) may hash elsewhere (docs/SCALE.md).
  int quick_redials_ = 0;
  bool warned_no_fullmesh_ = false;  // once per process
  std::vector<std::unique_ptr<Carrier>> carriers_;
  bool copy_offered_ = false;  // main_'s HELLO answer had kCapCopy (and tunnel.copies)
  Timer express_timer_;
  std::chrono::milliseconds express_backoff_{0};
  wire::LogLimiter auth_log_;
  Timer reconnect_timer_;
  std::chrono::milliseconds backoff_{0};
  std::minstd_rand rng_;
  bool stopping_ = false;
};

}  // namespace mpudp

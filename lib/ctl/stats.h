// Every counter and every drop reason, declared once. Names say object and direction:
// "lan" is the client side of the CPE, "wan" the server side of the concentrator,
// "tunnel" the MPTCP connections between the two proxies. Every datagram a proxy takes in
// is either passed on or counted under exactly one drop reason.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

#define MPUDP_COUNTERS(X)                                                                   \
  X(lan_rx_datagrams, "datagrams received from LAN clients")                                \
  X(lan_rx_bytes, "payload bytes received from LAN clients")                                \
  X(lan_rx_overflows, "datagrams from LAN clients the kernel dropped, intercept socket's receive buffer full (told by the socket's next datagram)") \
  X(lan_tx_datagrams, "datagrams sent to LAN clients")                                      \
  X(lan_tx_bytes, "payload bytes sent to LAN clients")                                      \
  X(wan_tx_datagrams, "datagrams sent to remote servers")                                   \
  X(wan_tx_bytes, "payload bytes sent to remote servers")                                   \
  X(wan_rx_datagrams, "datagrams received from remote servers")                             \
  X(wan_rx_bytes, "payload bytes received from remote servers")                             \
  X(wan_rx_overflows, "datagrams from remote servers the kernel dropped, relay socket's receive buffer full (told by the socket's next datagram)") \
  X(hairpin_datagrams, "datagrams from a binding to another binding's public mapping (the concentrator's address and the binding's port), handed over inside the concentrator (hairpinning, docs/NAT.md)") \
  X(tunnel_tx_datagrams, "datagrams written whole to tunnel connections (OPEN with payload, DATA)") \
  X(tunnel_rx_datagrams, "datagrams read from tunnel connections (OPEN with payload, DATA)")   \
  X(tunnel_tx_frames, "frames written to tunnel connections")                               \
  X(tunnel_tx_bytes, "bytes written to tunnel connections")                                 \
  X(tunnel_rx_frames, "frames read from tunnel connections")                                \
  X(tunnel_rx_bytes, "bytes read from tunnel connections")                                  \
  X(tunnel_writes, "write() calls on tunnel connections")                                   \
  X(tunnel_connects, "tunnel connections established")                                      \
  X(tunnel_connect_failures, "tunnel connection attempts that failed")                      \
  X(tunnel_disconnects, "tunnel connections that ended")                                    \
  X(tunnel_fallbacks, "tunnel connections that fell back to plain TCP")                     \
  X(tunnel_protocol_errors, "tunnel connections closed for a protocol error")               \
  X(express_tx_datagrams, "datagrams queued into express connections (light flows)")        \
  X(express_connects, "express connections joined to a multiplexed session")              \
  X(express_refused, "express connections refused (token of no live session)")           \
  X(copy_carrier_connects, "copy carriers (one per uplink, tunnel.copies) joined to a session") \
  X(copy_carrier_refused, "copy carriers refused (token of no live session, or copies off)") \
  X(copies_tx, "copies of light flows' datagrams queued on copy carriers, the first included") \
  X(duplicates_tx, "copies beyond the first one of each datagram (the redundancy's cost)") \
  X(duplicates_dropped, "copies received after the first one of their datagram, dropped") \
  X(copies_skipped, "copies not sent: the carrier's tunnel.copy_rate budget was spent") \
  X(copies_stalled, "carriers passed over for a copy: stalled (its path dark, or TCP retransmitting on timeout)") \
  X(spare_copies_tx, "copies queued on spare carriers (tunnel.copy_spares)") \
  X(direct_address_ignored, "direct addresses a concentrator named in its HELLO that the CPE ignored (not unicast, another family, port 0)") \
  X(tunnel_keepalives_tx, "keepalives sent")                                                \
  X(tunnel_keepalives_rx, "keepalives received")                                            \
  X(auth_failures, "tunnel connections closed for failing the key handshake")               \
  X(tls_handshake_failures, "tunnel connections whose TLS handshake failed (either side's cause)") \
  X(tls_record_failures, "tunnel connections closed for a record that failed authentication")   \
  X(tls_revoked, "sessions closed because a reload no longer accepts their identity")      \
  X(handshake_timeouts, "tunnel connections closed for not completing the handshake in time") \
  X(sessions_refused, "tunnel connections refused at concentrator.max_sessions")        \
  X(preauth_evicted_prefix, "tunnel connections closed before authenticating, to admit a newer one from their source prefix (at concentrator.max_handshaking_per_prefix)") \
  X(preauth_evicted_total, "tunnel connections closed before authenticating, to admit a newer one at concentrator.max_handshaking (the oldest of the source prefix with the most)") \
  X(bindings_created, "bindings created")                                                   \
  X(bindings_expired, "bindings removed after idle_timeout")                                \
  X(bindings_evicted, "bindings removed to respect bindings.max (each the least recently used of the tenant that needed room)") \
  X(bindings_evicted_quota, "bindings removed to respect a tenant's quota (concentrator.max_bindings_per_cpe, cpe.max_bindings_per_host), each the tenant's own least recently used") \
  X(bindings_closed_by_peer, "bindings removed on the peer's CLOSE")                        \
  X(bindings_reset_by_peer, "bindings removed on the peer's RESET")                         \
  X(bindings_session_lost, "bindings removed with their tunnel connection")                 \
  X(binding_log_lines, "binding log lines written (concentrator.binding_log: one per binding made, one per binding ended)") \
  X(binding_log_write_errors, "failed writes to the binding log file (the lines in them are lost)") \
  X(flows_opened, "(client, remote) pairs announced with OPEN")                             \
  X(resets_tx, "RESET frames sent for unknown flows")                                       \
  X(closes_tx, "CLOSE frames sent")                                                         \
  X(wan_icmp_port_unreachable, "ICMP(v6) port unreachable errors the relay sockets received (a remote's port is closed)") \
  X(wan_icmp_host_unreachable, "ICMP(v6) host/address unreachable errors the relay sockets received") \
  X(wan_icmp_net_unreachable, "ICMP(v6) network unreachable / no route errors the relay sockets received") \
  X(wan_icmp_admin_prohibited, "ICMP(v6) administratively prohibited errors the relay sockets received") \
  X(wan_icmp_too_big, "ICMP fragmentation needed / ICMPv6 packet too big errors the relay sockets received (path MTU learned)") \
  X(wan_icmp_other, "other errors on relay sockets' error queues (time exceeded, local errors): counted, not passed on") \
  X(icmp_frames_tx, "ICMP frames sent to CPEs (an error about one of their flows)") \
  X(icmp_frames_rx, "ICMP frames received from the concentrator") \
  X(icmp_rate_limited, "relay-socket ICMP errors not passed on: over the binding's rate (10/s, bursts of 10)") \
  X(icmp_not_sent, "relay-socket ICMP errors not passed on: no flow to the failed remote, no tunnel, or a CPE without the ICMP capability") \
  X(lan_icmp_tx, "ICMP(v6) errors sent to LAN clients on the concentrator's word") \
  X(lan_icmp_rate_limited, "ICMP frames not turned into an error to a client: over the CPE's rate (1000/s, bursts of 50, as the kernel's icmp_msgs_per_sec)") \
  X(lan_icmp_failed, "ICMP frames not turned into an error to a client: unknown flow or kind, or the raw socket refused to send") \
  X(reply_sockets_opened, "transparent reply sockets opened")                               \
  X(reply_sockets_evicted, "transparent reply sockets closed by the cache bound")         \
  X(lan_tx_raw_datagrams, "datagrams sent to LAN clients through the raw socket (NFQUEUE)") \
  X(nfqueue_overruns, "times the NFQUEUE netlink socket lost packets (ENOBUFS)")           \
  X(pm_endpoints_added, "MPTCP endpoints this daemon added")                                \
  X(pm_endpoints_removed, "MPTCP endpoints this daemon removed")                            \
  X(pm_netlink_errors, "netlink requests to the MPTCP path manager that failed")            \
  X(pm_events_created, "MPTCP connections created (path manager event)")                    \
  X(pm_events_established, "MPTCP connections established (path manager event)")            \
  X(pm_events_closed, "MPTCP connections closed (path manager event)")                      \
  X(pm_events_announced, "addresses announced by peers (path manager event)")               \
  X(pm_events_removed, "addresses removed by peers (path manager event)")                   \
  X(pm_events_subflow_established, "MPTCP subflows established (path manager event)")       \
  X(pm_events_subflow_closed, "MPTCP subflows closed (path manager event)")

#define MPUDP_DROP_REASONS(X)                                                               \
  X(no_origdst, "datagram arrived without its original destination")                        \
  X(truncated, "datagram larger than the receive buffer")                                   \
  X(tunnel_down, "no tunnel connection was up to carry it")                                 \
  X(tunnel_queue_full, "tunnel send queue full (backpressure)")                           \
  X(tunnel_queue_sojourn, "waited in a tunnel send queue past tunnel.queue_target for a tunnel.queue_interval (CoDel), or four intervals in all") \
  X(copy_queue_sojourn, "copies (tunnel.copies) that waited on their carrier past the same bound, its uplink stalled: the datagram is lost only if all its copies were") \
  X(tunnel_congested_new_flow, "new flow turned away while the express queue is over half full and standing")                             \
  X(too_large, "datagram too large to frame")                                               \
  X(binding_refused, "no binding could be created for it")                                  \
  X(descriptor_limit, "new binding refused: descriptors at the budget (open-file limit less a reserve)") \
  X(binding_table_full, "new binding refused: bindings.max reached, and its tenant (CPE, or LAN host with cpe.max_bindings_per_host) holds no binding of its own to give up") \
  X(remote_limit, "its binding already talks to bindings.max_remotes remotes")              \
  X(unknown_flow, "frame named a flow id this proxy does not hold")                         \
  X(unknown_binding, "OPEN from the concentrator for a client the CPE does not hold")       \
  X(destination_refused, "the concentrator's destination policy refused the remote")     \
  X(loop_refused, "its destination is an address of this proxy (or, on the concentrator, of a connected CPE): it would come back through the tunnel") \
  X(port_zero, "its destination port is 0") \
  X(client_refused, "OPEN naming one of the concentrator's own addresses as its client") \
  X(reply_source_refused, "datagram to a binding from a source the destination policy refuses") \
  X(filtered, "concentrator.filtering: address-dependent, and its binding has not sent to its source address") \
  X(family_mismatch, "client and remote address families differ")                           \
  X(reply_socket_failed, "no transparent socket could be bound to the original destination") \
  X(send_failed, "the kernel refused to send it")                                           \
  X(nfqueue_bad_packet, "queued packet was not a whole IPv4/IPv6 UDP datagram")              \
  X(protocol_error, "it arrived on a connection closed for a protocol error")               \
  X(shutdown, "it was still queued in a tunnel connection that closed or failed")

namespace mpudp {

enum class Counter : std::size_t {
#define MPUDP_X(name, help) name,
  MPUDP_COUNTERS(MPUDP_X)
#undef MPUDP_X
      kCount
};

enum class Drop : std::size_t {
#define MPUDP_X(name, help) name,
  MPUDP_DROP_REASONS(MPUDP_X)
#undef MPUDP_X
      kCount
};

struct StatInfo {
  const char* name;
  const char* help;
};
const StatInfo& info(Counter c);
const StatInfo& info(Drop d);

class Stats {
 public:
  void add(Counter c, std::uint64_t n = 1) { counters_[static_cast<std::size_t>(c)] += n; }
  void drop(Drop d, std::uint64_t n = 1) { drops_[static_cast<std::size_t>(d)] += n; }
  std::uint64_t get(Counter c) const { return counters_[static_cast<std::size_t>(c)]; }
  std::uint64_t get(Drop d) const { return drops_[static_cast<std::size_t>(d)]; }
  std::uint64_t total_drops() const;
  // {"counters":{...},"drops":{...}} on one line.
  std::string to_json() const;

 private:
  std::array<std::uint64_t, static_cast<std::size_t>(Counter::kCount)> counters_{};
  std::array<std::uint64_t, static_cast<std::size_t>(Drop::kCount)> drops_{};
};

}  // namespace mpudp

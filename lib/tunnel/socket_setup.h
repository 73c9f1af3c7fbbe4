// A tunnel connection's socket: made (MPTCP when the kernel has it), tuned, marked, and
// asked whether MPTCP held. Kept apart from Connection, which only runs the socket, so
// that what the kernel is told about it is in one place.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>

#include "io/fd.h"
#include "net/endpoint.h"

namespace mpudp {

// Unsent bytes the kernel may hold per connection (TCP_NOTSENT_LOWAT). Small, so a
// datagram waits behind at most a few milliseconds of others; the rest of the backlog is
// the connection's bounded queue, where excess datagrams are dropped and counted.
inline constexpr int kNotsentLowat = 64 * 1024;

// A stream socket of address family `af`: MPTCP, or plain TCP when the kernel has no
// MPTCP (said once in the log; `*mptcp` false then). Invalid with errno set on failure.
Fd make_tunnel_socket(int af, bool* mptcp);

// A plain TCP socket bound to interface `device` (SO_BINDTODEVICE): the kernel routes it
// out of that uplink only, with that uplink's address, whatever the routing table
// prefers, so that each copy carrier stays on its path. Invalid with errno set.
Fd make_carrier_socket(int af, const std::string& device);

// A copy carrier's timers, at both ends: it carries a few datagrams a second per call,
// too few for three duplicate ACKs, so a lost segment is found by the retransmission
// timer or RACK, both floored by settings made for bulk: RTO floor 50 ms instead of
// 200 (TCP_RTO_MIN_US), linear timeouts while thin (TCP_THIN_LINEAR_TIMEOUTS: a path
// back from an outage is retried every RTO, not after a backed-off one), ACKs within
// 5 ms (TCP_DELACK_MAX_US) so the sender learns of a loss sooner. MPTCP sockets refuse
// them (pm/recovery.h sets the namespace's instead); a kernel before 6.15 lacks two,
// logged once: the carrier still works, with the defaults.
void tune_carrier_socket(int fd);

// tunnel.copy_congestion_control on a copy carrier (both ends; the carrier was made with
// the tunnel's). False when it keeps the tunnel's: the name is empty, or it could not be
// set, here (logged once) or by the daemon's check at start
// (mark_copy_congestion_control_missing); such a name is not tried again.
bool apply_copy_congestion_control(int fd, const std::string& name);
void mark_copy_congestion_control_missing(const std::string& name);

// What carrier_stalled() reads of a copy carrier's TCP_INFO, and how long its data has
// gone unacknowledged.
struct CarrierSample {
  std::uint8_t ca_state = 0;     // tcpi_ca_state
  std::uint8_t retransmits = 0;  // tcpi_retransmits: timeout retransmissions not acked
  std::uint32_t unacked = 0;     // tcpi_unacked: segments in flight
  std::uint32_t srtt_us = 0;     // tcpi_rtt
  // Since the peer last acknowledged anything (tcpi_last_ack_recv), or since the carrier
  // was last seen with nothing in flight if that is later (an idle spare's first copy
  // must not count its idle time).
  std::uint32_t unacked_for_ms = 0;
  std::uint32_t sacked = 0;         // tcpi_sacked: segments the peer has beyond a hole
  std::uint32_t lost = 0;           // tcpi_lost: segments judged lost, not yet repaired
  std::uint32_t cwnd = 0;           // tcpi_snd_cwnd: 0 when unknown
};

// Whether a copy carrier is stalled: data outstanding and either TCP retransmitting on
// timeout (its congestion state Loss, or a timeout retransmission not yet acknowledged)
// or no ACK at all for two round trips plus the 40 ms a receiver may delay its ACK. A
// path that goes dark is seen by the second test within 2 RTT + 40 ms, while TCP's
// retransmission timer fires after RTT + 200 ms at the earliest, often twice that with
// the variance of a loaded path. A lossy path that works keeps sending ACKs (SACKs for
// what came after a loss), so RACK's and the tail loss probe's repairs count as neither.
// The data path then sends no copies on it until it delivers again, and once half an
// uplink's carriers are stalled it takes that uplink as dark (core/copy_plan.h).
inline bool carrier_stalled(const CarrierSample& s) {
  constexpr std::uint8_t kCaLoss = 4;  // TCP_CA_Loss
  constexpr std::uint32_t kDelayedAckMs = 40;  // TCP_DELACK_MIN
  if (s.unacked == 0) return false;
  if (s.ca_state == kCaLoss || s.retransmits > 0) return true;
  return s.srtt_us != 0 && s.unacked_for_ms > 2 * (s.srtt_us / 1000) + kDelayedAckMs;
}

// How many segments a datagram given to this carrier now may wait behind, as far as
// TCP_INFO tells: the data path puts each copy on the carrier that scores least. A
// carrier is ordered: a copy behind a lost segment waits for its repair, a round trip
// or more, and is late to a call. So a carrier that knows of a hole (SACKs past it, a
// segment marked lost, a recovery under way) or whose window is full is far
// worse than any carrier without; among those, each segment in flight is a further
// chance of a loss not yet seen. Spreading a call's copies over several carriers per
// uplink this way keeps few segments in flight on each.
inline constexpr std::uint32_t kExposureBlocked = 1u << 16;
inline std::uint32_t carrier_exposure(const CarrierSample& s) {
  constexpr std::uint8_t kCaDisorder = 1, kCaRecovery = 3, kCaLoss = 4;
  const std::uint32_t flight = std::min<std::uint32_t>(s.unacked, kExposureBlocked - 1);
  const bool hole = s.ca_state == kCaDisorder || s.ca_state == kCaRecovery ||
                    s.ca_state == kCaLoss || s.sacked > 0 || s.lost > 0;
  const bool window_full = s.cwnd != 0 && s.unacked >= s.cwnd;
  return hole || window_full ? kExposureBlocked + flight : flight;
}

// TCP_NODELAY, TCP_NOTSENT_LOWAT and, unless `congestion_control` is empty, that
// congestion control (apply_congestion_control).
void tune_tunnel_socket(int fd, const std::string& congestion_control);

// tunnel.receive_buffer (0: leave autotuning), forced past net.core.rmem_max when the
// daemon may. Only once the peer has authenticated: the buffer also bounds what the
// kernel keeps of data that arrived out of order, and before that a stranger could make
// it hold the whole buffer per connection; autotuning starts at tcp_rmem's default.
void apply_receive_buffer(int fd, std::size_t bytes);

// tunnel.congestion_control for the socket and its subflows. The daemon checked the name
// at start and reload; a failure here is logged once and leaves the default, which still
// carries everything. Empty restores the system's default.
void apply_congestion_control(int fd, const std::string& name);

// An express connection's marks: SO_PRIORITY `priority` and, if `with_tos`, DSCP `dscp`
// (IP_TOS, or IPV6_TCLASS for an IPv6 peer). A zero value is written only when `reset`
// (a reload took a mark away). A failure is logged once: unmarked packets still arrive.
void set_express_marks(int fd, const Endpoint& peer, int priority, int dscp, bool with_tos,
                       bool reset);

// Whether a connected MPTCP socket fell back to plain TCP: mptcp_fell_back() in
// tunnel/mptcp_uapi.h (it also knows kernels before 5.16).

// SO_LINGER 0: closing the socket sends RST, for MPTCP an MP_FASTCLOSE.
void set_abortive_close(int fd);

}  // namespace mpudp

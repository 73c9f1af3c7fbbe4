// What an MPTCP connection runs on: one entry per subflow, read from the kernel with the
// SOL_MPTCP getsockopts (MPTCP_SUBFLOW_ADDRS, MPTCP_TCPINFO; MPTCP_INFO for fallback).
// For the status command; not on any data path.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "net/endpoint.h"

namespace mpudp {

struct SubflowInfo {
  Endpoint local, remote;
  std::string interface;  // the interface holding `local`; empty when none does
  std::uint64_t bytes_sent = 0;
  std::uint64_t bytes_received = 0;
  std::uint32_t rtt_us = 0;      // smoothed
  std::uint32_t min_rtt_us = 0;  // the path's RTT without a queue, as far as TCP has seen
  std::uint64_t path_queued_bytes = 0;  // in flight but waiting in the path (queued_in_path)
  // The kernel does not report it per subflow: it is the flag of the endpoint holding
  // `local`, filled in by whoever knows the endpoints (pm::PathManager::annotate).
  bool backup = false;
};

// Empty when `fd` is not an MPTCP socket or has fallen back to TCP (`*fallback` says
// which; may be null). Failures of the getsockopts are not errors: they give less.
std::vector<SubflowInfo> subflows_of(int fd, bool* fallback);

// What the send limit needs to know of the subflows: how many there are (1 for plain
// TCP), the bytes they have transmitted and the bytes queued in them not yet transmitted
// (sums over the subflows). A getsockopt into a reused buffer: cheap enough to be called
// while the limit holds bytes back, not for every datagram. `ok` false: the kernel said
// nothing.
struct PathSample {
  bool ok = false;
  std::uint32_t subflows = 1;
  std::uint64_t sent = 0;
  std::uint64_t notsent = 0;
  // In flight but waiting in the paths' queues (queued_in_path, summed over subflows).
  std::uint64_t path_queued = 0;
  // The slowest subflow's minimum RTT less the fastest one's (0 with one subflow):
  // SendLimit::set_rtt_spread says why it matters.
  std::uint32_t rtt_spread_us = 0;
};
PathSample path_sample(int fd);

// How many of the MPTCP socket's subflows are established now (0: the peer reset them
// all, and the connection holds what it is given until one joins again); -1 when the
// kernel cannot say (no SOL_MPTCP options). One getsockopt into a reused buffer.
int live_subflows(int fd);

}  // namespace mpudp

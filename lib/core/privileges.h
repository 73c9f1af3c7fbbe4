// Least privilege after start-up: the capabilities the running daemon still uses, with
// the reason for each, and dropping all others. Sockets that need a capability only to
// be made (listeners on low ports, NFQUEUE's raw sockets, the control socket) are made
// before the drop; what is done again at run time keeps its capability. The table of
// needs is docs/HARDENING.md "Capabilities".
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "config/config.h"

namespace mpudp {

// What the host says, read at start (a test passes its own).
struct HostFacts {
  // net.ipv4.tcp_allowed_congestion_control: what an unprivileged socket may choose.
  std::string allowed_congestion_control;
  // net.core.rmem_max: the largest receive buffer SO_RCVBUF grants without CAP_NET_ADMIN.
  long long rmem_max = 0;
  static HostFacts read();
};

struct CapabilityNeed {
  int cap;          // CAP_* (linux/capability.h)
  std::string why;  // for the log line and the docs
};

// Every capability `c` uses after start-up, once each, with the first reason found.
std::vector<CapabilityNeed> capabilities_needed(const Config& c, const HostFacts& host);

// "cap_net_admin", ...; "cap_N" for one without a name here.
std::string capability_name(int cap);

// Keeps only `keep` (a mask of 1 << CAP_*) in the effective and permitted sets, clears
// the inheritable and ambient ones and, where CAP_SETPCAP allows it, the bounding set.
// A capability not held is not gained. False, with *err, when the kernel refused.
bool keep_only_capabilities(std::uint64_t keep, std::string* err);

// The effective set of this process (from capget), a mask of 1 << CAP_*.
std::uint64_t effective_capabilities();

}  // namespace mpudp

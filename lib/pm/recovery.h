// How fast MPTCP stops waiting for a path that went dark (issue 20, part 3), as kernel
// settings of the daemon's network namespace. The kernel reinjects what a dark subflow
// holds onto another one only once it marks the subflow stale or its MPTCP-level
// retransmission timer fires, and both wait for that subflow's TCP retransmission
// timeouts, which start at 200 ms and double. `tunnel.path_recovery: fast` shortens the
// wait (docs/CONFIG.md); `kernel` leaves the namespace as it is. Measured with a 3 s
// outage of the faster of two paths (test/netns/test_tunnel_dark_path.sh): a call's
// longest gap went from 1.3-2.7 s to 0.5-1.1 s, its late datagrams (both directions)
// from 169-243 to 45-126.
//
// Why not the path manager instead: marking the dark path's endpoint backup
// (MPTCP_PM_CMD_SET_FLAGS, `ip mptcp endpoint change ADDR backup`) 0.7 s into the same
// outage changed nothing measurable. New data then avoids the path, but what the dark
// subflow already holds still waits for the kernel's reinjection, and the MP_PRIO that
// tells the peer travels on the dark subflow itself, so the concentrator never hears of
// it (MPTcpExtMPPrioTx 4 at the CPE, MPTcpExtMPPrioRx 2 at the concentrator: only the
// ones sent while the path worked).
//
// The plan is pure (unit-tested with a fake reader); SysctlTuner writes /proc/sys.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace mpudp::pm {

struct SysctlValue {
  std::string key;    // under /proc/sys, with dots: "net.mptcp.stale_loss_cnt"
  std::string value;  // as the file reads back, without the newline
};

// What `fast` sets: every one of them is per network namespace.
//  - net.mptcp.stale_loss_cnt 1 (default 4): a subflow with data outstanding through one
//    MPTCP retransmission interval is stale; the scheduler leaves it and its data is
//    sent again on the others at once, instead of after four.
//  - net.ipv4.tcp_thin_linear_timeouts 1: a thin stream (fewer than 4 segments in
//    flight, which a call on its subflow is) retransmits at a steady interval instead
//    of doubling it, so the MPTCP timer, which follows the subflows', stays short.
//  - net.ipv4.tcp_rto_min_us 50000 (default 200000): the floor of every TCP
//    retransmission timeout in the namespace, so the first comes after RTT + 50 ms.
// None of the three alone halved the gap; the three together did (docs/CONFIG.md).
std::vector<SysctlValue> fast_recovery_settings();

struct SysctlChange {
  std::string key;
  std::string before;  // what the kernel had
  std::string after;   // what we wrote
};

// The current value of a key, trimmed; nullopt when this kernel has no such setting.
using SysctlRead = std::function<std::optional<std::string>(const std::string& key)>;

// The writes that bring the kernel to `want`: keys already there are left alone (and
// not put back later), keys the kernel lacks are listed in `missing`.
std::vector<SysctlChange> plan_apply(const std::vector<SysctlValue>& want, const SysctlRead& read,
                                     std::vector<std::string>* missing);

// The writes that undo `applied`, for each key that still holds what we wrote: a value
// someone changed since is theirs, and stays.
std::vector<SysctlChange> plan_restore(const std::vector<SysctlChange>& applied,
                                       const SysctlRead& read);

// "/proc/sys/net/mptcp/stale_loss_cnt" for "net.mptcp.stale_loss_cnt".
std::string sysctl_path(const std::string& key);

// Applies the fast settings and puts back, at restore() or destruction, what it
// changed. Failures are logged, never fatal: the tunnel works without them, only
// recovers more slowly.
class SysctlTuner {
 public:
  SysctlTuner() = default;
  ~SysctlTuner() { restore(); }
  SysctlTuner(const SysctlTuner&) = delete;
  SysctlTuner& operator=(const SysctlTuner&) = delete;

  // Idempotent: a second call changes nothing that the first did.
  void apply(const std::vector<SysctlValue>& want);
  void restore();
  const std::vector<SysctlChange>& applied() const { return applied_; }

 private:
  std::vector<SysctlChange> applied_;
};

}  // namespace mpudp::pm

#include "core/privileges.h"

#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "io/socket.h"
#include "relay/relay_socket.h"

namespace mpudp {
namespace {

constexpr int kPrivilegedPortEnd = 1024;  // net.ipv4.ip_unprivileged_port_start's default

void need(std::vector<CapabilityNeed>& out, int cap, std::string why) {
  for (const CapabilityNeed& n : out)
    if (n.cap == cap) return;
  out.push_back({cap, std::move(why)});
}

bool word_in(const std::string& list, const std::string& word) {
  std::istringstream in(list);
  std::string w;
  while (in >> w)
    if (w == word) return true;
  return false;
}

bool capget_v3(__user_cap_data_struct (&data)[2]) {
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  std::memset(data, 0, sizeof data);
  return ::syscall(SYS_capget, &hdr, data) == 0;
}

}  // namespace

HostFacts HostFacts::read() {
  HostFacts h;
  h.allowed_congestion_control = read_first_line("/proc/sys/net/ipv4/tcp_allowed_congestion_control");
  const std::string rmem = read_first_line("/proc/sys/net/core/rmem_max");
  h.rmem_max = rmem.empty() ? 0 : std::atoll(rmem.c_str());
  return h;
}

std::vector<CapabilityNeed> capabilities_needed(const Config& c, const HostFacts& host) {
  std::vector<CapabilityNeed> out;
  if (c.role == ProxyRole::Cpe) {
    // Both interception modes answer LAN clients from transparent reply sockets made
    // when a binding needs one; NFQUEUE's raw sockets (opened at start) only carry what
    // those cannot.
    need(out, CAP_NET_ADMIN,
         c.intercept == InterceptMode::Tproxy
             ? "reply sockets are made transparent (IP_TRANSPARENT) when a binding needs one"
             : "reply sockets are made transparent (IP_TRANSPARENT) when a binding needs "
               "one, and every NFQUEUE verdict is a netfilter netlink message");
    need(out, CAP_NET_BIND_SERVICE,
         "reply sockets bind to the original destination, often a port below 1024 (DNS, "
         "NTP)");
  }
  if (!c.paths.empty())
    need(out, CAP_NET_ADMIN,
         "paths: the path manager adds and removes MPTCP endpoints as links change");
  if (c.tunnel.path_recovery == PathRecovery::Fast)
    need(out, CAP_NET_ADMIN,
         "tunnel.path_recovery: fast puts the namespace's MPTCP and TCP settings back at exit "
         "(and sets them on a reload)");
  const std::string& cc = c.tunnel.congestion_control;
  if (!cc.empty() && !word_in(host.allowed_congestion_control, cc))
    need(out, CAP_NET_ADMIN,
         "tunnel.congestion_control \"" + cc +
             "\" is not in net.ipv4.tcp_allowed_congestion_control");
  const std::string& copy_cc = c.tunnel.copy_congestion_control_name();
  if (c.tunnel.copies && !copy_cc.empty() && !word_in(host.allowed_congestion_control, copy_cc))
    need(out, CAP_NET_ADMIN,
         "tunnel.copy_congestion_control \"" + copy_cc +
             "\" is not in net.ipv4.tcp_allowed_congestion_control");
  if (c.role == ProxyRole::Concentrator && host.rmem_max < kRelayRcvbuf)
    need(out, CAP_NET_ADMIN,
         "net.core.rmem_max " + std::to_string(host.rmem_max) +
             " is below the relay sockets' receive buffer of " + std::to_string(kRelayRcvbuf) +
             " bytes (SO_RCVBUFFORCE)");
  // The CPE keeps CAP_NET_ADMIN anyway; a concentrator without it would have each tunnel
  // socket's buffer capped at rmem_max, and fixed there, below what autotuning reaches.
  if (c.role == ProxyRole::Concentrator &&
      static_cast<long long>(c.tunnel.receive_buffer) > host.rmem_max)
    need(out, CAP_NET_ADMIN,
         "tunnel.receive_buffer " + std::to_string(c.tunnel.receive_buffer) +
             " is above net.core.rmem_max " + std::to_string(host.rmem_max) +
             " (SO_RCVBUFFORCE)");
  if (c.role == ProxyRole::Concentrator)
    for (const Endpoint& at : c.concentrator.listen)
      if (at.port < kPrivilegedPortEnd)
        need(out, CAP_NET_BIND_SERVICE,
             "concentrator.listen on port " + std::to_string(at.port) +
                 " (a reload binds listeners again)");
  if (c.metrics_listen.valid() && c.metrics_listen.port < kPrivilegedPortEnd)
    need(out, CAP_NET_BIND_SERVICE,
         "metrics_listen on port " + std::to_string(c.metrics_listen.port));
  return out;
}

std::string capability_name(int cap) {
  switch (cap) {
    case CAP_NET_ADMIN: return "cap_net_admin";
    case CAP_NET_BIND_SERVICE: return "cap_net_bind_service";
    case CAP_NET_RAW: return "cap_net_raw";
    case CAP_SETPCAP: return "cap_setpcap";
  }
  return "cap_" + std::to_string(cap);
}

std::uint64_t effective_capabilities() {
  __user_cap_data_struct data[2];
  if (!capget_v3(data)) return 0;
  return std::uint64_t{data[0].effective} | (std::uint64_t{data[1].effective} << 32);
}

bool keep_only_capabilities(std::uint64_t keep, std::string* err) {
  __user_cap_data_struct data[2];
  if (!capget_v3(data)) {
    if (err) *err = "capget: " + errno_str(errno);
    return false;
  }
  const std::uint64_t permitted =
      std::uint64_t{data[0].permitted} | (std::uint64_t{data[1].permitted} << 32);
  // The bounding set first, while CAP_SETPCAP (if we have it) is still effective: nothing
  // dropped can come back through an exec either. Without CAP_SETPCAP (a unit that
  // already narrowed CapabilityBoundingSet=) this is skipped.
  if ((permitted >> CAP_SETPCAP) & 1) {
    for (int cap = 0; cap < 64; ++cap) {
      if ((keep >> cap) & 1) continue;
      if (::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno == EINVAL) break;  // past the last
    }
  }
  const std::uint64_t kept = permitted & keep;
  data[0].effective = data[0].permitted = static_cast<std::uint32_t>(kept);
  data[1].effective = data[1].permitted = static_cast<std::uint32_t>(kept >> 32);
  // Clearing the inheritable set clears the ambient one too.
  data[0].inheritable = data[1].inheritable = 0;
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  if (::syscall(SYS_capset, &hdr, data) != 0) {
    if (err) *err = "capset: " + errno_str(errno);
    return false;
  }
  return true;
}

}  // namespace mpudp

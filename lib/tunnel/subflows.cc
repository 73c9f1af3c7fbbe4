#include "tunnel/subflows.h"

#include "ctl/log.h"
#include "tunnel/mptcp_uapi.h"
#include "tunnel/send_limit.h"

#include <algorithm>
#include <cstdint>
#include <ifaddrs.h>
#include <linux/tcp.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <memory>

namespace mpudp {
namespace {

// Room for as many subflows as the kernel allows (8 joins plus the initial one) and then
// some; a bigger count is reported by the kernel in num_subflows and simply cut.
constexpr std::size_t kMaxSubflows = 16;

template <class Elem>
struct SubflowBuf {
  mptcp_subflow_data hdr;
  Elem elems[kMaxSubflows];
};

// Fills `elems` through the generic SOL_MPTCP array protocol; returns how many came back.
template <class Elem>
std::size_t get_array(int fd, int optname, SubflowBuf<Elem>& buf) {
  std::memset(&buf, 0, sizeof(buf));
  buf.hdr.size_subflow_data = sizeof(mptcp_subflow_data);
  buf.hdr.size_user = sizeof(Elem);
  socklen_t len = sizeof(buf);
  if (::getsockopt(fd, SOL_MPTCP, optname, &buf, &len) != 0) return 0;
  // The kernel may fill less of each element than we asked for (an older struct) and
  // says so in size_kernel; the stride stays size_user.
  if (buf.hdr.size_kernel == 0 || len < sizeof(mptcp_subflow_data)) return 0;
  std::size_t n = buf.hdr.num_subflows;
  std::size_t fit = (len - sizeof(mptcp_subflow_data)) / sizeof(Elem);
  return std::min({n, fit, kMaxSubflows});
}

std::string interface_of(const Endpoint& local) {
  ifaddrs* ifa = nullptr;
  if (getifaddrs(&ifa) != 0) return {};
  std::unique_ptr<ifaddrs, void (*)(ifaddrs*)> guard(ifa, freeifaddrs);
  for (ifaddrs* i = ifa; i != nullptr; i = i->ifa_next) {
    if (i->ifa_addr == nullptr) continue;
    socklen_t sl = i->ifa_addr->sa_family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
    auto e = Endpoint::from_sockaddr(i->ifa_addr, sl);
    if (!e) continue;
    e->port = 0;
    Endpoint l = local;
    l.port = 0;
    if (*e == l) return i->ifa_name;
  }
  return {};
}

}  // namespace

bool mptcp_sockopts_supported() {
  static const bool supported = [] {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_MPTCP);
    if (fd < 0) return true;  // no MPTCP at all: said elsewhere, and nothing to ask
    mptcp_info info{};
    socklen_t len = sizeof info;
    const bool ok = ::getsockopt(fd, SOL_MPTCP, MPTCP_INFO, &info, &len) == 0;
    ::close(fd);
    if (!ok)
      LOG_WARN("this kernel has no SOL_MPTCP socket options (Linux 5.16 added them): "
               "status shows no subflows and the send limit sees one path");
    return ok;
  }();
  return supported;
}

bool mptcp_fell_back(int fd) {
  mptcp_info info{};
  socklen_t len = sizeof info;
  if (::getsockopt(fd, SOL_MPTCP, MPTCP_INFO, &info, &len) == 0)
    return (info.mptcpi_flags & MPTCP_INFO_FLAG_FALLBACK) != 0;
  if (mptcp_sockopts_supported()) return true;
  tcp_info t{};
  len = sizeof t;
  return ::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &t, &len) == 0;
}

std::vector<SubflowInfo> subflows_of(int fd, bool* fallback) {
  std::vector<SubflowInfo> out;
  const bool fb = mptcp_fell_back(fd);
  if (fallback) *fallback = fb;
  if (fb) return out;

  auto addrs = std::make_unique<SubflowBuf<mptcp_subflow_addrs>>();
  std::size_t n = get_array(fd, MPTCP_SUBFLOW_ADDRS, *addrs);
  auto tcp = std::make_unique<SubflowBuf<tcp_info>>();
  std::size_t nt = get_array(fd, MPTCP_TCPINFO, *tcp);
  for (std::size_t i = 0; i < n; ++i) {
    SubflowInfo s;
    const mptcp_subflow_addrs& a = addrs->elems[i];
    auto l = Endpoint::from_sockaddr(reinterpret_cast<const sockaddr*>(&a.ss_local),
                                     sizeof(a.ss_local));
    auto r = Endpoint::from_sockaddr(reinterpret_cast<const sockaddr*>(&a.ss_remote),
                                     sizeof(a.ss_remote));
    if (l) s.local = *l;
    if (r) s.remote = *r;
    s.interface = interface_of(s.local);
    // Both arrays come from one walk of the subflow list; a subflow joining between the
    // two calls can shift them, which a status display can live with.
    if (i < nt) {
      const tcp_info& t = tcp->elems[i];
      s.bytes_sent = t.tcpi_bytes_sent;
      s.bytes_received = t.tcpi_bytes_received;
      s.rtt_us = t.tcpi_rtt;
      s.min_rtt_us = t.tcpi_min_rtt;
      s.path_queued_bytes = queued_in_path(std::uint64_t{t.tcpi_unacked} * t.tcpi_snd_mss,
                                           t.tcpi_rtt, t.tcpi_min_rtt);
    }
    out.push_back(std::move(s));
  }
  return out;
}

PathSample path_sample(int fd) {
  PathSample out;
  // One buffer per thread: the daemon's loop calls this often while a tunnel is loaded.
  static thread_local SubflowBuf<tcp_info> tcp;
  const std::size_t n = get_array(fd, MPTCP_TCPINFO, tcp);
  if (n > 0) {
    out.ok = true;
    out.subflows = static_cast<std::uint32_t>(n);
    std::uint32_t lo = UINT32_MAX, hi = 0;
    for (std::size_t i = 0; i < n; ++i) {
      const tcp_info& t = tcp.elems[i];
      out.sent += t.tcpi_bytes_sent;
      out.notsent += t.tcpi_notsent_bytes;
      out.path_queued += queued_in_path(std::uint64_t{t.tcpi_unacked} * t.tcpi_snd_mss,
                                        t.tcpi_rtt, t.tcpi_min_rtt);
      // The paths' own round trips (the least seen), not the smoothed ones: those include
      // the queues the subflows' congestion control keeps, and under an overload the
      // difference of two bottlenecks' queues (seconds at 4 Mbit/s) would let the limit
      // queue that much more unsent data (test_tunnel_sojourn: round trips of 1.8 s).
      if (t.tcpi_min_rtt == 0) continue;  // no RTT sample yet
      lo = std::min(lo, t.tcpi_min_rtt);
      hi = std::max(hi, t.tcpi_min_rtt);
    }
    if (hi > lo) out.rtt_spread_us = hi - lo;
    return out;
  }
  tcp_info t{};
  socklen_t len = sizeof t;
  if (::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &t, &len) == 0 &&
      len >= offsetof(tcp_info, tcpi_bytes_sent) + sizeof t.tcpi_bytes_sent) {
    out.ok = true;
    out.sent = t.tcpi_bytes_sent;
    out.notsent = t.tcpi_notsent_bytes;
    out.path_queued =
        queued_in_path(std::uint64_t{t.tcpi_unacked} * t.tcpi_snd_mss, t.tcpi_rtt, t.tcpi_min_rtt);
  }
  return out;
}

int live_subflows(int fd) {
  static thread_local SubflowBuf<tcp_info> tcp;
  std::memset(&tcp.hdr, 0, sizeof tcp.hdr);
  tcp.hdr.size_subflow_data = sizeof(mptcp_subflow_data);
  tcp.hdr.size_user = sizeof(tcp_info);
  socklen_t len = sizeof tcp;
  if (::getsockopt(fd, SOL_MPTCP, MPTCP_TCPINFO, &tcp, &len) != 0 || tcp.hdr.size_kernel == 0)
    return -1;
  const std::size_t n = std::min<std::size_t>(
      {tcp.hdr.num_subflows, (len - sizeof(mptcp_subflow_data)) / sizeof(tcp_info), kMaxSubflows});
  // The initial subflow stays listed after a reset, closed, until the connection ends.
  constexpr std::uint8_t kTcpEstablished = 1;  // the kernel's TCP_ESTABLISHED
  int live = 0;
  for (std::size_t i = 0; i < n; ++i) live += tcp.elems[i].tcpi_state == kTcpEstablished;
  return live;
}

}  // namespace mpudp

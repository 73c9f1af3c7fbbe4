#include "relay/relay_socket.h"

#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>

#include "ctl/log.h"
#include "relay/icmp_error.h"
#include "io/socket.h"

namespace mpudp {
namespace {
constexpr int kMaxBatchesPerWakeup = 4;
// Errors read per wakeup: the rest wait for the next one (level-triggered).
constexpr int kMaxErrorsPerWakeup = 16;
// How stale the error queue may get under steady traffic (see on_readable).
constexpr double kErrorCheckSeconds = 0.05;

Counter counter_of(wire::IcmpKind k) {
  switch (k) {
    case wire::IcmpKind::PortUnreachable: return Counter::wan_icmp_port_unreachable;
    case wire::IcmpKind::HostUnreachable: return Counter::wan_icmp_host_unreachable;
    case wire::IcmpKind::NetUnreachable: return Counter::wan_icmp_net_unreachable;
    case wire::IcmpKind::AdminProhibited: return Counter::wan_icmp_admin_prohibited;
    case wire::IcmpKind::TooBig: return Counter::wan_icmp_too_big;
  }
  return Counter::wan_icmp_other;
}
}

std::unique_ptr<RelaySocket> RelaySocket::open(Loop* loop, Family family, Binding& owner,
                                               RecvBatch& batch, SendBatch& sends,
                                               RemoteSink& sink, Stats& stats,
                                               std::string* err) {
  Fd fd = make_socket(family_to_af(family), SOCK_DGRAM, IPPROTO_UDP);
  if (!fd) {
    if (err) *err = "socket: " + errno_str(errno);
    return nullptr;
  }
  if (family == Family::V6) set_int_opt(fd.get(), SOL_IPV6, IPV6_V6ONLY, 1);
  // A remote answers a burst of the tunnel's datagrams (what one read of the tunnel
  // carried, or what MPTCP released at once from its out-of-order queue) with a burst of
  // replies while this loop is busy, or shares its core with the CPE: with the default
  // buffer (212 KiB, ~90 full-size datagrams, 9 ms at 100 Mbit/s) the kernel dropped ~1 %
  // of a bulk flow's replies here (UdpRcvbufErrors), uncounted by us.
  set_burst_rcvbuf(fd.get(), kRelayRcvbuf);
  // What still overflows it is counted (wan_rx_overflows).
  OverflowCount::enable(fd.get());
  // ICMP errors about what this socket sent (a closed port, a path MTU) come as messages
  // on its error queue, with the failed remote and the ICMP type, code and MTU: the CPE
  // tells the client (docs/PROTOCOL.md, "ICMP"). Without it the kernel keeps only errno.
  if (family == Family::V6)
    set_int_opt(fd.get(), SOL_IPV6, IPV6_RECVERR, 1);
  else
    set_int_opt(fd.get(), SOL_IP, IP_RECVERR, 1);
  Endpoint any;
  any.family = family;
  if (int e = bind_to(fd.get(), any)) {
    if (err) *err = "bind: " + errno_str(e);
    return nullptr;
  }
  std::unique_ptr<RelaySocket> sock(
      new RelaySocket(loop, std::move(fd), owner, batch, sends, sink, stats));
  sock->port_ = sock->local().port;
  return sock;
}

RelaySocket::RelaySocket(Loop* loop, Fd fd, Binding& owner, RecvBatch& batch,
                         SendBatch& sends, RemoteSink& sink, Stats& stats)
    : loop_(loop), fd_(std::move(fd)), owner_(owner), batch_(batch), sends_(sends), sink_(sink),
      stats_(stats),
      io_(loop, [this](int) { on_readable(); }) {
  io_.watch(fd_.get(), EV_READ);
}

Endpoint RelaySocket::local() const {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(fd_.get(), reinterpret_cast<sockaddr*>(&ss), &len) != 0) return {};
  return Endpoint::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len).value_or(Endpoint{});
}

void RelaySocket::quiesce() {
  io_.stop();
  // Late replies for the ended binding may still come; they are not read.
  set_int_opt(fd_.get(), SOL_SOCKET, SO_RCVBUF, 1);
}

void RelaySocket::close() {
  io_.stop();
  fd_.reset();
}

void RelaySocket::send_to(const Endpoint& remote, std::span<const std::uint8_t> payload) {
  sends_.add(fd_.get(), remote, kSendWan, payload, &owner_.upstream.datagrams,
             &owner_.upstream.bytes);
}

bool RelaySocket::icmp_allowed() {
  const double now = ev_now(loop_);
  icmp_tokens_ = std::min(kIcmpBurst, icmp_tokens_ + (now - icmp_at_) * kIcmpRate);
  icmp_at_ = now;
  if (icmp_tokens_ < 1) return false;
  icmp_tokens_ -= 1;
  return true;
}

void RelaySocket::drain_errors() {
  // The quoted datagram is read only for its length: an ICMP error quotes at most 576
  // bytes (IPv4) or 1280 (IPv6) of the packet.
  static std::uint8_t quoted[1280];
  for (int i = 0; i < kMaxErrorsPerWakeup; ++i) {
    sockaddr_storage name{};
    alignas(cmsghdr) std::uint8_t ctrl[CMSG_SPACE(sizeof(sock_extended_err) +
                                                  sizeof(sockaddr_in6)) + 64];
    iovec iov{quoted, sizeof quoted};
    msghdr m{};
    m.msg_name = &name;
    m.msg_namelen = sizeof name;
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = ctrl;
    m.msg_controllen = sizeof ctrl;
    const ssize_t n = ::recvmsg(fd_.get(), &m, MSG_ERRQUEUE | MSG_DONTWAIT);
    if (n < 0) return;  // EAGAIN: the queue is empty
    const sock_extended_err* ee = nullptr;
    for (cmsghdr* c = CMSG_FIRSTHDR(&m); c != nullptr; c = CMSG_NXTHDR(&m, c))
      if ((c->cmsg_level == SOL_IP && c->cmsg_type == IP_RECVERR) ||
          (c->cmsg_level == SOL_IPV6 && c->cmsg_type == IPV6_RECVERR))
        ee = reinterpret_cast<const sock_extended_err*>(CMSG_DATA(c));
    const auto remote = Endpoint::from_sockaddr(reinterpret_cast<sockaddr*>(&name), m.msg_namelen);
    if (ee == nullptr || !remote) {
      stats_.add(Counter::wan_icmp_other);
      continue;
    }
    const IcmpError c = classify_icmp_error(*ee);
    if (!c.relayed) {
      stats_.add(Counter::wan_icmp_other);
      continue;
    }
    stats_.add(counter_of(c.kind));
    // The binding lives on whatever the error says (a closed port may open, a route may
    // come back): only the client decides what an error means to it.
    if (!icmp_allowed()) {
      stats_.add(Counter::icmp_rate_limited);
      continue;
    }
    sink_.on_remote_error(owner_, *remote, c.kind, c.mtu, static_cast<std::size_t>(n));
    if (!fd_) return;
  }
}

void RelaySocket::on_readable() {
  // The error queue costs a syscall to look at, so it is read only when something says
  // it holds an error: with IP_RECVERR an ICMP error also becomes the socket's pending
  // error (a receive fails with it once) and keeps epoll reporting the socket (a wakeup
  // with nothing to read); and at least every kErrorCheckSeconds under steady traffic,
  // where neither shows. A busy relay socket wakes thousands of times a second.
  const double now = ev_now(loop_);
  if (now - errors_read_at_ >= kErrorCheckSeconds) {
    errors_read_at_ = now;
    drain_errors();
    if (!fd_) return;
  }
  for (int round = 0; round < kMaxBatchesPerWakeup; ++round) {
    const int n = batch_.receive(fd_.get(), true);  // control data: SO_RXQ_OVFL
    if (n < 0 || (n == 0 && round == 0)) {
      if (n < 0)
        LOG_DEBUG("relay recv for %s: %s", owner_.client.str().c_str(), errno_str(errno).c_str());
      errors_read_at_ = now;
      drain_errors();  // the binding lives on whatever it says
      if (!fd_ || n == 0) return;
      continue;  // the pending error was taken; datagrams may follow
    }
    stats_.add(Counter::wan_rx_overflows, overflow_.update(batch_, n));
    for (int i = 0; i < n; ++i) {
      const auto idx = static_cast<std::size_t>(i);
      const auto payload = batch_.payload(idx);
      stats_.add(Counter::wan_rx_datagrams);
      stats_.add(Counter::wan_rx_bytes, payload.size());
      if (batch_.truncated(idx)) {
        stats_.drop(Drop::truncated);
        continue;
      }
      const auto from = Endpoint::from_sockaddr(batch_.source(idx), batch_.source_len(idx));
      if (!from) continue;
      sink_.on_remote_datagram(owner_, *from, payload);
      // The sink may have removed the binding, closing this socket (freed later).
      if (!fd_) return;
    }
    if (n < static_cast<int>(RecvBatch::kSlots)) return;
  }
}

}  // namespace mpudp

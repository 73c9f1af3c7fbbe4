#include "relay/relay_socket.h"

#include <netinet/in.h>

#include <cerrno>

#include "ctl/log.h"
#include "io/socket.h"

namespace mpudp {
namespace {
constexpr int kMaxBatchesPerWakeup = 4;
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
    : fd_(std::move(fd)), owner_(owner), batch_(batch), sends_(sends), sink_(sink),
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

void RelaySocket::on_readable() {
  for (int round = 0; round < kMaxBatchesPerWakeup; ++round) {
    const int n = batch_.receive(fd_.get(), true);  // control data: SO_RXQ_OVFL
    if (n < 0) {
      // ICMP errors (port unreachable) surface here; the binding lives on.
      LOG_DEBUG("relay recv for %s: %s", owner_.client.str().c_str(), errno_str(errno).c_str());
      return;
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

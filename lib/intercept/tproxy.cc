#include "intercept/tproxy.h"

#include <netinet/in.h>

#include <cerrno>

#include "ctl/log.h"
#include "intercept/origdst.h"
#include "io/socket.h"

namespace mpudp {
namespace {
// Batches read per wakeup before yielding to the tunnel and other sockets.
constexpr int kMaxBatchesPerWakeup = 4;
}  // namespace

std::unique_ptr<TproxySocket> TproxySocket::open(Loop* loop, Family family,
                                                 std::uint16_t port, RecvBatch& batch,
                                                 LanSink& sink, Stats& stats,
                                                 std::string* err) {
  const bool v6 = family == Family::V6;
  Fd fd = make_socket(v6 ? AF_INET6 : AF_INET, SOCK_DGRAM, IPPROTO_UDP);
  auto fail = [&](const char* what, int e) {
    if (err) *err = std::string(what) + ": " + errno_str(e);
    return nullptr;
  };
  if (!fd) return fail("socket", errno);
  if (int e = set_int_opt(fd.get(), SOL_SOCKET, SO_REUSEADDR, 1)) return fail("SO_REUSEADDR", e);
  if (v6) {
    if (int e = set_int_opt(fd.get(), SOL_IPV6, IPV6_V6ONLY, 1)) return fail("IPV6_V6ONLY", e);
    if (int e = set_int_opt(fd.get(), SOL_IPV6, IPV6_TRANSPARENT, 1))
      return fail("IPV6_TRANSPARENT (needs CAP_NET_ADMIN)", e);
    if (int e = set_int_opt(fd.get(), SOL_IPV6, IPV6_RECVORIGDSTADDR, 1))
      return fail("IPV6_RECVORIGDSTADDR", e);
    // The DSCP a phone or console marked its packets with (cpe.copy_classes).
    if (int e = set_int_opt(fd.get(), SOL_IPV6, IPV6_RECVTCLASS, 1))
      return fail("IPV6_RECVTCLASS", e);
  } else {
    if (int e = set_int_opt(fd.get(), SOL_IP, IP_TRANSPARENT, 1))
      return fail("IP_TRANSPARENT (needs CAP_NET_ADMIN)", e);
    if (int e = set_int_opt(fd.get(), SOL_IP, IP_RECVORIGDSTADDR, 1))
      return fail("IP_RECVORIGDSTADDR", e);
    if (int e = set_int_opt(fd.get(), SOL_IP, IP_RECVTOS, 1)) return fail("IP_RECVTOS", e);
  }
  // Bursts from many LAN clients arrive between two loop iterations; 208 KiB (rmem_max's
  // default) is 30 ms of a 60 Mbit/s flow, less than one scheduling hiccup on a busy router.
  set_burst_rcvbuf(fd.get(), 4 << 20);
  // What still overflows it is counted (lan_rx_overflows), not lost in silence. Without
  // the option (user-mode emulators refuse it) the proxy still works, uncounted.
  if (int e = OverflowCount::enable(fd.get()))
    LOG_WARN("SO_RXQ_OVFL: %s: datagrams the kernel drops at the intercept socket go uncounted",
             errno_str(e).c_str());
  Endpoint any;
  any.family = family;
  any.port = port;
  if (int e = bind_to(fd.get(), any)) return fail(("bind " + any.str()).c_str(), e);
  return std::unique_ptr<TproxySocket>(new TproxySocket(loop, std::move(fd), batch, sink, stats));
}

TproxySocket::TproxySocket(Loop* loop, Fd fd, RecvBatch& batch, LanSink& sink, Stats& stats)
    : fd_(std::move(fd)), batch_(batch), sink_(sink), stats_(stats),
      io_(loop, [this](int) { on_readable(); }) {
  io_.watch(fd_.get(), EV_READ);
}

void TproxySocket::on_readable() {
  for (int round = 0; round < kMaxBatchesPerWakeup; ++round) {
    const int n = batch_.receive(fd_.get(), true);
    if (n < 0) {
      LOG_WARN("tproxy recvmmsg: %s", errno_str(errno).c_str());
      return;
    }
    stats_.add(Counter::lan_rx_overflows, overflow_.update(batch_, n));
    for (int i = 0; i < n; ++i) {
      const auto payload = batch_.payload(static_cast<std::size_t>(i));
      stats_.add(Counter::lan_rx_datagrams);
      stats_.add(Counter::lan_rx_bytes, payload.size());
      if (batch_.truncated(static_cast<std::size_t>(i))) {
        stats_.drop(Drop::truncated);
        continue;
      }
      const auto client = Endpoint::from_sockaddr(batch_.source(static_cast<std::size_t>(i)),
                                                  batch_.source_len(static_cast<std::size_t>(i)));
      std::uint8_t dscp = 0;
      const auto dst = parse_origdst(batch_.header(static_cast<std::size_t>(i)), &dscp);
      if (!client || !dst) {
        stats_.drop(Drop::no_origdst);
        continue;
      }
      sink_.on_lan_datagram(*client, *dst, payload, dscp);
    }
    if (n < static_cast<int>(RecvBatch::kSlots)) return;
  }
}

int ReplySockets::get(const Endpoint& from) {
  if (auto it = map_.find(from); it != map_.end()) {
    lru_.splice(lru_.begin(), lru_, it->second);
    return it->second->fd.get();
  }
  const bool v6 = from.is_v6();
  Fd fd = make_socket(v6 ? AF_INET6 : AF_INET, SOCK_DGRAM, IPPROTO_UDP);
  if (!fd) return -1;
  int e = v6 ? set_int_opt(fd.get(), SOL_IPV6, IPV6_TRANSPARENT, 1)
             : set_int_opt(fd.get(), SOL_IP, IP_TRANSPARENT, 1);
  if (!e) e = set_int_opt(fd.get(), SOL_SOCKET, SO_REUSEADDR, 1);
  if (!e && v6) e = set_int_opt(fd.get(), SOL_IPV6, IPV6_V6ONLY, 1);
  if (!e) e = bind_to(fd.get(), from);
  if (e) {
    LOG_DEBUG("reply socket for %s: %s", from.str().c_str(), errno_str(e).c_str());
    errno = e;
    return -1;
  }
  // It only sends; whatever reaches it by accident should not pile up.
  set_int_opt(fd.get(), SOL_SOCKET, SO_RCVBUF, 1);
  stats_.add(Counter::reply_sockets_opened);
  if (map_.size() >= max_ && !lru_.empty()) {
    sends_.flush();  // datagrams may wait for the socket about to close
    map_.erase(lru_.back().from);
    lru_.pop_back();
    stats_.add(Counter::reply_sockets_evicted);
  }
  lru_.push_front(Entry{from, std::move(fd)});
  map_.emplace(from, lru_.begin());
  return lru_.front().fd.get();
}

bool ReplySockets::send(const Endpoint& from, const Endpoint& client,
                        std::span<const std::uint8_t> payload, std::uint64_t* datagrams,
                        std::uint64_t* bytes) {
  const int fd = get(from);
  if (fd < 0) {
    stats_.drop(Drop::reply_socket_failed);
    return false;
  }
  sends_.add(fd, client, kSendLan, payload, datagrams, bytes);
  return true;
}

}  // namespace mpudp

#include "intercept/nfqueue.h"

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_queue.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

extern "C" {
#include <libnetfilter_queue/libnetfilter_queue.h>
}

#include "ctl/log.h"
#include "intercept/packet.h"
#include "intercept/raw_sockets.h"
#include "io/socket.h"

#ifndef IPV6_HDRINCL
#define IPV6_HDRINCL 36  // Linux >= 4.5; older libc headers lack the name
#endif

namespace mpudp {
namespace {
// A queued packet is at most 64 KiB plus netlink and nfqueue attributes.
constexpr std::size_t kBufBytes = 65536 + 8192;
// Packets read per wakeup before the verdict goes out and other watchers get a turn.
constexpr int kMaxPerWakeup = 256;
constexpr int kAckTimeoutMs = 2000;
// Configuration and verdict messages are a few attributes long.
constexpr std::size_t kCfgBytes = 512;
}  // namespace

std::unique_ptr<NfqueueIntercept> NfqueueIntercept::open(Loop* loop, const Options& opts,
                                                         LanSink& sink, Stats& stats,
                                                         std::string* err) {
  auto fail = [&](const std::string& what, int e) {
    if (err) *err = what + ": " + errno_str(e);
    return nullptr;
  };
  Fd fd = make_socket(AF_NETLINK, SOCK_RAW, NETLINK_NETFILTER);
  if (!fd) return fail("netlink socket", errno);
  sockaddr_nl sa{};
  sa.nl_family = AF_NETLINK;
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0)
    return fail("netlink bind", errno);
  // Bursts from the LAN land here between two loop iterations.
  set_burst_rcvbuf(fd.get(), 8 << 20);
  std::unique_ptr<NfqueueIntercept> q(
      new NfqueueIntercept(loop, std::move(fd), opts.queue, sink, stats));

  alignas(nlmsghdr) char buf[kCfgBytes];
  nlmsghdr* nlh = nfq_nlmsg_put(buf, NFQNL_MSG_CONFIG, opts.queue);
  nfq_nlmsg_cfg_put_cmd(nlh, AF_UNSPEC, NFQNL_CFG_CMD_BIND);
  if (int e = q->request(nlh))
    return fail("binding NFQUEUE " + std::to_string(opts.queue) +
                    (e == EBUSY || e == EEXIST ? " (another process holds it)" : ""),
                e);

  nlh = nfq_nlmsg_put(buf, NFQNL_MSG_CONFIG, opts.queue);
  nfq_nlmsg_cfg_put_params(nlh, NFQNL_COPY_PACKET, 0xffff);
  nfq_nlmsg_cfg_put_qmaxlen(nlh, opts.max_len);
  // The kernel segments GSO packets for us (no F_GSO): each one we read is one datagram.
  const std::uint32_t flags = opts.fail_open ? NFQA_CFG_F_FAIL_OPEN : 0;
  mnl_attr_put_u32(nlh, NFQA_CFG_FLAGS, htonl(flags));
  mnl_attr_put_u32(nlh, NFQA_CFG_MASK, htonl(NFQA_CFG_F_FAIL_OPEN));
  if (int e = q->request(nlh)) return fail("configuring NFQUEUE", e);
  return q;
}

NfqueueIntercept::NfqueueIntercept(Loop* loop, Fd fd, std::uint16_t queue, LanSink& sink,
                                   Stats& stats)
    : fd_(std::move(fd)), queue_(queue), sink_(sink), stats_(stats),
      io_(loop, [this](int) { on_readable(); }), buf_(kBufBytes) {
  io_.watch(fd_.get(), EV_READ);
}

NfqueueIntercept::~NfqueueIntercept() {
  // Packets still queued would wait for a verdict that never comes; with the queue
  // unbound the kernel drops them (or bypasses, per the rule) from now on.
  if (pending_) send_verdicts();
  alignas(nlmsghdr) char buf[kCfgBytes];
  nlmsghdr* nlh = nfq_nlmsg_put(buf, NFQNL_MSG_CONFIG, queue_);
  nfq_nlmsg_cfg_put_cmd(nlh, AF_UNSPEC, NFQNL_CFG_CMD_UNBIND);
  ::send(fd_.get(), nlh, nlh->nlmsg_len, MSG_DONTWAIT);
}

int NfqueueIntercept::request(nlmsghdr* nlh) { return nfnl_request(fd_.get(), nlh, ++seq_, buf_); }

int nfnl_request(int fd, nlmsghdr* nlh, std::uint32_t seq, std::span<char> buf) {
  nlh->nlmsg_flags |= NLM_F_ACK;
  nlh->nlmsg_seq = seq;
  if (::send(fd, nlh, nlh->nlmsg_len, 0) < 0) return errno;
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    const int r = ::poll(&p, 1, kAckTimeoutMs);
    if (r == 0) return ETIMEDOUT;
    if (r < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    const ssize_t n = ::recv(fd, buf.data(), buf.size(), MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return errno;
    }
    int left = static_cast<int>(n);
    for (auto* h = reinterpret_cast<nlmsghdr*>(buf.data()); mnl_nlmsg_ok(h, left);
         h = mnl_nlmsg_next(h, &left)) {
      if (h->nlmsg_type == NLMSG_ERROR && h->nlmsg_seq == seq) {
        const auto* e = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(h));
        return -e->error;
      }
    }
  }
}

void NfqueueIntercept::on_readable() {
  for (int i = 0; i < kMaxPerWakeup; ++i) {
    const ssize_t n = ::recv(fd_.get(), buf_.data(), buf_.size(), MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == ENOBUFS) {
        // The kernel could not queue messages to us: packets are lost (counted, not
        // known individually). Keep reading.
        stats_.add(Counter::nfqueue_overruns);
        continue;
      }
      if (errno != EAGAIN) LOG_WARN("nfqueue recv: %s", errno_str(errno).c_str());
      break;
    }
    if (mnl_cb_run(buf_.data(), static_cast<std::size_t>(n), 0, 0, &on_message, this) < 0 &&
        errno != 0)
      LOG_DEBUG("nfqueue message: %s", errno_str(errno).c_str());
  }
  if (pending_) send_verdicts();
}

int NfqueueIntercept::on_message(const nlmsghdr* nlh, void* self) {
  static_cast<NfqueueIntercept*>(self)->handle(nlh);
  return MNL_CB_OK;
}

void NfqueueIntercept::handle(const nlmsghdr* nlh) {
  nlattr* attr[NFQA_MAX + 1] = {};
  if (nfq_nlmsg_parse(nlh, attr) < 0 || attr[NFQA_PACKET_HDR] == nullptr) return;
  const auto* ph = static_cast<const nfqnl_msg_packet_hdr*>(
      mnl_attr_get_payload(attr[NFQA_PACKET_HDR]));
  const std::uint32_t id = ntohl(ph->packet_id);
  // Ids grow monotonically; one batch verdict for the highest covers all read before it.
  if (!pending_ || id > max_id_) max_id_ = id;
  pending_ = true;

  stats_.add(Counter::lan_rx_datagrams);
  if (attr[NFQA_PAYLOAD] == nullptr) {
    stats_.drop(Drop::nfqueue_bad_packet);
    return;
  }
  const std::span<const std::uint8_t> pkt(
      static_cast<const std::uint8_t*>(mnl_attr_get_payload(attr[NFQA_PAYLOAD])),
      mnl_attr_get_payload_len(attr[NFQA_PAYLOAD]));
  if (attr[NFQA_CAP_LEN] != nullptr && ntohl(mnl_attr_get_u32(attr[NFQA_CAP_LEN])) > pkt.size()) {
    stats_.drop(Drop::truncated);
    return;
  }
  packet::ParseError why{};
  const auto d = packet::parse_udp(pkt, &why);
  if (!d) {
    stats_.drop(Drop::nfqueue_bad_packet);
    return;
  }
  stats_.add(Counter::lan_rx_bytes, d->payload.size());
  sink_.on_lan_datagram(d->src, d->dst, d->payload, d->dscp);
}

void NfqueueIntercept::send_verdicts() {
  alignas(nlmsghdr) char buf[kCfgBytes];
  nlmsghdr* nlh = nfq_nlmsg_put(buf, NFQNL_MSG_VERDICT_BATCH, queue_);
  // Drop: the datagram travels through the tunnel now, the original must not go on.
  nfq_nlmsg_verdict_put(nlh, static_cast<int>(max_id_), NF_DROP);
  if (::send(fd_.get(), nlh, nlh->nlmsg_len, MSG_DONTWAIT) < 0)
    LOG_WARN("nfqueue verdict: %s", errno_str(errno).c_str());
  pending_ = false;
}

std::unique_ptr<RawReplies> RawReplies::open(Stats& stats, std::string* err) {
  RawSockets raw;
  if (!raw.open(err)) return nullptr;
  return std::unique_ptr<RawReplies>(
      new RawReplies(std::move(raw.v4), std::move(raw.v6), stats));
}

RawReplies::RawReplies(Fd v4, Fd v6, Stats& stats)
    : v4_(std::move(v4)), v6_(std::move(v6)), stats_(stats), buf_(65536) {}

RawReplies::Result RawReplies::send(const Endpoint& from, const Endpoint& to,
                                    std::span<const std::uint8_t> payload) {
  const std::size_t len = packet::build_udp(from, to, payload, buf_);
  if (len == 0) return Result::TooBig;
  sockaddr_storage ss;
  Endpoint dst = to;
  dst.port = 0;  // raw sockets take the address only
  const socklen_t sl = dst.to_sockaddr(ss);
  const int fd = to.is_v6() ? v6_.get() : v4_.get();
  for (;;) {
    if (::sendto(fd, buf_.data(), len, MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&ss), sl) >= 0) {
      stats_.add(Counter::lan_tx_datagrams);
      stats_.add(Counter::lan_tx_raw_datagrams);
      stats_.add(Counter::lan_tx_bytes, payload.size());
      return Result::Sent;
    }
    if (errno != EINTR) break;
  }
  if (errno == EMSGSIZE) return Result::TooBig;
  LOG_DEBUG("raw reply to %s from %s: %s", to.str().c_str(), from.str().c_str(),
            errno_str(errno).c_str());
  return Result::Failed;
}

}  // namespace mpudp

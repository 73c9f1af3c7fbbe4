// NFQUEUE interception: the LAN's UDP arrives as whole IP packets on a netfilter queue
// (iptables NFQUEUE / nft queue, installed by iptables/mpudp-rules --mode nfqueue). The
// addresses come from the packet's headers; every packet read is dropped by verdict, since
// its payload now travels through the tunnel. Replies leave through RawReplies.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "ctl/stats.h"
#include "intercept/tproxy.h"
#include "io/fd.h"
#include "io/loop.h"
#include "net/endpoint.h"

struct nlmsghdr;

namespace mpudp {

// Sends a configuration request on a NETLINK_NETFILTER socket (NLM_F_ACK and sequence
// number `seq` are set here) and waits up to 2 s for the kernel's answer to it: 0 or an
// errno. Messages arriving meanwhile land in `buf` and are skipped.
int nfnl_request(int fd, nlmsghdr* nlh, std::uint32_t seq, std::span<char> buf);

class NfqueueIntercept {
 public:
  struct Options {
    std::uint16_t queue = 0;
    // Queue full: the kernel accepts the packet (it goes on natively) instead of dropping
    // it. Daemon absent is the rule's business (--queue-bypass / nft "bypass").
    bool fail_open = true;
    std::uint32_t max_len = 8192;  // packets the kernel holds waiting for us
  };
  static std::unique_ptr<NfqueueIntercept> open(Loop* loop, const Options& opts, LanSink& sink,
                                                Stats& stats, std::string* err);
  ~NfqueueIntercept();
  NfqueueIntercept(const NfqueueIntercept&) = delete;
  NfqueueIntercept& operator=(const NfqueueIntercept&) = delete;

 private:
  NfqueueIntercept(Loop* loop, Fd fd, std::uint16_t queue, LanSink& sink, Stats& stats);
  // Sends a configuration message and waits for the kernel's answer: 0 or an errno.
  int request(nlmsghdr* nlh);
  void on_readable();
  static int on_message(const nlmsghdr* nlh, void* self);
  void handle(const nlmsghdr* nlh);
  void send_verdicts();

  Fd fd_;
  std::uint16_t queue_;
  LanSink& sink_;
  Stats& stats_;
  IoWatcher io_;
  std::vector<char> buf_;
  std::uint32_t seq_ = 0;
  std::uint32_t max_id_ = 0;  // highest packet id read and not yet given a verdict
  bool pending_ = false;
};

// Replies to LAN clients as raw IP packets whose source is the original destination:
// IPPROTO_RAW sockets (IP_HDRINCL, IPV6_HDRINCL) need no transparent bind per destination.
// The kernel does not fragment such packets, so a reply larger than the route's MTU comes
// back TooBig and the caller sends it through a transparent socket instead.
class RawReplies {
 public:
  enum class Result { Sent, TooBig, Failed };
  static std::unique_ptr<RawReplies> open(Stats& stats, std::string* err);
  Result send(const Endpoint& from, const Endpoint& to, std::span<const std::uint8_t> payload);

 private:
  RawReplies(Fd v4, Fd v6, Stats& stats);
  Fd v4_, v6_;
  Stats& stats_;
  std::vector<std::uint8_t> buf_;
};

}  // namespace mpudp

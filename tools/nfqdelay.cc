// nfqdelay: a link's delay, jitter, loss and outages for the namespace testbed, where the
// kernel has no netem. An iptables rule (-j NFQUEUE --queue-num N --queue-bypass, see
// test/netns/delay_lib.sh) hands it the packets of one path in one direction; it holds
// each for its delay and then accepts it by verdict, or drops it. Only verdicts are
// issued, so the kernel copies metadata and no payload, and hands GSO packets over whole.
//
//   nfqdelay --queue N [--delay MS] [--jitter MS] [--reorder] [--loss PCT]
//            [--outage-at SEC --outage-for SEC]... [--limit N] [--queue-maxlen N]
//            [--seed N]
//
//   --delay MS         how long each packet is held (decimals allowed; default 0)
//   --jitter MS        plus or minus up to this much, uniform; packets keep their order
//                      (one drawn a shorter wait leaves with its predecessor) unless
//   --reorder          lets jitter reorder them
//   --loss PCT         drop this share of the packets at random
//   --outage-at SEC    from SEC seconds after the start, drop everything for
//   --outage-for SEC   SEC seconds (pairs, as many as wanted)
//   --limit N          hold at most N packets, drop (and count) the rest (0: no bound but
//                      the kernel's queue)
//   --queue-maxlen N   packets the kernel keeps queued for us, held ones included (4096)
//   --seed N           for the jitter and loss draws (default: from the clock)
//
// SIGUSR1 drops everything from now on (the path goes dark; "nfqdelay: dark" on stderr),
// SIGUSR2 ends that ("nfqdelay: light"). What is held when the path goes dark is still
// delivered: it is on the wire. SIGTERM or SIGINT accept what is held, write
//   nfqdelay: queue N passed P lost L outage O limit M max_held H kernel_dropped K overruns R
// to stderr and exit 0 (kernel_dropped: the kernel's queue was full; overruns: messages
// the kernel could not hand us). Exit status 1 on a netlink error, 64 on a usage error.
#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_queue.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

extern "C" {
#include <libnetfilter_queue/libnetfilter_queue.h>
}

#include "delay_line.h"
#include "intercept/nfqueue.h"
#include "io/fd.h"
#include "io/loop.h"
#include "io/socket.h"

using namespace mpudp;

namespace {

// With COPY_META a queued packet is a header and a few attributes.
constexpr std::size_t kRecvBytes = 65536;
// Packets read per wakeup before releases and verdicts get a turn.
constexpr int kMaxPerWakeup = 512;
// Room for one verdict message (header, nfgenmsg, verdict attribute) with margin.
constexpr std::size_t kVerdictBytes = 64;
constexpr std::size_t kVerdictBuf = 64 * 1024;

std::int64_t mono_us() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
}

[[noreturn]] void usage(const std::string& msg) {
  if (!msg.empty()) std::fprintf(stderr, "nfqdelay: %s\n", msg.c_str());
  std::fprintf(stderr,
               "usage: nfqdelay --queue N [--delay MS] [--jitter MS] [--reorder] [--loss PCT]\n"
               "                [--outage-at SEC --outage-for SEC]... [--limit N]\n"
               "                [--queue-maxlen N] [--seed N]\n");
  std::exit(64);
}

// The kernel's drops on our queue (/proc/net/netfilter/nfnetlink_queue: queue number,
// peer, total, copy mode, copy range, queue_dropped, user_dropped, ...): -1 if unknown.
long long kernel_dropped(int queue) {
  std::ifstream f("/proc/net/netfilter/nfnetlink_queue");
  std::string line;
  while (std::getline(f, line)) {
    std::istringstream in(line);
    long long q = -1, peer = 0, total = 0, mode = 0, range = 0, dropped = 0, user = 0;
    if (in >> q >> peer >> total >> mode >> range >> dropped >> user && q == queue)
      return dropped + user;
  }
  return -1;
}

class Delayer {
 public:
  Delayer(Loop* loop, Fd fd, Fd timer, const DelayOptions& o)
      : loop_(loop), fd_(std::move(fd)), timer_fd_(std::move(timer)),
        queue_(static_cast<std::uint16_t>(o.queue)), line_(o.line, mono_us()),
        rng_(o.seed != 0 ? o.seed : static_cast<std::uint64_t>(mono_us())), recv_(kRecvBytes),
        out_(kVerdictBuf), io_(loop, [this](int) { on_readable(); }),
        timer_(loop, [this](int) { on_timer(); }) {
    io_.watch(fd_.get(), EV_READ);
    timer_.watch(timer_fd_.get(), EV_READ);
  }

  void set_dark(bool dark) {
    line_.set_dark(dark);
    std::fprintf(stderr, "nfqdelay: %s\n", dark ? "dark" : "light");
  }

  // Everything held goes on; the summary line.
  void finish() {
    line_.release_all(due_);
    accept_due();
    flush();
    const auto& c = line_.counts();
    std::fprintf(stderr,
                 "nfqdelay: queue %u passed %llu lost %llu outage %llu limit %llu max_held %zu "
                 "kernel_dropped %lld overruns %llu\n",
                 queue_, static_cast<unsigned long long>(c.passed),
                 static_cast<unsigned long long>(c.lost),
                 static_cast<unsigned long long>(c.outage),
                 static_cast<unsigned long long>(c.limit), c.max_held, kernel_dropped(queue_),
                 static_cast<unsigned long long>(overruns_));
  }

  bool failed() const { return failed_; }

 private:
  void on_readable() {
    for (int i = 0; i < kMaxPerWakeup; ++i) {
      const ssize_t n = ::recv(fd_.get(), recv_.data(), recv_.size(), MSG_DONTWAIT);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == ENOBUFS) {  // the kernel could not hand us messages: those are dropped
          ++overruns_;
          continue;
        }
        if (errno != EAGAIN) fatal("recv", errno);
        break;
      }
      now_us_ = mono_us();
      mnl_cb_run(recv_.data(), static_cast<std::size_t>(n), 0, 0, &on_message, this);
    }
    release(mono_us());
  }

  void on_timer() {
    std::uint64_t expirations = 0;
    if (::read(timer_fd_.get(), &expirations, sizeof expirations) < 0 && errno != EAGAIN)
      fatal("timerfd read", errno);
    armed_us_ = 0;
    release(mono_us());
  }

  static int on_message(const nlmsghdr* nlh, void* self) {
    static_cast<Delayer*>(self)->handle(nlh);
    return MNL_CB_OK;
  }

  void handle(const nlmsghdr* nlh) {
    nlattr* attr[NFQA_MAX + 1] = {};
    if (nfq_nlmsg_parse(nlh, attr) < 0 || attr[NFQA_PACKET_HDR] == nullptr) return;
    const auto* ph =
        static_cast<const nfqnl_msg_packet_hdr*>(mnl_attr_get_payload(attr[NFQA_PACKET_HDR]));
    const std::uint32_t id = ntohl(ph->packet_id);
    const auto v = line_.arrive(id, now_us_, draw_(rng_), draw_(rng_));
    if (v != DelayLine::Verdict::Hold) verdict(id, NF_DROP);
  }

  void release(std::int64_t now) {
    line_.release_due(now, due_);
    accept_due();
    flush();
    const std::int64_t next = line_.next_release().value_or(0);
    if (next != armed_us_) arm(next);
  }

  // An absolute timerfd rather than a libev timer: libev rounds its waits up to whole
  // milliseconds and adds one, which would lengthen every delay by 1 to 2 ms. 0 disarms.
  void arm(std::int64_t at_us) {
    itimerspec its{};
    its.it_value.tv_sec = at_us / 1000000;
    its.it_value.tv_nsec = at_us % 1000000 * 1000;
    if (::timerfd_settime(timer_fd_.get(), TFD_TIMER_ABSTIME, &its, nullptr) != 0)
      fatal("timerfd_settime", errno);
    armed_us_ = at_us;
  }

  void accept_due() {
    for (const std::uint32_t id : due_) verdict(id, NF_ACCEPT);
    due_.clear();
  }

  // One verdict per packet, by its id (jitter with --reorder releases ids out of order, so
  // a batch verdict "up to id" would be wrong); many messages go out in one send.
  void verdict(std::uint32_t id, int v) {
    if (used_ + kVerdictBytes > out_.size()) flush();
    nlmsghdr* nlh = nfq_nlmsg_put(out_.data() + used_, NFQNL_MSG_VERDICT, queue_);
    nfq_nlmsg_verdict_put(nlh, static_cast<int>(id), v);
    used_ += NLMSG_ALIGN(nlh->nlmsg_len);
  }

  void flush() {
    if (used_ == 0) return;
    if (::send(fd_.get(), out_.data(), used_, 0) < 0) fatal("verdict", errno);
    used_ = 0;
  }

  void fatal(const char* what, int err) {
    std::fprintf(stderr, "nfqdelay: %s: %s\n", what, std::strerror(err));
    failed_ = true;
    ev_break(loop_, EVBREAK_ALL);
  }

  Loop* loop_;
  Fd fd_;
  Fd timer_fd_;
  std::int64_t armed_us_ = 0;  // the timer's expiry, 0 when disarmed
  std::uint16_t queue_;
  DelayLine line_;
  std::mt19937_64 rng_;
  std::uniform_real_distribution<double> draw_{0.0, 1.0};
  std::vector<char> recv_;
  std::vector<char> out_;
  std::size_t used_ = 0;
  std::vector<std::uint32_t> due_;
  std::int64_t now_us_ = 0;
  std::uint64_t overruns_ = 0;
  bool failed_ = false;
  IoWatcher io_;
  IoWatcher timer_;
};

// The netlink socket bound to the queue and configured; invalid with `err` set on failure.
Fd open_queue(const DelayOptions& o, std::string* err) {
  Fd fd = make_socket(AF_NETLINK, SOCK_RAW, NETLINK_NETFILTER);
  sockaddr_nl sa{};
  sa.nl_family = AF_NETLINK;
  if (!fd || ::bind(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    *err = "netlink socket: " + errno_str(errno);
    return Fd();
  }
  // A burst at line rate arrives between two loop iterations.
  set_burst_rcvbuf(fd.get(), 16 << 20);
  const auto queue = static_cast<std::uint16_t>(o.queue);
  std::vector<char> buf(kRecvBytes);
  alignas(nlmsghdr) char cfg[512];
  nlmsghdr* nlh = nfq_nlmsg_put(cfg, NFQNL_MSG_CONFIG, queue);
  nfq_nlmsg_cfg_put_cmd(nlh, AF_UNSPEC, NFQNL_CFG_CMD_BIND);
  if (int e = nfnl_request(fd.get(), nlh, 1, buf)) {
    *err = "binding NFQUEUE " + std::to_string(queue) + ": " + errno_str(e);
    return Fd();
  }
  nlh = nfq_nlmsg_put(cfg, NFQNL_MSG_CONFIG, queue);
  // Metadata only: a verdict needs the packet id, nothing of the payload. F_GSO: a GSO
  // packet is held whole, as the link would carry its segments back to back, instead of
  // the kernel segmenting it for us. No fail-open: a full queue drops, as a full link
  // buffer would.
  nfq_nlmsg_cfg_put_params(nlh, NFQNL_COPY_META, 0);
  nfq_nlmsg_cfg_put_qmaxlen(nlh, o.queue_maxlen);
  mnl_attr_put_u32(nlh, NFQA_CFG_FLAGS, htonl(NFQA_CFG_F_GSO));
  mnl_attr_put_u32(nlh, NFQA_CFG_MASK, htonl(NFQA_CFG_F_GSO | NFQA_CFG_F_FAIL_OPEN));
  if (int e = nfnl_request(fd.get(), nlh, 2, buf)) {
    *err = "configuring NFQUEUE " + std::to_string(queue) + ": " + errno_str(e);
    return Fd();
  }
  return fd;
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string_view> args(argv + 1, argv + argc);
  for (const auto a : args)
    if (a == "-h" || a == "--help") usage("");
  DelayOptions opts;
  std::string err;
  if (!parse_delay_options(args, &opts, &err)) usage(err);

  Fd fd = open_queue(opts, &err);
  if (!fd) {
    std::fprintf(stderr, "nfqdelay: %s\n", err.c_str());
    return 1;
  }
  Fd timer(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
  if (!timer) {
    std::fprintf(stderr, "nfqdelay: timerfd: %s\n", std::strerror(errno));
    return 1;
  }
  Loop* loop = ev_default_loop(0);
  Delayer d(loop, std::move(fd), std::move(timer), opts);
  auto stop = [loop](int) { ev_break(loop, EVBREAK_ALL); };
  SignalWatcher term(loop, SIGTERM, stop);
  SignalWatcher intr(loop, SIGINT, stop);
  SignalWatcher dark(loop, SIGUSR1, [&d](int) { d.set_dark(true); });
  SignalWatcher light(loop, SIGUSR2, [&d](int) { d.set_dark(false); });
  std::fprintf(stderr, "nfqdelay: ready on queue %d\n", opts.queue);
  ev_run(loop, 0);
  d.finish();
  return d.failed() ? 1 : 0;
}

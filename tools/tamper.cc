// tamper: an on-path attacker for the tunnel tests. It reads the TCP segments of one
// link from an NFQUEUE (an iptables rule sends it the subflows to or from the
// concentrator's port) and rewrites the payload of chosen segments in place, keeping
// their length so that TCP sequencing stays valid, and with correct IPv4 header and TCP
// checksums so that the receiver's TCP takes them. MPTCP does not notice either: DSS
// checksums are off by default, so the rewritten bytes reach the MPTCP socket, which is
// what the tunnel's own record layer has to catch.
//
//   tamper --queue Q --port P [--dir to|from] MODE [--after N] [--count K] [...]
//
//   --queue Q         NFQUEUE number the rule sends the segments to
//   --port P          the concentrator's tunnel port
//   --dir to|from     segments towards P (to, the default: CPE -> concentrator) or from it
//   MODE, one of:
//   --flip-after N    after N bytes of payload, XOR 0xff into one byte of the next segment
//                     that carries payload (--offset I: which byte; negative counts from
//                     the end; default -1, the last)
//   --inject DEST     replace the payload of a later segment with an OPEN (flow --flow-id,
//                     client --client) and a DATA frame carrying a datagram for DEST,
//                     the DATA padded to the segment's length; segments too short for
//                     both frames are skipped. With --in-record, only a segment that
//                     starts with a TLS application-data record header (17 03 03) is
//                     taken, and the frames go after its 5 header bytes: a forged record,
//                     which the receiver's TLS has to decrypt, rather than frames in clear
//   --replay          replace the payload of a later segment with that of an earlier
//                     segment of the same connection and direction, of the same length
//                     and with other bytes
//   --after N         bytes of payload to let through before acting (inject, replay)
//   --count K         act on K segments, then let everything through (default 1)
//   --min-len L       act only on segments with at least L bytes of payload (default 1;
//                     e.g. to leave a 4-byte KEEPALIVE alone)
//
// Everything else (other ports, the other direction, segments without payload, and all
// segments once done) is accepted unchanged. Each action is a line on stdout
// ("flip ...", "inject ...", "replay ..."); SIGTERM or SIGINT ends the run with a summary
//   tamper: segments S bytes B acted A
// Exit status: 0 after a signal, 1 on a netlink error, 64 on a usage error.
#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_queue.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

extern "C" {
#include <libnetfilter_queue/libnetfilter_queue.h>
}

#include "intercept/nfqueue.h"
#include "intercept/packet.h"
#include "io/fd.h"
#include "net/endpoint.h"
#include "wire/frame.h"

using namespace mpudp;

namespace {

volatile sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

enum class Mode { None, Flip, Inject, Replay };

struct Options {
  int queue = -1;
  int port = -1;
  bool to_port = true;
  Mode mode = Mode::None;
  std::uint64_t after = 0;
  long count = 1;
  std::size_t min_len = 1;
  long offset = -1;
  Endpoint inject_dst;
  Endpoint inject_client = *Endpoint::parse("198.18.0.99:4444");
  std::uint32_t flow_id = 0x00bad00d;
  bool in_record = false;
};

[[noreturn]] void usage(const std::string& msg) {
  if (!msg.empty()) std::fprintf(stderr, "tamper: %s\n", msg.c_str());
  std::fprintf(stderr,
               "usage: tamper --queue Q --port P [--dir to|from]\n"
               "              (--flip-after N [--offset I] | --inject DEST [--client ADDR:PORT]\n"
               "               [--flow-id ID] [--in-record] | --replay) [--after N] [--count K] [--min-len L]\n");
  std::exit(64);
}

bool parse_num(const char* s, long long lo, long long hi, long long* out) {
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(s, &end, 0);
  if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) return false;
  *out = v;
  return true;
}

Options parse_args(int argc, char** argv) {
  Options o;
  auto set_mode = [&](Mode m, const char* flag) {
    if (o.mode != Mode::None) usage(std::string("only one mode, but ") + flag + " is a second");
    o.mode = m;
  };
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) usage(std::string(a) + " needs a value");
      return argv[++i];
    };
    auto number = [&](long long lo, long long hi) {
      const char* v = value();
      long long n = 0;
      if (!parse_num(v, lo, hi, &n))
        usage(std::string(a) + ": '" + v + "' is not a number in " + std::to_string(lo) +
              ".." + std::to_string(hi));
      return n;
    };
    if (a == "--queue") {
      o.queue = static_cast<int>(number(0, 65535));
    } else if (a == "--port") {
      o.port = static_cast<int>(number(1, 65535));
    } else if (a == "--dir") {
      const std::string_view d = value();
      if (d != "to" && d != "from") usage("--dir: 'to' or 'from', not '" + std::string(d) + "'");
      o.to_port = d == "to";
    } else if (a == "--flip-after") {
      set_mode(Mode::Flip, "--flip-after");
      o.after = static_cast<std::uint64_t>(number(0, 1LL << 40));
    } else if (a == "--offset") {
      o.offset = static_cast<long>(number(-65535, 65534));
    } else if (a == "--inject") {
      set_mode(Mode::Inject, "--inject");
      const char* v = value();
      const auto e = Endpoint::parse(v);
      if (!e || e->port == 0) usage(std::string("--inject: '") + v + "' is not ADDR:PORT");
      o.inject_dst = *e;
    } else if (a == "--client") {
      const char* v = value();
      const auto e = Endpoint::parse(v);
      if (!e) usage(std::string("--client: '") + v + "' is not ADDR:PORT");
      o.inject_client = *e;
    } else if (a == "--flow-id") {
      o.flow_id = static_cast<std::uint32_t>(number(0, 0xffffffffLL));
    } else if (a == "--in-record") {
      o.in_record = true;
    } else if (a == "--replay") {
      set_mode(Mode::Replay, "--replay");
    } else if (a == "--after") {
      o.after = static_cast<std::uint64_t>(number(0, 1LL << 40));
    } else if (a == "--count") {
      o.count = static_cast<long>(number(1, 1000000));
    } else if (a == "--min-len") {
      o.min_len = static_cast<std::size_t>(number(1, 65535));
    } else if (a == "-h" || a == "--help") {
      usage("");
    } else {
      usage("unknown argument '" + std::string(a) + "'");
    }
  }
  if (o.queue < 0) usage("--queue is required");
  if (o.port < 0) usage("--port is required");
  if (o.mode == Mode::None) usage("a mode is required: --flip-after N, --inject DEST or --replay");
  if (o.in_record && o.mode != Mode::Inject) usage("--in-record goes with --inject");
  if (o.mode == Mode::Inject && o.inject_client.family != o.inject_dst.family)
    usage("--client and --inject must be of the same address family");
  return o;
}

// One TCP segment inside a queued packet, located, with what a checksum needs.
struct Segment {
  bool v6 = false;
  std::size_t ip_off = 0;   // always 0: the packet starts at the IP header
  std::size_t tcp_off = 0;  // TCP header
  std::size_t data_off = 0; // payload
  std::size_t end = 0;      // end of the TCP segment (IP length, not trailing padding)
  std::uint16_t sport = 0, dport = 0;
  std::uint32_t seq = 0;
};

std::uint16_t rd16(const std::uint8_t* p) { return static_cast<std::uint16_t>(p[0] << 8 | p[1]); }
std::uint32_t rd32(const std::uint8_t* p) {
  return std::uint32_t{p[0]} << 24 | std::uint32_t{p[1]} << 16 | std::uint32_t{p[2]} << 8 | p[3];
}
void wr16(std::uint8_t* p, std::uint16_t v) {
  p[0] = static_cast<std::uint8_t>(v >> 8);
  p[1] = static_cast<std::uint8_t>(v);
}

// Locates the TCP segment of an IPv4 or IPv6 packet; nullopt for anything else (another
// protocol, a fragment, a truncated packet).
std::optional<Segment> locate(const std::uint8_t* p, std::size_t n) {
  Segment s;
  if (n < 1) return std::nullopt;
  std::uint8_t proto = 0;
  if (p[0] >> 4 == 4) {
    if (n < 20) return std::nullopt;
    const std::size_t ihl = std::size_t{p[0] & 0x0fu} * 4;
    const std::size_t total = rd16(p + 2);
    if (ihl < 20 || total < ihl || total > n) return std::nullopt;
    if ((rd16(p + 6) & 0x3fff) != 0) return std::nullopt;  // MF or an offset: a fragment
    proto = p[9];
    s.tcp_off = ihl;
    s.end = total;
  } else if (p[0] >> 4 == 6) {
    if (n < 40) return std::nullopt;
    s.v6 = true;
    s.end = 40 + std::size_t{rd16(p + 4)};
    if (s.end > n) return std::nullopt;
    proto = p[6];
    std::size_t off = 40;
    // Hop-by-hop, routing and destination options: skip; a fragment header: give up.
    while (proto == 0 || proto == 43 || proto == 60) {
      if (off + 8 > s.end) return std::nullopt;
      proto = p[off];
      off += (std::size_t{p[off + 1]} + 1) * 8;
    }
    s.tcp_off = off;
  } else {
    return std::nullopt;
  }
  if (proto != IPPROTO_TCP || s.tcp_off + 20 > s.end) return std::nullopt;
  const std::uint8_t* t = p + s.tcp_off;
  const std::size_t doff = std::size_t{t[12]} >> 4 << 2;
  if (doff < 20 || s.tcp_off + doff > s.end) return std::nullopt;
  s.data_off = s.tcp_off + doff;
  s.sport = rd16(t);
  s.dport = rd16(t + 2);
  s.seq = rd32(t + 4);
  return s;
}

// Recomputes the IPv4 header checksum and the TCP checksum from scratch: a queued packet
// may carry only the pseudo-header sum (checksum offload), and the kernel checks the
// whole sum of a packet we rewrote.
void fix_checksums(std::uint8_t* p, const Segment& s) {
  const std::size_t tcp_len = s.end - s.tcp_off;
  std::uint8_t pseudo[40] = {};
  std::size_t plen = 0;
  if (s.v6) {
    std::memcpy(pseudo, p + 8, 32);
    pseudo[34] = static_cast<std::uint8_t>(tcp_len >> 8);
    pseudo[35] = static_cast<std::uint8_t>(tcp_len);
    pseudo[39] = IPPROTO_TCP;
    plen = 40;
  } else {
    wr16(p + 10, 0);
    wr16(p + 10, packet::checksum({p, s.tcp_off}));
    std::memcpy(pseudo, p + 12, 8);
    pseudo[9] = IPPROTO_TCP;
    wr16(pseudo + 10, static_cast<std::uint16_t>(tcp_len));
    plen = 12;
  }
  // checksum() returns the complement of the folded sum; its complement is the sum,
  // which the TCP checksum continues.
  const std::uint32_t pseudo_sum = static_cast<std::uint16_t>(~packet::checksum({pseudo, plen}));
  std::uint8_t* t = p + s.tcp_off;
  wr16(t + 16, 0);
  wr16(t + 16, packet::checksum({t, tcp_len}, pseudo_sum));
}

// An earlier segment kept for --replay.
struct Kept {
  std::uint16_t sport = 0, dport = 0;
  std::uint32_t seq = 0;
  std::vector<std::uint8_t> payload;
};

class Tamper {
 public:
  explicit Tamper(const Options& o) : o_(o) {}

  // Returns true when it rewrote the packet (the caller sends it back with the verdict).
  bool on_packet(std::uint8_t* p, std::size_t n) {
    const auto s = locate(p, n);
    if (!s) return false;
    const bool ours = o_.to_port ? s->dport == o_.port : s->sport == o_.port;
    if (!ours || s->end <= s->data_off) return false;  // not our direction, or no payload
    const std::size_t len = s->end - s->data_off;
    ++segments_;
    const std::uint64_t before = bytes_;
    bytes_ += len;
    std::uint8_t* data = p + s->data_off;
    bool acted = false;
    if (acted_ < o_.count && before >= o_.after && len >= o_.min_len) {
      switch (o_.mode) {
        case Mode::Flip: acted = flip(*s, data, len); break;
        case Mode::Inject: acted = inject(*s, data, len); break;
        case Mode::Replay: acted = replay(*s, data, len); break;
        case Mode::None: break;
      }
    }
    if (o_.mode == Mode::Replay && !acted) keep(*s, data, len);
    if (!acted) return false;
    ++acted_;
    fix_checksums(p, *s);
    std::fflush(stdout);
    return true;
  }

  void summary() const {
    std::printf("tamper: segments %llu bytes %llu acted %ld\n",
                static_cast<unsigned long long>(segments_),
                static_cast<unsigned long long>(bytes_), acted_);
    std::fflush(stdout);
  }

 private:
  bool flip(const Segment& s, std::uint8_t* data, std::size_t len) {
    const long i = o_.offset < 0 ? static_cast<long>(len) + o_.offset : o_.offset;
    if (i < 0 || i >= static_cast<long>(len)) return false;  // wait for a longer segment
    const std::uint8_t was = data[i];
    data[i] ^= 0xff;
    std::printf("flip: %u->%u seq %u len %zu byte %ld 0x%02x->0x%02x after %llu bytes\n",
                s.sport, s.dport, s.seq, len, i, was, data[i],
                static_cast<unsigned long long>(bytes_ - len));
    return true;
  }

  bool inject(const Segment& s, std::uint8_t* seg, std::size_t seg_len) {
    static constexpr std::size_t kRecordHeader = 5;
    std::size_t skip = 0;
    if (o_.in_record) {
      if (seg_len <= kRecordHeader || seg[0] != 0x17 || seg[1] != 0x03 || seg[2] != 0x03)
        return false;
      skip = kRecordHeader;
    }
    std::uint8_t* data = seg + skip;
    const std::size_t len = seg_len - skip;
    wire::Open open;
    open.flow_id = o_.flow_id;
    open.client = o_.inject_client;
    open.remote = o_.inject_dst;
    const std::size_t open_len = wire::encoded_size(open);
    if (open_len == 0 || len < open_len + wire::kDataOverhead) return false;
    static constexpr std::string_view kMarker = "mpudp-tamper-injected ";
    std::vector<std::uint8_t> payload(len - open_len - wire::kDataOverhead);
    for (std::size_t i = 0; i < payload.size(); ++i)
      payload[i] = static_cast<std::uint8_t>(kMarker[i % kMarker.size()]);
    wire::Data d;
    d.flow_id = o_.flow_id;
    d.payload = payload;
    if (wire::encode(open, {data, len}) != open_len ||
        wire::encode(d, {data + open_len, len - open_len}) != len - open_len)
      return false;
    std::printf("inject: %u->%u seq %u len %zu OPEN+DATA%s flow 0x%x %s -> %s, %zu bytes\n",
                s.sport, s.dport, s.seq, seg_len, skip ? " in a record" : "", o_.flow_id,
                o_.inject_client.str().c_str(), o_.inject_dst.str().c_str(), payload.size());
    return true;
  }

  bool replay(const Segment& s, std::uint8_t* data, std::size_t len) {
    for (auto it = kept_.rbegin(); it != kept_.rend(); ++it) {
      // The same connection, an earlier sequence number (not this segment retransmitted),
      // the same length, other bytes (a copy of identical bytes changes nothing).
      if (it->sport != s.sport || it->dport != s.dport || it->seq == s.seq ||
          it->payload.size() != len || std::memcmp(it->payload.data(), data, len) == 0)
        continue;
      std::memcpy(data, it->payload.data(), len);
      std::printf("replay: %u->%u seq %u len %zu with the bytes of seq %u\n", s.sport,
                  s.dport, s.seq, len, it->seq);
      return true;
    }
    return false;
  }

  void keep(const Segment& s, const std::uint8_t* data, std::size_t len) {
    static constexpr std::size_t kKeep = 256;
    if (kept_.size() == kKeep) kept_.pop_front();
    kept_.push_back({s.sport, s.dport, s.seq, {data, data + len}});
  }

  const Options& o_;
  std::uint64_t segments_ = 0;
  std::uint64_t bytes_ = 0;
  long acted_ = 0;
  std::deque<Kept> kept_;
};

struct Run {
  int fd;
  std::uint16_t queue;
  Tamper& tamper;
  std::vector<char> verdict;
};

int on_message(const nlmsghdr* nlh, void* arg) {
  auto& run = *static_cast<Run*>(arg);
  nlattr* attr[NFQA_MAX + 1] = {};
  if (nfq_nlmsg_parse(nlh, attr) < 0 || attr[NFQA_PACKET_HDR] == nullptr) return MNL_CB_OK;
  const auto* ph =
      static_cast<const nfqnl_msg_packet_hdr*>(mnl_attr_get_payload(attr[NFQA_PACKET_HDR]));
  const std::uint32_t id = ntohl(ph->packet_id);
  auto* vh = nfq_nlmsg_put(run.verdict.data(), NFQNL_MSG_VERDICT, run.queue);
  nfq_nlmsg_verdict_put(vh, static_cast<int>(id), NF_ACCEPT);
  if (attr[NFQA_PAYLOAD] != nullptr) {
    auto* pkt = static_cast<std::uint8_t*>(mnl_attr_get_payload(attr[NFQA_PAYLOAD]));
    const std::size_t len = mnl_attr_get_payload_len(attr[NFQA_PAYLOAD]);
    // A packet cut short (NFQA_CAP_LEN larger) cannot be rewritten whole: let it pass.
    const bool whole = attr[NFQA_CAP_LEN] == nullptr ||
                       ntohl(mnl_attr_get_u32(attr[NFQA_CAP_LEN])) <= len;
    if (whole && run.tamper.on_packet(pkt, len)) nfq_nlmsg_verdict_put_pkt(vh, pkt, len);
  }
  if (::send(run.fd, vh, vh->nlmsg_len, 0) < 0)
    std::fprintf(stderr, "tamper: verdict: %s\n", std::strerror(errno));
  return MNL_CB_OK;
}

}  // namespace

int main(int argc, char** argv) {
  const Options opts = parse_args(argc, argv);
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  struct sigaction sa{};
  sa.sa_handler = on_signal;  // no SA_RESTART: recv returns EINTR and the loop ends
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);

  Fd fd(::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER));
  if (!fd) {
    std::fprintf(stderr, "tamper: netlink socket: %s\n", std::strerror(errno));
    return 1;
  }
  sockaddr_nl sn{};
  sn.nl_family = AF_NETLINK;
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&sn), sizeof sn) != 0) {
    std::fprintf(stderr, "tamper: netlink bind: %s\n", std::strerror(errno));
    return 1;
  }
  const auto queue = static_cast<std::uint16_t>(opts.queue);
  std::vector<char> buf(65536 + 8192);
  alignas(nlmsghdr) char cfg[512];
  nlmsghdr* nlh = nfq_nlmsg_put(cfg, NFQNL_MSG_CONFIG, queue);
  nfq_nlmsg_cfg_put_cmd(nlh, AF_UNSPEC, NFQNL_CFG_CMD_BIND);
  if (int e = nfnl_request(fd.get(), nlh, 1, buf)) {
    std::fprintf(stderr, "tamper: binding NFQUEUE %u: %s\n", queue, std::strerror(e));
    return 1;
  }
  nlh = nfq_nlmsg_put(cfg, NFQNL_MSG_CONFIG, queue);
  // Whole packets; the kernel segments GSO packets for us (no F_GSO), so each one read
  // is one TCP segment on the wire. Fail open: an overrun must not look like an attack.
  nfq_nlmsg_cfg_put_params(nlh, NFQNL_COPY_PACKET, 0xffff);
  mnl_attr_put_u32(nlh, NFQA_CFG_FLAGS, htonl(NFQA_CFG_F_FAIL_OPEN));
  mnl_attr_put_u32(nlh, NFQA_CFG_MASK, htonl(NFQA_CFG_F_FAIL_OPEN));
  if (int e = nfnl_request(fd.get(), nlh, 2, buf)) {
    std::fprintf(stderr, "tamper: configuring NFQUEUE %u: %s\n", queue, std::strerror(e));
    return 1;
  }
  std::fprintf(stderr, "tamper: ready on queue %u\n", queue);

  Tamper tamper(opts);
  Run run{fd.get(), queue, tamper, std::vector<char>(65536 + 1024)};
  while (!g_stop) {
    const ssize_t n = ::recv(fd.get(), buf.data(), buf.size(), 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == ENOBUFS) continue;  // the kernel dropped messages (fail open: accepted)
      std::fprintf(stderr, "tamper: recv: %s\n", std::strerror(errno));
      return 1;
    }
    mnl_cb_run(buf.data(), static_cast<std::size_t>(n), 0, 0, &on_message, &run);
  }
  tamper.summary();
  return 0;
}

// udpprobe: the UDP test client of the integration tests and the demo.
//
//   udpprobe [options] DEST_ADDR:PORT
//     --sizes LIST      datagram sizes, comma separated (default 64); 0..65535
//     --ports N         N client sockets (N source ports) used concurrently (default 1)
//     --count K         send each size K times per port (default 1)
//     --rate PPS        pace sends to PPS datagrams per second overall (0: no pacing)
//     --duration SEC    keep sending rounds at --rate for SEC seconds (needs --rate)
//     --timeout MS      how long to wait for echoes after the last send (default 2000)
//     --bind ADDR       source address of every client socket
//     --min-ok F        succeed if at least this fraction of echoes came back (1.0)
//     --json            JSON summary on stdout (the text report goes to stderr)
//
// Every datagram carries, inside its payload, a 16-byte header (magic "UPRB", port index,
// sequence number, size; big endian) followed by a pattern that depends on (port index,
// sequence number, position). Datagrams shorter than the header are pattern only (byte i
// is pattern(idx, seq, i), and pattern(idx, seq, 0) == (idx + seq) & 0xff); their echoes
// are matched to the oldest outstanding datagram of the same size on the same socket
// whose bytes they reproduce. An echo counts as "echoed" only if it
//   (a) arrives on the socket that sent it (no crossed replies),
//   (b) is byte-identical to what was sent, and
//   (c) comes from exactly DEST_ADDR:PORT (the recvfrom source address),
// so a pass proves a transparent proxy answered from the original destination.
//
// Output, one line per size, then a summary:
//   size S: sent N, echoed M, bad K, wrong_source W
//   udpprobe: sent N echoed M bad K wrong_source W lost L
//   udpprobe: rtt_us p50 X p99 Y max Z
// Exit status: 0 if echoed/sent >= --min-ok with no bad and no wrong-source datagram,
// 1 otherwise, 2 on a usage error.
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "net/endpoint.h"

namespace {

using mpudp::Endpoint;

constexpr std::size_t kHeader = 16;
constexpr std::uint8_t kMagic[4] = {'U', 'P', 'R', 'B'};
constexpr std::size_t kMaxDatagram = 65535;

[[noreturn]] void usage(const std::string& msg) {
  if (!msg.empty()) std::fprintf(stderr, "udpprobe: %s\n", msg.c_str());
  std::fprintf(stderr,
               "usage: udpprobe [--sizes 1,512,...] [--ports N] [--count K] [--rate PPS]\n"
               "                [--duration SEC] [--timeout MS] [--bind ADDR] [--min-ok F]\n"
               "                [--json] DEST_ADDR:PORT\n");
  std::exit(2);
}

std::int64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

template <typename T>
std::optional<T> parse_num(std::string_view s) {
  T v{};
  if (s.empty()) return std::nullopt;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

std::optional<double> parse_double(const std::string& s) {
  if (s.empty()) return std::nullopt;
  char* end = nullptr;
  errno = 0;
  double v = std::strtod(s.c_str(), &end);
  if (errno != 0 || end != s.c_str() + s.size() || !std::isfinite(v)) return std::nullopt;
  return v;
}

struct Options {
  std::vector<std::uint32_t> sizes{64};
  std::uint32_t ports = 1;
  std::uint64_t count = 1;
  double rate = 0;
  double duration = 0;
  std::int64_t timeout_ms = 2000;
  std::optional<Endpoint> bind;
  double min_ok = 1.0;
  bool json = false;
  Endpoint dest;
};

Options parse_args(int argc, char** argv) {
  Options o;
  bool have_dest = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    std::string val;
    bool has_inline = false;
    if (a.rfind("--", 0) == 0) {
      auto eq = a.find('=');
      if (eq != std::string::npos) {
        val = a.substr(eq + 1);
        a = a.substr(0, eq);
        has_inline = true;
      }
    }
    auto need = [&]() -> std::string {
      if (has_inline) return val;
      if (i + 1 >= argc) usage(a + " needs a value");
      return argv[++i];
    };
    if (a == "--sizes") {
      o.sizes.clear();
      std::string v = need();
      std::string_view sv = v;
      while (true) {
        auto comma = sv.find(',');
        auto item = sv.substr(0, comma);
        auto n = parse_num<std::uint32_t>(item);
        if (!n || *n > kMaxDatagram) usage("bad size '" + std::string(item) + "' (0..65535)");
        o.sizes.push_back(*n);
        if (comma == std::string_view::npos) break;
        sv.remove_prefix(comma + 1);
      }
    } else if (a == "--ports") {
      auto n = parse_num<std::uint32_t>(need());
      if (!n || *n == 0 || *n > 60000) usage("--ports wants 1..60000");
      o.ports = *n;
    } else if (a == "--count") {
      auto n = parse_num<std::uint64_t>(need());
      if (!n || *n == 0) usage("--count wants a positive integer");
      o.count = *n;
    } else if (a == "--rate") {
      auto d = parse_double(need());
      if (!d || *d < 0) usage("--rate wants a number >= 0");
      o.rate = *d;
    } else if (a == "--duration") {
      auto d = parse_double(need());
      if (!d || *d <= 0) usage("--duration wants a number > 0");
      o.duration = *d;
    } else if (a == "--timeout") {
      auto n = parse_num<std::int64_t>(need());
      if (!n || *n < 0) usage("--timeout wants milliseconds >= 0");
      o.timeout_ms = *n;
    } else if (a == "--bind") {
      std::string v = need();
      auto ep = Endpoint::parse_address(v);
      if (!ep && v.size() > 2 && v.front() == '[' && v.back() == ']')
        ep = Endpoint::parse_address(std::string_view(v).substr(1, v.size() - 2));
      if (!ep) usage("--bind wants an address: " + v);
      o.bind = ep;
    } else if (a == "--min-ok") {
      auto d = parse_double(need());
      if (!d || *d < 0 || *d > 1) usage("--min-ok wants a fraction 0..1");
      o.min_ok = *d;
    } else if (a == "--json") {
      if (has_inline) usage("--json takes no value");
      o.json = true;
    } else if (a == "-h" || a == "--help") {
      usage("");
    } else if (!a.empty() && a[0] == '-' && a != "-") {
      usage("unknown option " + a);
    } else {
      if (have_dest) usage("more than one destination");
      auto ep = Endpoint::parse(a);
      if (!ep) usage("not an ADDR:PORT destination: " + a);
      o.dest = *ep;
      have_dest = true;
    }
  }
  if (!have_dest) usage("no destination");
  if (o.duration > 0 && o.rate <= 0) usage("--duration needs --rate > 0");
  if (o.bind && o.bind->family != o.dest.family)
    usage("--bind and the destination are of different address families");
  return o;
}

inline std::uint8_t pattern(std::uint32_t idx, std::uint32_t seq, std::size_t i) {
  return static_cast<std::uint8_t>(idx + seq + i * 151u + (i >> 8));
}

void put32(std::uint8_t* p, std::uint32_t v) {
  p[0] = static_cast<std::uint8_t>(v >> 24);
  p[1] = static_cast<std::uint8_t>(v >> 16);
  p[2] = static_cast<std::uint8_t>(v >> 8);
  p[3] = static_cast<std::uint8_t>(v);
}
std::uint32_t get32(const std::uint8_t* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) |
         (std::uint32_t{p[2]} << 8) | std::uint32_t{p[3]};
}

void fill(std::uint8_t* buf, std::uint32_t idx, std::uint32_t seq, std::uint32_t size) {
  std::size_t i = 0;
  if (size >= kHeader) {
    std::memcpy(buf, kMagic, 4);
    put32(buf + 4, idx);
    put32(buf + 8, seq);
    put32(buf + 12, size);
    i = kHeader;
  }
  for (; i < size; ++i) buf[i] = pattern(idx, seq, i);
}

bool pattern_ok(const std::uint8_t* buf, std::uint32_t idx, std::uint32_t seq,
                std::size_t from, std::size_t size) {
  for (std::size_t i = from; i < size; ++i)
    if (buf[i] != pattern(idx, seq, i)) return false;
  return true;
}

enum State : std::uint8_t { Pending = 0, Echoed = 1, Answered = 2 /* wrong source */ };

struct Rec {
  std::uint32_t size;
  std::uint32_t size_slot;  // index into the per-size statistics
  std::int64_t sent_ns;
  State state;
};

struct Port {
  int fd = -1;
  std::vector<Rec> recs;  // indexed by sequence number
  std::size_t first_pending = 0;
};

struct SizeStats {
  std::uint32_t size = 0;
  std::uint64_t sent = 0, echoed = 0, bad = 0, wrong_source = 0, lost = 0;
};

struct Totals {
  std::uint64_t sent = 0, echoed = 0, bad = 0, wrong_source = 0, lost = 0;
  std::uint64_t crossed = 0, duplicate = 0, corrupt = 0, bad_other_size = 0;
  std::uint64_t send_errors = 0;
  int first_send_errno = 0;
};

class Probe {
 public:
  explicit Probe(Options o) : opt_(std::move(o)), buf_(kMaxDatagram + 1) {
    for (auto s : opt_.sizes) {
      // Same size listed twice: one line for it.
      bool dup = false;
      for (auto& st : stats_) dup = dup || st.size == s;
      if (!dup) stats_.push_back(SizeStats{s, 0, 0, 0, 0, 0});
    }
    dest_len_ = opt_.dest.to_sockaddr(dest_sa_);
  }

  bool open_sockets() {
    raise_nofile(opt_.ports + 32);
    ports_.resize(opt_.ports);
    pfds_.resize(opt_.ports);
    int af = opt_.dest.is_v4() ? AF_INET : AF_INET6;
    for (std::uint32_t i = 0; i < opt_.ports; ++i) {
      int fd = socket(af, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (fd < 0) {
        std::fprintf(stderr, "udpprobe: socket %u: %s\n", i, std::strerror(errno));
        return false;
      }
      int one = 1;
      if (af == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
      const int bufsz = 1 << 20;
      if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bufsz, sizeof bufsz) != 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bufsz, sizeof bufsz);
      if (opt_.bind) {
        sockaddr_storage ss;
        socklen_t len = opt_.bind->to_sockaddr(ss);
        if (bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
          std::fprintf(stderr, "udpprobe: bind %s: %s\n", opt_.bind->address_str().c_str(),
                       std::strerror(errno));
          close(fd);
          return false;
        }
      }
      ports_[i].fd = fd;
      pfds_[i] = pollfd{fd, POLLIN, 0};
    }
    return true;
  }

  void run() {
    const std::uint64_t per_round = opt_.sizes.size() * std::uint64_t{opt_.ports};
    const std::int64_t start = now_ns();
    const std::int64_t end =
        opt_.duration > 0 ? start + static_cast<std::int64_t>(opt_.duration * 1e9) : 0;
    const double interval_ns = opt_.rate > 0 ? 1e9 / opt_.rate : 0;
    std::uint64_t k = 0;  // datagrams sent so far (the pacing clock)
    bool done = false;
    for (std::uint64_t round = 0; !done; ++round) {
      if (opt_.duration <= 0 && round >= opt_.count) break;
      if (opt_.duration > 0 && now_ns() >= end) break;
      for (std::uint64_t j = 0; j < per_round; ++j, ++k) {
        if (opt_.rate > 0) {
          std::int64_t due = start + static_cast<std::int64_t>(interval_ns * double(k));
          if (end != 0 && due >= end) {
            done = true;
            break;
          }
          while (now_ns() < due) receive(due);
        } else if ((k & 63) == 63) {
          receive(0);  // keep the receive queues short during a burst
        }
        std::size_t size_idx = j / opt_.ports;
        auto port = static_cast<std::uint32_t>(j % opt_.ports);
        send_one(port, size_idx);
      }
    }
    last_send_ = now_ns();
    const std::int64_t deadline = last_send_ + opt_.timeout_ms * 1000000;
    while (outstanding_ > 0 && now_ns() < deadline) receive(deadline);
    // Whatever is still on the sockets arrived in time; count it before judging.
    receive(0);
    for (auto& p : ports_)
      for (auto& r : p.recs)
        if (r.state == Pending) {
          ++stats_[r.size_slot].lost;
          ++t_.lost;
        }
    elapsed_ns_ = now_ns() - start;
  }

  int report() {
    std::sort(rtts_.begin(), rtts_.end());
    auto pct = [&](double p) -> std::int64_t {
      if (rtts_.empty()) return 0;
      auto rank = static_cast<std::size_t>(std::ceil(p * double(rtts_.size())));
      if (rank == 0) rank = 1;
      return rtts_[std::min(rank, rtts_.size()) - 1] / 1000;
    };
    std::int64_t p50 = pct(0.50), p99 = pct(0.99);
    std::int64_t mx = rtts_.empty() ? 0 : rtts_.back() / 1000;
    double fraction = t_.sent == 0 ? 0.0 : double(t_.echoed) / double(t_.sent);
    // A tiny tolerance so that --min-ok 0.9 with 9 of 10 is not lost to rounding.
    bool ok = t_.sent > 0 && fraction + 1e-9 >= opt_.min_ok && t_.bad == 0 &&
              t_.wrong_source == 0;

    FILE* text = opt_.json ? stderr : stdout;
    for (auto& s : stats_)
      std::fprintf(text, "size %u: sent %llu, echoed %llu, bad %llu, wrong_source %llu\n",
                   s.size, ull(s.sent), ull(s.echoed), ull(s.bad), ull(s.wrong_source));
    if (t_.bad_other_size > 0)
      std::fprintf(text, "udpprobe: %llu bad datagrams of a length that was never sent\n",
                   ull(t_.bad_other_size));
    if (t_.bad > 0)
      std::fprintf(text, "udpprobe: bad detail: crossed %llu duplicate %llu corrupt %llu\n",
                   ull(t_.crossed), ull(t_.duplicate), ull(t_.corrupt));
    if (t_.send_errors > 0)
      std::fprintf(text, "udpprobe: %llu sends failed (first: %s)\n", ull(t_.send_errors),
                   std::strerror(t_.first_send_errno));
    std::fprintf(text, "udpprobe: sent %llu echoed %llu bad %llu wrong_source %llu lost %llu\n",
                 ull(t_.sent), ull(t_.echoed), ull(t_.bad), ull(t_.wrong_source),
                 ull(t_.lost));
    std::fprintf(text, "udpprobe: rtt_us p50 %lld p99 %lld max %lld\n",
                 static_cast<long long>(p50), static_cast<long long>(p99),
                 static_cast<long long>(mx));
    std::fflush(text);

    if (opt_.json) {
      std::string j = "{";
      j += "\"dest\":\"" + opt_.dest.str() + "\"";
      j += ",\"ports\":" + std::to_string(opt_.ports);
      j += ",\"sent\":" + std::to_string(t_.sent);
      j += ",\"echoed\":" + std::to_string(t_.echoed);
      j += ",\"bad\":" + std::to_string(t_.bad);
      j += ",\"wrong_source\":" + std::to_string(t_.wrong_source);
      j += ",\"lost\":" + std::to_string(t_.lost);
      j += ",\"crossed\":" + std::to_string(t_.crossed);
      j += ",\"duplicate\":" + std::to_string(t_.duplicate);
      j += ",\"corrupt\":" + std::to_string(t_.corrupt);
      j += ",\"send_errors\":" + std::to_string(t_.send_errors);
      j += ",\"elapsed_ms\":" + std::to_string(elapsed_ns_ / 1000000);
      j += ",\"rtt_us\":{\"p50\":" + std::to_string(p50) + ",\"p99\":" + std::to_string(p99) +
           ",\"max\":" + std::to_string(mx) + "}";
      j += ",\"sizes\":[";
      for (std::size_t i = 0; i < stats_.size(); ++i) {
        auto& s = stats_[i];
        if (i) j += ",";
        j += "{\"size\":" + std::to_string(s.size) + ",\"sent\":" + std::to_string(s.sent) +
             ",\"echoed\":" + std::to_string(s.echoed) + ",\"bad\":" + std::to_string(s.bad) +
             ",\"wrong_source\":" + std::to_string(s.wrong_source) +
             ",\"lost\":" + std::to_string(s.lost) + "}";
      }
      j += "]";
      j += std::string(",\"ok\":") + (ok ? "true" : "false");
      j += "}\n";
      std::fputs(j.c_str(), stdout);
      std::fflush(stdout);
    }
    return ok ? 0 : 1;
  }

 private:
  static unsigned long long ull(std::uint64_t v) { return static_cast<unsigned long long>(v); }

  static void raise_nofile(rlim_t want) {
    rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= want) return;
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want) {
      rlimit hard{want, want};  // needs CAP_SYS_RESOURCE; otherwise take what we may
      if (setrlimit(RLIMIT_NOFILE, &hard) == 0) return;
      rl.rlim_cur = rl.rlim_max;
    } else {
      rl.rlim_cur = want;
    }
    (void)setrlimit(RLIMIT_NOFILE, &rl);
  }

  std::size_t slot_of_size(std::size_t len) const {
    for (std::size_t i = 0; i < stats_.size(); ++i)
      if (stats_[i].size == len) return i;
    return stats_.size();
  }

  void send_one(std::uint32_t idx, std::size_t size_idx) {
    Port& p = ports_[idx];
    const std::uint32_t size = opt_.sizes[size_idx];
    const auto seq = static_cast<std::uint32_t>(p.recs.size());
    const std::size_t slot = slot_of_size(size);
    fill(sendbuf_, idx, seq, size);
    ++stats_[slot].sent;
    ++t_.sent;
    // A full socket buffer is not a reason to lose a datagram: wait for room (reading
    // echoes meanwhile) for up to a second.
    const std::int64_t give_up = now_ns() + 1000000000;
    for (;;) {
      std::int64_t t0 = now_ns();
      ssize_t n = sendto(p.fd, sendbuf_, size, 0, reinterpret_cast<sockaddr*>(&dest_sa_),
                         dest_len_);
      if (n == static_cast<ssize_t>(size)) {
        p.recs.push_back(Rec{size, static_cast<std::uint32_t>(slot), t0, Pending});
        ++outstanding_;
        return;
      }
      int e = n < 0 ? errno : EMSGSIZE;
      if ((e == EAGAIN || e == EWOULDBLOCK || e == ENOBUFS || e == EINTR) && t0 < give_up) {
        receive(t0 + 1000000);
        continue;
      }
      if (t_.send_errors++ == 0) t_.first_send_errno = e;
      // Keep sequence numbers dense: the datagram counts as sent and lost.
      p.recs.push_back(Rec{size, static_cast<std::uint32_t>(slot), t0, Pending});
      ++outstanding_;
      return;
    }
  }

  // Waits for echoes until `until_ns` (0: just take what is queued now) and handles them.
  void receive(std::int64_t until_ns) {
    timespec ts{0, 0};
    if (until_ns > 0) {
      std::int64_t left = until_ns - now_ns();
      if (left < 0) left = 0;
      ts.tv_sec = left / 1000000000;
      ts.tv_nsec = left % 1000000000;
    }
    int n = ppoll(pfds_.data(), pfds_.size(), &ts, nullptr);
    if (n <= 0) return;
    for (std::uint32_t i = 0; i < pfds_.size() && n > 0; ++i) {
      if (pfds_[i].revents == 0) continue;
      --n;
      drain(i);
    }
  }

  void drain(std::uint32_t idx) {
    Port& p = ports_[idx];
    for (;;) {
      sockaddr_storage from;
      socklen_t fromlen = sizeof from;
      ssize_t n = recvfrom(p.fd, buf_.data(), buf_.size(), MSG_DONTWAIT | MSG_TRUNC,
                           reinterpret_cast<sockaddr*>(&from), &fromlen);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return;
        // ICMP errors (port unreachable, ...) surface here; they are not echoes.
        if (errno == ECONNREFUSED || errno == EHOSTUNREACH || errno == ENETUNREACH) continue;
        return;
      }
      const std::int64_t t = now_ns();
      auto src = Endpoint::from_sockaddr(reinterpret_cast<sockaddr*>(&from), fromlen);
      handle(idx, static_cast<std::size_t>(n), src && *src == opt_.dest, t);
    }
  }

  void count_bad(std::size_t len) {
    ++t_.bad;
    std::size_t slot = slot_of_size(len);
    if (slot < stats_.size())
      ++stats_[slot].bad;
    else
      ++t_.bad_other_size;
  }

  void handle(std::uint32_t idx, std::size_t len, bool source_ok, std::int64_t t) {
    Port& p = ports_[idx];
    const std::uint8_t* b = buf_.data();
    Rec* match = nullptr;
    bool header_said_other_port = false;
    bool duplicate = false;
    if (len > kMaxDatagram) {
      // truncated: a datagram we never sent
    } else if (len >= kHeader) {
      if (std::memcmp(b, kMagic, 4) == 0) {
        std::uint32_t hidx = get32(b + 4), hseq = get32(b + 8), hsize = get32(b + 12);
        if (hidx != idx) {
          header_said_other_port = true;
        } else if (hsize == len && hseq < p.recs.size() && p.recs[hseq].size == len) {
          Rec& r = p.recs[hseq];
          if (r.state != Pending)
            duplicate = true;
          else if (pattern_ok(b, idx, hseq, kHeader, len))
            match = &r;
        }
      }
    } else {
      // Too short for a header: the oldest outstanding datagram of this size on this
      // socket whose pattern the bytes reproduce.
      for (std::size_t s = p.first_pending; s < p.recs.size(); ++s) {
        Rec& r = p.recs[s];
        if (r.state == Pending && r.size == len &&
            pattern_ok(b, idx, static_cast<std::uint32_t>(s), 0, len)) {
          match = &r;
          break;
        }
      }
    }

    if (!source_ok) {
      // Whatever it holds, it did not come from the destination: a failure of its own
      // kind. If it answers a datagram, that datagram is no longer lost.
      ++t_.wrong_source;
      std::size_t slot = match ? match->size_slot : slot_of_size(len);
      if (slot < stats_.size()) ++stats_[slot].wrong_source;
      if (match) {
        match->state = Answered;
        --outstanding_;
      }
    } else if (match) {
      match->state = Echoed;
      --outstanding_;
      ++t_.echoed;
      ++stats_[match->size_slot].echoed;
      rtts_.push_back(t - match->sent_ns);
    } else {
      count_bad(len);
      // What arrived, for the post-mortem of a failed test: length and first bytes.
      std::fprintf(stderr, "udpprobe: bad datagram on port %u: %zu bytes:", idx, len);
      for (std::size_t k = 0; k < std::min<std::size_t>(len, 24); ++k)
        std::fprintf(stderr, " %02x", b[k]);
      std::fprintf(stderr, "\n");
      if (header_said_other_port)
        ++t_.crossed;
      else if (duplicate)
        ++t_.duplicate;
      else
        ++t_.corrupt;
    }
    while (p.first_pending < p.recs.size() && p.recs[p.first_pending].state != Pending)
      ++p.first_pending;
  }

  Options opt_;
  std::vector<std::uint8_t> buf_;
  std::uint8_t sendbuf_[kMaxDatagram];
  sockaddr_storage dest_sa_{};
  socklen_t dest_len_ = 0;
  std::vector<Port> ports_;
  std::vector<pollfd> pfds_;
  std::vector<SizeStats> stats_;
  std::vector<std::int64_t> rtts_;
  Totals t_;
  std::uint64_t outstanding_ = 0;
  std::int64_t last_send_ = 0;
  std::int64_t elapsed_ns_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  Options opt = parse_args(argc, argv);
  auto probe = std::make_unique<Probe>(std::move(opt));
  if (!probe->open_sockets()) return 1;
  probe->run();
  return probe->report();
}

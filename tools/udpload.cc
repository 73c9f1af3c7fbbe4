// udpload: the load generator of the benchmark suite (bench/run.sh). Not a test helper.
//
//   udpload [options] DEST_ADDR:PORT            stream mode (default)
//     --flows N         N client sockets (N source ports), datagrams spread over them (1)
//     --size B          UDP payload bytes per datagram, 24 .. 65507 (1200)
//     --rate PPS        offered datagrams per second, all flows together
//     --mbit M          offered rate in Mbit/s of UDP payload (instead of --rate)
//     --duration SEC    how long to send (decimals allowed; default 2)
//     --timeout MS      how long to wait for echoes after the last send (1000)
//     --late-ms MS      an echo whose round trip exceeds this is also counted "late" (200)
//     --warmup SEC      steady goodput leaves out echoes that arrive in the first SEC (0)
//     --bind ADDR       source address of every client socket
//     --json            one JSON object on stdout (the text report goes to stderr)
//
//   udpload --new-flows N [--concurrency C] [--size B] [--timeout MS] DEST_ADDR:PORT
//                                               churn mode
//     N flows, each a fresh socket (fresh source port) that sends one datagram and waits
//     for its echo; at most C (32) flows are waiting at once. A flow whose echo does not
//     come back within --timeout is a failure. Reports flows/s (successful flows over the
//     whole run), failures and first-reply RTT percentiles.
//
// Every datagram starts with a 24-byte header: magic "ULD1", flow index, sequence number
// (per flow), send time (CLOCK_MONOTONIC ns); the echo server must return it unchanged.
// Sockets are connect()ed to DEST, so only replies from DEST:PORT count (what a
// transparent proxy must get right). Stream mode counts: sent, send errors (the local
// socket refused the datagram: offered but never sent), echoed (unique), duplicates,
// reordered (an echo with a lower sequence number than one already seen on its flow),
// late, lost = sent - echoed, RTT percentiles (µs) and goodput (echoed payload bits/s).
// Goodput counts every echo over the sending time, so echoes a carrier had queued and
// delivers in the --timeout after sending stopped inflate it (by its buffering, not its
// rate); steady goodput counts only echoes that arrive while sending, after --warmup.
// One thread; sendmmsg/recvmmsg batches of 64.
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include <arpa/inet.h>

namespace {

// An address with an optional port: "198.18.4.2:7", "[2001:db8:4::2]:7", "198.18.0.2",
// "2001:db8::2" (no port: 0). Self-contained so the tool needs none of the project's rooms.
struct Addr {
  sockaddr_storage ss{};
  socklen_t len = 0;
  bool v4() const { return ss.ss_family == AF_INET; }
};

std::optional<Addr> parse_addr(const std::string& text, bool want_port) {
  std::string host = text, port;
  if (!text.empty() && text[0] == '[') {
    const auto close = text.find(']');
    if (close == std::string::npos) return std::nullopt;
    host = text.substr(1, close - 1);
    if (close + 1 < text.size()) {
      if (text[close + 1] != ':') return std::nullopt;
      port = text.substr(close + 2);
    }
  } else if (std::count(text.begin(), text.end(), ':') == 1) {
    const auto colon = text.find(':');
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  if (want_port && port.empty()) return std::nullopt;
  long pn = 0;
  if (!port.empty()) {
    char* end = nullptr;
    pn = std::strtol(port.c_str(), &end, 10);
    if (*end != 0 || pn < 0 || pn > 65535) return std::nullopt;
  }
  Addr a;
  auto* s4 = reinterpret_cast<sockaddr_in*>(&a.ss);
  auto* s6 = reinterpret_cast<sockaddr_in6*>(&a.ss);
  if (inet_pton(AF_INET, host.c_str(), &s4->sin_addr) == 1) {
    s4->sin_family = AF_INET;
    s4->sin_port = htons(static_cast<std::uint16_t>(pn));
    a.len = sizeof *s4;
  } else if (inet_pton(AF_INET6, host.c_str(), &s6->sin6_addr) == 1) {
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons(static_cast<std::uint16_t>(pn));
    a.len = sizeof *s6;
  } else {
    return std::nullopt;
  }
  return a;
}

constexpr std::uint32_t kMagic = 0x554c4431;  // "ULD1"
constexpr std::size_t kHeader = 24;
constexpr int kBatch = 64;

volatile sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

[[noreturn]] void usage(const char* msg) {
  if (msg != nullptr) std::fprintf(stderr, "udpload: %s\n", msg);
  std::fprintf(stderr,
               "usage: udpload [--flows N] [--size B] (--rate PPS | --mbit M) [--duration S]\n"
               "               [--timeout MS] [--late-ms MS] [--bind ADDR] [--json] DEST:PORT\n"
               "       udpload --new-flows N [--concurrency C] [--size B] [--timeout MS]\n"
               "               [--bind ADDR] [--json] DEST:PORT\n");
  std::exit(2);
}

std::uint64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000ull +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

void put32(std::uint8_t* p, std::uint32_t v) {
  for (int i = 3; i >= 0; --i) { p[i] = static_cast<std::uint8_t>(v); v >>= 8; }
}
void put64(std::uint8_t* p, std::uint64_t v) {
  for (int i = 7; i >= 0; --i) { p[i] = static_cast<std::uint8_t>(v); v >>= 8; }
}
std::uint32_t get32(const std::uint8_t* p) {
  std::uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v = (v << 8) | p[i];
  return v;
}
std::uint64_t get64(const std::uint8_t* p) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | p[i];
  return v;
}

struct Options {
  long flows = 1;
  std::size_t size = 1200;
  double rate = 0;
  double mbit = 0;
  double duration = 2;
  long timeout_ms = 1000;
  long late_ms = 200;
  double warmup = 0;
  long new_flows = 0;
  long concurrency = 32;
  bool json = false;
  std::optional<Addr> bind;
  Addr dest;
};

int open_socket(const Options& o) {
  const int af = o.dest.v4() ? AF_INET : AF_INET6;
  int fd = socket(af, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  const int buf = 4 << 20;
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &buf, sizeof buf) != 0)
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
  if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &buf, sizeof buf) != 0)
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
  if (o.bind &&
      bind(fd, reinterpret_cast<const sockaddr*>(&o.bind->ss), o.bind->len) != 0) {
    close(fd);
    return -1;
  }
  if (connect(fd, reinterpret_cast<const sockaddr*>(&o.dest.ss), o.dest.len) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

struct Percentiles {
  double p50 = 0, p90 = 0, p99 = 0, max = 0;
};

Percentiles percentiles(std::vector<std::uint32_t>& v) {
  Percentiles p;
  if (v.empty()) return p;
  std::sort(v.begin(), v.end());
  auto at = [&](double q) {
    std::size_t i = static_cast<std::size_t>(std::ceil(q * static_cast<double>(v.size()))) ;
    if (i > 0) --i;
    return static_cast<double>(v[std::min(i, v.size() - 1)]);
  };
  p.p50 = at(0.50);
  p.p90 = at(0.90);
  p.p99 = at(0.99);
  p.max = static_cast<double>(v.back());
  return p;
}

// ---------------------------------------------------------------------------------------
// Stream mode

struct Flow {
  int fd = -1;
  std::uint64_t next_seq = 0;
  std::uint64_t max_seen = 0;
  bool any_seen = false;
  std::vector<std::uint8_t> seen;  // one byte per sequence number
};

int run_stream(const Options& o) {
  double pps = o.rate;
  if (o.mbit > 0) pps = o.mbit * 1e6 / (8.0 * static_cast<double>(o.size));
  if (pps <= 0) usage("stream mode needs --rate or --mbit");
  std::vector<Flow> flows(static_cast<std::size_t>(o.flows));
  for (auto& f : flows) {
    f.fd = open_socket(o);
    if (f.fd < 0) { std::perror("udpload: socket"); return 1; }
  }
  std::vector<std::uint32_t> rtts;
  rtts.reserve(static_cast<std::size_t>(std::min(pps * o.duration, 5e7)) + 16);

  std::uint64_t sent = 0, attempted = 0, send_errors = 0, echoed = 0, dups = 0, reordered = 0,
                late = 0, bad = 0, echoed_bytes = 0, steady_bytes = 0;
  // The steady window, by arrival time: [t0 + warmup, end of sending).
  std::uint64_t steady_from = ~0ull, steady_to = ~0ull;
  const std::uint64_t late_ns = static_cast<std::uint64_t>(o.late_ms) * 1000000ull;

  // Send buffers: one datagram image per batch slot.
  std::vector<std::vector<std::uint8_t>> sbuf(kBatch, std::vector<std::uint8_t>(o.size));
  for (auto& b : sbuf)
    for (std::size_t i = kHeader; i < o.size; ++i) b[i] = static_cast<std::uint8_t>(i * 7);
  std::vector<iovec> siov(kBatch);
  std::vector<mmsghdr> smsg(kBatch);
  // Receive buffers.
  const std::size_t rcap = std::max<std::size_t>(o.size, 2048);
  std::vector<std::vector<std::uint8_t>> rbuf(kBatch, std::vector<std::uint8_t>(rcap));
  std::vector<iovec> riov(kBatch);
  std::vector<mmsghdr> rmsg(kBatch);

  auto drain = [&](Flow& f, std::size_t fidx) {
    for (;;) {
      for (int i = 0; i < kBatch; ++i) {
        riov[i] = {rbuf[i].data(), rcap};
        std::memset(&rmsg[i], 0, sizeof rmsg[i]);
        rmsg[i].msg_hdr.msg_iov = &riov[i];
        rmsg[i].msg_hdr.msg_iovlen = 1;
      }
      const int n = recvmmsg(f.fd, rmsg.data(), kBatch, MSG_DONTWAIT, nullptr);
      if (n <= 0) return;
      const std::uint64_t t = now_ns();
      for (int i = 0; i < n; ++i) {
        const std::uint8_t* p = rbuf[i].data();
        const std::size_t len = rmsg[i].msg_len;
        if (len != o.size || get32(p) != kMagic || get32(p + 4) != fidx) { ++bad; continue; }
        const std::uint64_t seq = get64(p + 8);
        const std::uint64_t ts = get64(p + 16);
        if (seq >= f.next_seq || ts > t) { ++bad; continue; }
        if (f.seen.size() <= seq) f.seen.resize(std::max<std::size_t>(seq + 1, f.seen.size() * 2));
        if (f.seen[seq]) { ++dups; continue; }
        f.seen[seq] = 1;
        ++echoed;
        echoed_bytes += len;
        if (t >= steady_from && t < steady_to) steady_bytes += len;
        if (f.any_seen && seq < f.max_seen) ++reordered;
        if (!f.any_seen || seq > f.max_seen) f.max_seen = seq;
        f.any_seen = true;
        const std::uint64_t rtt = t - ts;
        if (rtt > late_ns) ++late;
        rtts.push_back(static_cast<std::uint32_t>(std::min<std::uint64_t>(rtt / 1000, 0xffffffffu)));
      }
      if (n < kBatch) return;
    }
  };

  std::vector<pollfd> pfds(flows.size());
  for (std::size_t i = 0; i < flows.size(); ++i) pfds[i] = {flows[i].fd, POLLIN, 0};

  const std::uint64_t t0 = now_ns();
  const std::uint64_t t_end = t0 + static_cast<std::uint64_t>(o.duration * 1e9);
  steady_from = t0 + static_cast<std::uint64_t>(o.warmup * 1e9);
  steady_to = t_end;
  const double ns_per_pkt = 1e9 / pps;
  std::size_t rr = 0;
  for (;;) {
    const std::uint64_t t = now_ns();
    if (t >= t_end || g_stop) break;
    const std::uint64_t due = static_cast<std::uint64_t>(static_cast<double>(t - t0) / ns_per_pkt) + 1;
    if (due > attempted) {
      Flow& f = flows[rr];
      const std::size_t fidx = rr;
      rr = (rr + 1) % flows.size();
      const int k = static_cast<int>(std::min<std::uint64_t>(due - attempted, kBatch));
      for (int i = 0; i < k; ++i) {
        std::uint8_t* p = sbuf[i].data();
        put32(p, kMagic);
        put32(p + 4, static_cast<std::uint32_t>(fidx));
        put64(p + 8, f.next_seq + static_cast<std::uint64_t>(i));
        put64(p + 16, t);
        siov[i] = {p, o.size};
        std::memset(&smsg[i], 0, sizeof smsg[i]);
        smsg[i].msg_hdr.msg_iov = &siov[i];
        smsg[i].msg_hdr.msg_iovlen = 1;
      }
      int n = sendmmsg(f.fd, smsg.data(), static_cast<unsigned>(k), MSG_DONTWAIT);
      if (n < 0) n = 0;
      // Datagrams the socket refused were offered but not sent; their sequence numbers
      // are reused, so they never count as lost.
      f.next_seq += static_cast<std::uint64_t>(n);
      sent += static_cast<std::uint64_t>(n);
      send_errors += static_cast<std::uint64_t>(k - n);
      attempted += static_cast<std::uint64_t>(k);
    }
    for (std::size_t i = 0; i < flows.size(); ++i) drain(flows[i], i);
    const std::uint64_t t2 = now_ns();
    const std::uint64_t next = t0 + static_cast<std::uint64_t>(static_cast<double>(attempted) * ns_per_pkt);
    if (next > t2 + 20000) {  // more than 20 µs to wait: sleep in poll
      std::uint64_t wait = std::min(next, t_end) - t2;
      timespec ts{static_cast<time_t>(wait / 1000000000ull), static_cast<long>(wait % 1000000000ull)};
      (void)ppoll(pfds.data(), pfds.size(), &ts, nullptr);
    }
  }
  const std::uint64_t t_send_end = now_ns();
  const std::uint64_t t_drain_end = t_send_end + static_cast<std::uint64_t>(o.timeout_ms) * 1000000ull;
  while (echoed < sent && !g_stop) {
    const std::uint64_t t = now_ns();
    if (t >= t_drain_end) break;
    const std::uint64_t wait = t_drain_end - t;
    timespec ts{static_cast<time_t>(wait / 1000000000ull), static_cast<long>(wait % 1000000000ull)};
    if (ppoll(pfds.data(), pfds.size(), &ts, nullptr) <= 0) continue;
    for (std::size_t i = 0; i < flows.size(); ++i) drain(flows[i], i);
  }
  for (auto& f : flows) close(f.fd);

  const double secs = static_cast<double>(t_send_end - t0) / 1e9;
  const std::uint64_t lost = sent - echoed;
  const double loss = sent ? 100.0 * static_cast<double>(lost) / static_cast<double>(sent) : 100.0;
  const double offered_mbit = static_cast<double>(attempted) * static_cast<double>(o.size) * 8 / secs / 1e6;
  const double sent_mbit = static_cast<double>(sent) * static_cast<double>(o.size) * 8 / secs / 1e6;
  const double goodput_mbit = static_cast<double>(echoed_bytes) * 8 / secs / 1e6;
  const std::uint64_t s_to = std::min(steady_to, t_send_end), s_from = std::min(steady_from, s_to);
  const double steady_s = static_cast<double>(s_to - s_from) / 1e9;
  const double steady_mbit = steady_s > 0 ? static_cast<double>(steady_bytes) * 8 / steady_s / 1e6 : 0;
  const Percentiles p = percentiles(rtts);
  std::fprintf(stderr,
               "udpload: %.2f s, size %zu, flows %ld: offered %.0f pps (%.1f Mbit/s), sent %llu "
               "(%.1f Mbit/s), send_errors %llu, echoed %llu, lost %llu (%.3f %%), dup %llu, "
               "reordered %llu, late %llu, bad %llu, goodput %.1f Mbit/s (steady %.1f)\n"
               "udpload: rtt_us p50 %.0f p90 %.0f p99 %.0f max %.0f\n",
               secs, o.size, o.flows, static_cast<double>(attempted) / secs, offered_mbit,
               static_cast<unsigned long long>(sent), sent_mbit,
               static_cast<unsigned long long>(send_errors), static_cast<unsigned long long>(echoed),
               static_cast<unsigned long long>(lost), loss, static_cast<unsigned long long>(dups),
               static_cast<unsigned long long>(reordered), static_cast<unsigned long long>(late),
               static_cast<unsigned long long>(bad), goodput_mbit, steady_mbit, p.p50, p.p90, p.p99,
               p.max);
  if (o.json) {
    std::printf(
        "{\"mode\":\"stream\",\"duration_s\":%.3f,\"size\":%zu,\"flows\":%ld,"
        "\"offered_pps\":%.1f,\"offered_mbit\":%.3f,\"sent\":%llu,\"sent_pps\":%.1f,"
        "\"sent_mbit\":%.3f,\"send_errors\":%llu,\"echoed\":%llu,\"echoed_pps\":%.1f,"
        "\"lost\":%llu,\"loss_pct\":%.4f,\"duplicates\":%llu,\"reordered\":%llu,\"late\":%llu,"
        "\"late_ms\":%ld,\"bad\":%llu,\"goodput_mbit\":%.3f,\"steady_goodput_mbit\":%.3f,"
        "\"warmup_s\":%.3f,\"rtt_us\":{\"p50\":%.0f,\"p90\":%.0f,"
        "\"p99\":%.0f,\"max\":%.0f}}\n",
        secs, o.size, o.flows, static_cast<double>(attempted) / secs, offered_mbit,
        static_cast<unsigned long long>(sent), static_cast<double>(sent) / secs, sent_mbit,
        static_cast<unsigned long long>(send_errors), static_cast<unsigned long long>(echoed),
        static_cast<double>(echoed) / secs, static_cast<unsigned long long>(lost), loss,
        static_cast<unsigned long long>(dups), static_cast<unsigned long long>(reordered),
        static_cast<unsigned long long>(late), o.late_ms, static_cast<unsigned long long>(bad),
        goodput_mbit, steady_mbit, o.warmup, p.p50, p.p90, p.p99, p.max);
  }
  return 0;
}

// ---------------------------------------------------------------------------------------
// Churn mode

int run_churn(const Options& o) {
  const int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) { std::perror("udpload: epoll"); return 1; }
  struct Slot {
    int fd = -1;
    std::uint64_t t_sent = 0;
    std::uint32_t id = 0;
  };
  std::vector<Slot> slots(static_cast<std::size_t>(o.concurrency));
  std::vector<std::uint32_t> rtts;
  std::vector<std::uint8_t> buf(std::max<std::size_t>(o.size, 2048));
  long started = 0, ok = 0, failed = 0, open_errors = 0, active = 0;
  const std::uint64_t timeout_ns = static_cast<std::uint64_t>(o.timeout_ms) * 1000000ull;

  auto start = [&](Slot& s) -> bool {
    s.fd = open_socket(o);
    if (s.fd < 0) { ++open_errors; ++failed; ++started; return false; }
    s.id = static_cast<std::uint32_t>(started++);
    std::vector<std::uint8_t>& b = buf;
    std::fill(b.begin(), b.begin() + static_cast<long>(o.size), std::uint8_t{0x5a});
    s.t_sent = now_ns();
    put32(b.data(), kMagic);
    put32(b.data() + 4, s.id);
    put64(b.data() + 8, 0);
    put64(b.data() + 16, s.t_sent);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = static_cast<std::uint64_t>(&s - slots.data());
    (void)epoll_ctl(ep, EPOLL_CTL_ADD, s.fd, &ev);
    if (send(s.fd, b.data(), o.size, MSG_DONTWAIT) != static_cast<ssize_t>(o.size)) {
      close(s.fd);
      s.fd = -1;
      ++failed;
      return false;
    }
    ++active;
    return true;
  };
  auto finish = [&](Slot& s) {
    close(s.fd);
    s.fd = -1;
    --active;
  };

  const std::uint64_t t0 = now_ns();
  std::vector<epoll_event> evs(static_cast<std::size_t>(o.concurrency));
  while (!g_stop) {
    for (auto& s : slots)
      while (s.fd < 0 && started < o.new_flows && !start(s)) {}
    if (active == 0 && started >= o.new_flows) break;
    const int n = epoll_wait(ep, evs.data(), static_cast<int>(evs.size()), 5);
    const std::uint64_t t = now_ns();
    for (int i = 0; i < n; ++i) {
      Slot& s = slots[evs[static_cast<std::size_t>(i)].data.u64];
      if (s.fd < 0) continue;
      const ssize_t r = recv(s.fd, buf.data(), buf.size(), MSG_DONTWAIT);
      if (r < 0) continue;
      if (static_cast<std::size_t>(r) == o.size && get32(buf.data()) == kMagic &&
          get32(buf.data() + 4) == s.id) {
        ++ok;
        rtts.push_back(static_cast<std::uint32_t>((t - s.t_sent) / 1000));
      } else {
        ++failed;
      }
      finish(s);
    }
    for (auto& s : slots)
      if (s.fd >= 0 && t - s.t_sent > timeout_ns) { ++failed; finish(s); }
  }
  const double secs = static_cast<double>(now_ns() - t0) / 1e9;
  close(ep);
  const Percentiles p = percentiles(rtts);
  std::fprintf(stderr,
               "udpload: churn %ld flows (concurrency %ld) in %.2f s: ok %ld failed %ld "
               "(socket errors %ld), %.0f flows/s; first reply us p50 %.0f p99 %.0f max %.0f\n",
               started, o.concurrency, secs, ok, failed, open_errors, static_cast<double>(ok) / secs,
               p.p50, p.p99, p.max);
  if (o.json)
    std::printf("{\"mode\":\"churn\",\"flows\":%ld,\"concurrency\":%ld,\"duration_s\":%.3f,"
                "\"ok\":%ld,\"failed\":%ld,\"socket_errors\":%ld,\"flows_per_s\":%.1f,"
                "\"first_reply_us\":{\"p50\":%.0f,\"p90\":%.0f,\"p99\":%.0f,\"max\":%.0f}}\n",
                started, o.concurrency, secs, ok, failed, open_errors,
                static_cast<double>(ok) / secs, p.p50, p.p90, p.p99, p.max);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  std::optional<Addr> dest;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) usage(("missing value after " + a).c_str());
      return argv[++i];
    };
    if (a == "--flows") o.flows = std::atol(next().c_str());
    else if (a == "--size") o.size = static_cast<std::size_t>(std::atol(next().c_str()));
    else if (a == "--rate") o.rate = std::atof(next().c_str());
    else if (a == "--mbit") o.mbit = std::atof(next().c_str());
    else if (a == "--duration") o.duration = std::atof(next().c_str());
    else if (a == "--timeout") o.timeout_ms = std::atol(next().c_str());
    else if (a == "--late-ms") o.late_ms = std::atol(next().c_str());
    else if (a == "--warmup") o.warmup = std::atof(next().c_str());
    else if (a == "--new-flows") o.new_flows = std::atol(next().c_str());
    else if (a == "--concurrency") o.concurrency = std::atol(next().c_str());
    else if (a == "--json") o.json = true;
    else if (a == "--bind") {
      o.bind = parse_addr(next(), false);
      if (!o.bind) usage("bad --bind address");
    } else if (!a.empty() && a[0] == '-') usage(("unknown option " + a).c_str());
    else if (!dest) {
      dest = parse_addr(a, true);
      if (!dest) usage("bad DEST_ADDR:PORT");
    } else usage("more than one destination");
  }
  if (!dest) usage(nullptr);
  o.dest = *dest;
  if (o.size < kHeader || o.size > 65507) usage("--size must be 24 .. 65507");
  if (o.flows < 1 || o.flows > 60000) usage("--flows must be 1 .. 60000");
  if (o.concurrency < 1 || o.concurrency > 4096) usage("--concurrency must be 1 .. 4096");
  if (o.duration <= 0) usage("--duration must be > 0");
  if (o.warmup < 0 || o.warmup >= o.duration) usage("--warmup must be >= 0 and < --duration");
  if (o.bind && o.bind->v4() != o.dest.v4()) usage("--bind and DEST differ in family");
  rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    (void)setrlimit(RLIMIT_NOFILE, &rl);
  }
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  return o.new_flows > 0 ? run_churn(o) : run_stream(o);
}

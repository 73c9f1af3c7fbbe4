// udpecho: the UDP echo server of the tests and the demo.
//
//   udpecho [--count-file F] ADDR:PORT...
//
// Binds every endpoint given (IPv4 or IPv6; IPv6 sockets are IPV6_V6ONLY) and sends each
// datagram back to its sender, unchanged, from the socket it came in on. A wildcard
// endpoint (0.0.0.0, [::]) answers from the address the datagram was sent to (packet
// info), so the sender always sees the reply come from the address it used. Runs until
// SIGTERM or SIGINT; with --count-file, writes "DATAGRAMS BYTES" (datagrams and bytes
// echoed) to F on the way out. One thread, one poll loop.
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "net/endpoint.h"

namespace {

volatile sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

constexpr std::size_t kMaxDatagram = 65535;
constexpr int kBurst = 64;  // datagrams handled per socket per poll round (fairness)

[[noreturn]] void usage(const char* msg) {
  if (msg != nullptr) std::fprintf(stderr, "udpecho: %s\n", msg);
  std::fprintf(stderr, "usage: udpecho [--count-file FILE] ADDR:PORT...\n");
  std::exit(2);
}

void set_int_opt(int fd, int level, int name, int value) {
  (void)setsockopt(fd, level, name, &value, sizeof value);
}

int open_socket(const mpudp::Endpoint& ep) {
  int af = ep.is_v4() ? AF_INET : AF_INET6;
  int fd = socket(af, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  // Big buffers so a burst of a thousand datagrams is not dropped before we read it.
  // SO_*BUFFORCE works as root; otherwise fall back to what rmem_max allows.
  const int buf = 4 << 20;
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &buf, sizeof buf) != 0)
    set_int_opt(fd, SOL_SOCKET, SO_RCVBUF, buf);
  if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &buf, sizeof buf) != 0)
    set_int_opt(fd, SOL_SOCKET, SO_SNDBUF, buf);
  if (ep.is_v6()) {
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof one);
  } else {
    setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof one);
  }
  sockaddr_storage ss;
  socklen_t len = ep.to_sockaddr(ss);
  if (bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

struct Totals {
  std::uint64_t datagrams = 0;
  std::uint64_t bytes = 0;
  std::uint64_t send_errors = 0;
  std::uint64_t truncated = 0;
};

// Receives and echoes up to kBurst datagrams from `fd`. Returns false on a fatal error.
bool serve(int fd, std::vector<std::uint8_t>& buf, Totals& t) {
  for (int i = 0; i < kBurst; ++i) {
    sockaddr_storage peer;
    iovec iov{buf.data(), buf.size()};
    alignas(cmsghdr) char ctl[256];
    msghdr msg{};
    msg.msg_name = &peer;
    msg.msg_namelen = sizeof peer;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = ctl;
    msg.msg_controllen = sizeof ctl;
    ssize_t n = recvmsg(fd, &msg, MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return true;
      // ICMP errors from earlier sends surface here on some kernels; they are not ours
      // to act on.
      if (errno == ECONNREFUSED || errno == EHOSTUNREACH || errno == ENETUNREACH) continue;
      std::fprintf(stderr, "udpecho: recvmsg: %s\n", std::strerror(errno));
      return false;
    }
    if (msg.msg_flags & MSG_TRUNC) {  // cannot happen with a 64 KiB buffer; count it
      ++t.truncated;
      continue;
    }
    // Answer from the address the datagram was sent to: copy the packet info back.
    alignas(cmsghdr) char out_ctl[CMSG_SPACE(sizeof(in6_pktinfo))];
    std::memset(out_ctl, 0, sizeof out_ctl);
    msghdr reply{};
    reply.msg_name = &peer;
    reply.msg_namelen = msg.msg_namelen;
    reply.msg_iov = &iov;
    reply.msg_iovlen = 1;
    iov.iov_len = static_cast<std::size_t>(n);
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
        in_pktinfo in;
        std::memcpy(&in, CMSG_DATA(c), sizeof in);
        in_pktinfo outp{};
        outp.ipi_spec_dst = in.ipi_addr;  // the destination address of the request
        reply.msg_control = out_ctl;
        reply.msg_controllen = CMSG_SPACE(sizeof outp);
        cmsghdr* oc = CMSG_FIRSTHDR(&reply);
        oc->cmsg_level = IPPROTO_IP;
        oc->cmsg_type = IP_PKTINFO;
        oc->cmsg_len = CMSG_LEN(sizeof outp);
        std::memcpy(CMSG_DATA(oc), &outp, sizeof outp);
      } else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
        in6_pktinfo in6;
        std::memcpy(&in6, CMSG_DATA(c), sizeof in6);
        in6_pktinfo outp{};
        outp.ipi6_addr = in6.ipi6_addr;
        // The interface only matters (and is only safe to pin) for link-local addresses.
        if (IN6_IS_ADDR_LINKLOCAL(&in6.ipi6_addr)) outp.ipi6_ifindex = in6.ipi6_ifindex;
        reply.msg_control = out_ctl;
        reply.msg_controllen = CMSG_SPACE(sizeof outp);
        cmsghdr* oc = CMSG_FIRSTHDR(&reply);
        oc->cmsg_level = IPPROTO_IPV6;
        oc->cmsg_type = IPV6_PKTINFO;
        oc->cmsg_len = CMSG_LEN(sizeof outp);
        std::memcpy(CMSG_DATA(oc), &outp, sizeof outp);
      }
    }
    // A full send buffer: wait for room rather than drop (an echo server that loses
    // datagrams under load would make the tests lie about the proxy).
    for (;;) {
      ssize_t s = sendmsg(fd, &reply, 0);
      if (s >= 0) {
        ++t.datagrams;
        t.bytes += static_cast<std::uint64_t>(n);
        break;
      }
      if (errno == EINTR) {
        if (g_stop) return true;
        continue;
      }
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) {
        pollfd p{fd, POLLOUT, 0};
        (void)poll(&p, 1, 100);
        if (g_stop) return true;
        continue;
      }
      ++t.send_errors;
      if (t.send_errors <= 5)
        std::fprintf(stderr, "udpecho: sendmsg: %s\n", std::strerror(errno));
      break;
    }
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  std::string count_file;
  std::vector<mpudp::Endpoint> endpoints;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--count-file") {
      if (++i >= argc) usage("--count-file needs a file name");
      count_file = argv[i];
    } else if (a.rfind("--count-file=", 0) == 0) {
      count_file = a.substr(13);
    } else if (a == "-h" || a == "--help") {
      usage(nullptr);
    } else if (!a.empty() && a[0] == '-') {
      usage(("unknown option " + a).c_str());
    } else {
      auto ep = mpudp::Endpoint::parse(a);
      if (!ep) usage(("not an ADDR:PORT endpoint: " + a).c_str());
      endpoints.push_back(*ep);
    }
  }
  if (endpoints.empty()) usage("no endpoint given");

  struct sigaction sa{};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: poll must return EINTR
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);

  std::vector<pollfd> fds;
  for (const auto& ep : endpoints) {
    int fd = open_socket(ep);
    if (fd < 0) {
      std::fprintf(stderr, "udpecho: cannot bind %s: %s\n", ep.str().c_str(),
                   std::strerror(errno));
      return 1;
    }
    fds.push_back(pollfd{fd, POLLIN, 0});
    std::fprintf(stderr, "udpecho: listening on %s\n", ep.str().c_str());
  }

  std::vector<std::uint8_t> buf(kMaxDatagram + 1);
  Totals t;
  int rc = 0;
  while (!g_stop) {
    int n = poll(fds.data(), fds.size(), -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      std::fprintf(stderr, "udpecho: poll: %s\n", std::strerror(errno));
      rc = 1;
      break;
    }
    for (auto& p : fds) {
      if (p.revents == 0) continue;
      if (!serve(p.fd, buf, t)) {
        rc = 1;
        g_stop = 1;
        break;
      }
    }
  }
  for (auto& p : fds) close(p.fd);

  std::fprintf(stderr, "udpecho: echoed %llu datagrams, %llu bytes (send errors %llu)\n",
               static_cast<unsigned long long>(t.datagrams),
               static_cast<unsigned long long>(t.bytes),
               static_cast<unsigned long long>(t.send_errors));
  if (!count_file.empty()) {
    std::string tmp = count_file + ".tmp";
    FILE* f = std::fopen(tmp.c_str(), "w");
    if (f == nullptr) {
      std::fprintf(stderr, "udpecho: %s: %s\n", tmp.c_str(), std::strerror(errno));
      return 1;
    }
    std::fprintf(f, "%llu %llu\n", static_cast<unsigned long long>(t.datagrams),
                 static_cast<unsigned long long>(t.bytes));
    bool ok = std::fclose(f) == 0;
    if (!ok || std::rename(tmp.c_str(), count_file.c_str()) != 0) {
      std::fprintf(stderr, "udpecho: %s: %s\n", count_file.c_str(), std::strerror(errno));
      return 1;
    }
  }
  return rc;
}

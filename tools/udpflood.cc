// udpflood: many new UDP flows at once, as a LAN full of clients would open them. Each
// datagram comes from its own source endpoint (up to 64512 ports per source address),
// written as a raw IPv4/UDP packet so no socket per flow is needed on the sending side.
// Replies are not read. For the binding-cap and memory tests.
//
//   udpflood --src 198.18.0.2[,198.18.0.3...] --flows N [--size B] [--pps P] DEST:PORT
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "intercept/packet.h"
#include "io/fd.h"
#include "net/endpoint.h"

namespace {

int usage() {
  std::fprintf(stderr,
               "usage: udpflood --src ADDR[,ADDR...] --flows N [--size BYTES] [--pps RATE] "
               "DEST:PORT\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<mpudp::Endpoint> srcs;
  long flows = 0;
  std::size_t size = 32;
  long pps = 0;
  std::optional<mpudp::Endpoint> dst;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--src") {
      std::string list = next();
      std::size_t pos = 0;
      while (pos <= list.size()) {
        const auto comma = list.find(',', pos);
        const auto item = list.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
        auto e = mpudp::Endpoint::parse_address(item);
        if (!e || !e->is_v4()) return usage();
        srcs.push_back(*e);
        if (comma == std::string::npos) break;
        pos = comma + 1;
      }
    } else if (a == "--flows") {
      flows = std::atol(next().c_str());
    } else if (a == "--size") {
      size = static_cast<std::size_t>(std::atol(next().c_str()));
    } else if (a == "--pps") {
      pps = std::atol(next().c_str());
    } else if (!dst) {
      dst = mpudp::Endpoint::parse(a);
      if (!dst || !dst->is_v4()) return usage();
    } else {
      return usage();
    }
  }
  constexpr long kPortsPerSource = 64512;  // 1024..65535
  if (!dst || srcs.empty() || flows <= 0 || size > 1400 ||
      flows > kPortsPerSource * static_cast<long>(srcs.size()))
    return usage();
  mpudp::Fd fd(::socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW));
  if (!fd) {
    std::perror("udpflood: raw socket");
    return 1;
  }
  std::vector<std::uint8_t> payload(size, 0x5a), pkt(2048);
  sockaddr_storage ss;
  mpudp::Endpoint to = *dst;
  to.port = 0;
  const socklen_t sl = to.to_sockaddr(ss);
  const auto start = std::chrono::steady_clock::now();
  long sent = 0, failed = 0;
  for (long f = 0; f < flows; ++f) {
    mpudp::Endpoint src = srcs[static_cast<std::size_t>(f / kPortsPerSource)];
    src.port = static_cast<std::uint16_t>(1024 + f % kPortsPerSource);
    const std::size_t len = mpudp::packet::build_udp(src, *dst, payload, pkt);
    for (;;) {
      if (::sendto(fd.get(), pkt.data(), len, 0, reinterpret_cast<sockaddr*>(&ss), sl) >= 0) {
        ++sent;
        break;
      }
      if (errno == ENOBUFS || errno == EAGAIN) {  // the qdisc is full: let it drain
        std::this_thread::sleep_for(std::chrono::microseconds(200));
        continue;
      }
      ++failed;
      break;
    }
    if (pps > 0) {
      const auto due = start + std::chrono::microseconds((f + 1) * 1000000 / pps);
      std::this_thread::sleep_until(due);
    }
  }
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("udpflood: flows %ld sent %ld failed %ld in %.2f s\n", flows, sent, failed, secs);
  return failed == 0 ? 0 : 1;
}

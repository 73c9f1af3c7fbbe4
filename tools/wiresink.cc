// wiresink: a stand-in concentrator that takes a CPE's tunnel and keeps nothing. It
// answers the CPE's HELLO (no authentication: the CPE runs with `auth: none`), answers
// keepalives, and reads every other frame without acting on it: no UDP socket per
// binding. The CPE then holds as many bindings as its clients open, whatever the
// open-file limit of this machine allows a real concentrator, which is what the bench
// needs to measure the CPE's memory per binding at 100 000 bindings.
//
//   wiresink HOST:PORT
//
// Connections are served one after another (a CPE that reconnects is served again).
// SIGTERM or SIGINT prints the frames seen, by type, and exits 0.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

#include "io/fd.h"
#include "net/endpoint.h"
#include "wire/frame.h"

#ifndef IPPROTO_MPTCP
#define IPPROTO_MPTCP 262
#endif

namespace {

using namespace mpudp;

volatile std::sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

// Frames by type (index: the variant's index), connections served, bad frames.
struct Counts {
  std::array<std::uint64_t, std::variant_size_v<wire::Frame>> frames{};
  std::uint64_t connections = 0;
  std::uint64_t bad = 0;
};

bool send_frame(int fd, const wire::Frame& f) {
  std::array<std::uint8_t, 64> out{};
  const std::size_t n = wire::encode(f, out);
  return n > 0 && ::send(fd, out.data(), n, MSG_NOSIGNAL) == static_cast<ssize_t>(n);
}

// Reads frames until the peer closes, a frame is bad, or a signal arrives.
void serve(int fd, Counts& c) {
  std::vector<std::uint8_t> buf(1 << 20);
  std::size_t have = 0;
  for (;;) {
    const ssize_t n = ::recv(fd, buf.data() + have, buf.size() - have, 0);
    if (n < 0 && errno == EINTR) {
      if (g_stop) return;
      continue;
    }
    if (n <= 0) return;
    have += static_cast<std::size_t>(n);
    std::size_t at = 0;
    for (;;) {
      const wire::Decoded d = wire::decode({buf.data() + at, have - at});
      if (d.status == wire::DecodeStatus::NeedMore) break;
      if (d.status != wire::DecodeStatus::Ok) {
        std::fprintf(stderr, "wiresink: bad frame (%s): closing\n", wire::to_string(d.status));
        ++c.bad;
        return;
      }
      ++c.frames[d.frame.index()];
      at += d.consumed;
      if (const auto* h = std::get_if<wire::Hello>(&d.frame)) {
        wire::Hello reply;
        reply.role = wire::Role::Concentrator;
        reply.mode = h->mode;
        if (!send_frame(fd, reply)) return;
      } else if (const auto* k = std::get_if<wire::Keepalive>(&d.frame)) {
        if (k->reply_requested && !send_frame(fd, wire::Keepalive{false})) return;
      }
    }
    std::memmove(buf.data(), buf.data() + at, have - at);
    have -= at;
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: wiresink HOST:PORT\n");
    return 2;
  }
  const auto ep = Endpoint::parse(argv[1]);
  if (!ep) {
    std::fprintf(stderr, "wiresink: not a numeric HOST:PORT: %s\n", argv[1]);
    return 2;
  }
  const int family = ep->is_v6() ? AF_INET6 : AF_INET;
  Fd lfd(::socket(family, SOCK_STREAM, IPPROTO_MPTCP));
  if (!lfd) lfd = Fd(::socket(family, SOCK_STREAM, IPPROTO_TCP));
  if (!lfd) {
    std::fprintf(stderr, "wiresink: socket: %s\n", std::strerror(errno));
    return 1;
  }
  const int one = 1;
  ::setsockopt(lfd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_storage ss{};
  const socklen_t len = ep->to_sockaddr(ss);
  if (::bind(lfd.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0 || ::listen(lfd.get(), 4) != 0) {
    std::fprintf(stderr, "wiresink: listen on %s: %s\n", argv[1], std::strerror(errno));
    return 1;
  }
  struct sigaction sa{};
  sa.sa_handler = on_signal;  // no SA_RESTART: a blocked accept or recv returns EINTR
  ::sigaction(SIGTERM, &sa, nullptr);
  ::sigaction(SIGINT, &sa, nullptr);
  std::printf("wiresink: listening on %s\n", argv[1]);
  std::fflush(stdout);
  Counts c;
  while (!g_stop) {
    Fd fd(::accept(lfd.get(), nullptr, nullptr));
    if (!fd) {
      if (errno == EINTR) continue;
      std::fprintf(stderr, "wiresink: accept: %s\n", std::strerror(errno));
      return 1;
    }
    ++c.connections;
    serve(fd.get(), c);
  }
  std::printf(
      "wiresink: connections %llu, frames: hello %llu open %llu data %llu close %llu reset %llu "
      "keepalive %llu auth %llu, bad %llu\n",
      static_cast<unsigned long long>(c.connections),
      static_cast<unsigned long long>(c.frames[0]), static_cast<unsigned long long>(c.frames[1]),
      static_cast<unsigned long long>(c.frames[2]), static_cast<unsigned long long>(c.frames[3]),
      static_cast<unsigned long long>(c.frames[4]), static_cast<unsigned long long>(c.frames[5]),
      static_cast<unsigned long long>(c.frames[6]), static_cast<unsigned long long>(c.bad));
  return 0;
}

#include <catch2/catch.hpp>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>
#include <cstring>

#include "io/fd.h"
#include "tunnel/mptcp_uapi.h"
#include "tunnel/subflows.h"

using namespace mpudp;

// The kernel's layouts, whether they come from the installed headers or from
// tunnel/mptcp_uapi.h (built against Linux 5.15 headers in CI): a getsockopt reply is
// read with these strides.
static_assert(sizeof(mptcp_subflow_data) == 16);
static_assert(sizeof(mptcp_subflow_addrs) == 256);
static_assert(offsetof(mptcp_subflow_addrs, ss_remote) == 128);

namespace {

struct Pair {
  Fd listener, client, server;
  sockaddr_in addr{};
};

// A connected pair over loopback; false when the host cannot make one of `proto`.
bool connect_pair(int proto, Pair& p) {
  p.listener = Fd(::socket(AF_INET, SOCK_STREAM, proto));
  if (!p.listener) return false;
  p.addr.sin_family = AF_INET;
  p.addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(p.addr);
  if (::bind(p.listener.get(), reinterpret_cast<sockaddr*>(&p.addr), len) != 0 ||
      ::listen(p.listener.get(), 1) != 0 ||
      ::getsockname(p.listener.get(), reinterpret_cast<sockaddr*>(&p.addr), &len) != 0)
    return false;
  p.client = Fd(::socket(AF_INET, SOCK_STREAM, proto));
  if (!p.client ||
      ::connect(p.client.get(), reinterpret_cast<sockaddr*>(&p.addr), sizeof(p.addr)) != 0)
    return false;
  p.server = Fd(::accept(p.listener.get(), nullptr, nullptr));
  return static_cast<bool>(p.server);
}

// qemu-user (the cross builds' unit tests) translates no SOL_MPTCP option (7.2 fails
// them all with EOPNOTSUPP) and hands any TCP option back as 4 bytes; a kernel returns
// the whole tcp_info. The second is the signature looked for, so that a kernel refusing
// SOL_MPTCP still fails the test.
bool user_mode_emulation() {
  const Fd s(::socket(AF_INET, SOCK_STREAM, IPPROTO_TCP));
  tcp_info t{};
  socklen_t len = sizeof t;
  return s && ::getsockopt(s.get(), IPPROTO_TCP, TCP_INFO, &t, &len) == 0 && len == sizeof(int);
}

}  // namespace

TEST_CASE("subflows_of reports the one subflow of a loopback MPTCP connection") {
  Pair p;
  if (!connect_pair(IPPROTO_MPTCP, p)) {
    WARN("no MPTCP on this host (net.mptcp.enabled=0?): skipped");
    return;
  }
  if (user_mode_emulation()) {
    WARN("SOL_MPTCP options and TCP_INFO not passed on here (user-mode emulation?): skipped");
    return;
  }
  char buf[1000];
  std::memset(buf, 'x', sizeof(buf));
  REQUIRE(::write(p.client.get(), buf, sizeof(buf)) == static_cast<ssize_t>(sizeof(buf)));
  REQUIRE(::read(p.server.get(), buf, sizeof(buf)) > 0);

  bool fallback = true;
  // This kernel (5.16 or later: the subflow list below needs it) answers the probe.
  CHECK(mptcp_sockopts_supported());
  CHECK_FALSE(mptcp_fell_back(p.client.get()));
  auto subs = subflows_of(p.client.get(), &fallback);
  CHECK_FALSE(fallback);
  REQUIRE(subs.size() == 1);
  CHECK(subs[0].local.address_str() == "127.0.0.1");
  CHECK(subs[0].remote.port == ntohs(p.addr.sin_port));
  CHECK(subs[0].interface == "lo");
  CHECK(subs[0].bytes_sent >= sizeof(buf));
  CHECK_FALSE(subs[0].backup);
}

TEST_CASE("subflows_of says a plain TCP socket is a fallback, with no subflows") {
  Pair p;
  REQUIRE(connect_pair(IPPROTO_TCP, p));
  bool fallback = false;
  CHECK(subflows_of(p.client.get(), &fallback).empty());
  CHECK(fallback);
  CHECK(mptcp_fell_back(p.client.get()));
}

#include "tunnel/listener.h"

#include <netinet/in.h>

#include <cerrno>

#include "ctl/log.h"
#include "io/socket.h"

#ifndef IPPROTO_MPTCP
#define IPPROTO_MPTCP 262
#endif

namespace mpudp {

std::unique_ptr<Listener> Listener::open(Loop* loop, const Endpoint& at, bool reuse_port,
                                         AcceptFn on_accept, std::string* err) {
  const int af = family_to_af(at.family);
  Fd fd = make_socket(af, SOCK_STREAM, IPPROTO_MPTCP);
  if (!fd) {
    LOG_WARN("cannot listen with MPTCP on %s (%s): using plain TCP", at.str().c_str(),
             errno_str(errno).c_str());
    fd = make_socket(af, SOCK_STREAM, IPPROTO_TCP);
  }
  auto fail = [&](const std::string& what, int e) {
    if (err) *err = what + ": " + errno_str(e);
    return nullptr;
  };
  if (!fd) return fail("socket", errno);
  set_int_opt(fd.get(), SOL_SOCKET, SO_REUSEADDR, 1);
  if (reuse_port)
    if (int e = set_int_opt(fd.get(), SOL_SOCKET, SO_REUSEPORT, 1))
      return fail("SO_REUSEPORT on " + at.str(), e);
  // "[::]:7000" next to "0.0.0.0:7000" must not collide.
  if (at.is_v6()) set_int_opt(fd.get(), SOL_IPV6, IPV6_V6ONLY, 1);
  if (int e = bind_to(fd.get(), at)) return fail("bind " + at.str(), e);
  if (::listen(fd.get(), 1024) != 0) return fail("listen " + at.str(), errno);
  return std::unique_ptr<Listener>(new Listener(loop, std::move(fd), at, std::move(on_accept)));
}

Listener::Listener(Loop* loop, Fd fd, const Endpoint& at, AcceptFn on_accept)
    : at_(at), on_accept_(std::move(on_accept)),
      acceptor_(
          loop, std::move(fd),
          [this](Fd conn, const sockaddr_storage& ss, socklen_t len) {
            auto peer = Endpoint::from_sockaddr(reinterpret_cast<const sockaddr*>(&ss), len);
            on_accept_(std::move(conn), peer.value_or(Endpoint{}));
          },
          [this](int e) {
            LOG_WARN("accept on %s: %s; not accepting for a second", at_.str().c_str(),
                     errno_str(e).c_str());
          }) {}

}  // namespace mpudp

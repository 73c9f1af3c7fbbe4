#include "tunnel/listener.h"

#include <netinet/in.h>

#include <cerrno>

#include "ctl/log.h"
#include "io/socket.h"

#ifndef IPPROTO_MPTCP
#define IPPROTO_MPTCP 262
#endif

namespace mpudp {

std::unique_ptr<Listener> Listener::open(Loop* loop, const Endpoint& at, AcceptFn on_accept,
                                         std::string* err) {
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
  // "[::]:7000" next to "0.0.0.0:7000" must not collide.
  if (at.is_v6()) set_int_opt(fd.get(), SOL_IPV6, IPV6_V6ONLY, 1);
  if (int e = bind_to(fd.get(), at)) return fail("bind " + at.str(), e);
  if (::listen(fd.get(), 1024) != 0) return fail("listen " + at.str(), errno);
  return std::unique_ptr<Listener>(new Listener(loop, std::move(fd), at, std::move(on_accept)));
}

Listener::Listener(Loop* loop, Fd fd, const Endpoint& at, AcceptFn on_accept)
    : fd_(std::move(fd)), at_(at), on_accept_(std::move(on_accept)),
      io_(loop, [this](int) { on_readable(); }) {
  io_.watch(fd_.get(), EV_READ);
}

void Listener::on_readable() {
  for (int i = 0; i < 64; ++i) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    Fd fd(::accept4(fd_.get(), reinterpret_cast<sockaddr*>(&ss), &len,
                    SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!fd) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK)
        LOG_WARN("accept on %s: %s", at_.str().c_str(), errno_str(errno).c_str());
      return;
    }
    auto peer = Endpoint::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len);
    on_accept_(std::move(fd), peer.value_or(Endpoint{}));
  }
}

}  // namespace mpudp

#include "io/acceptor.h"

#include <cerrno>

namespace mpudp {
namespace {
// Connections taken per wake-up before the loop serves everything else again.
constexpr int kBatch = 64;
}  // namespace

Acceptor::Acceptor(Loop* loop, Fd listening, OnConn on_conn, OnPause on_pause, double pause_s)
    : fd_(std::move(listening)), on_conn_(std::move(on_conn)), on_pause_(std::move(on_pause)),
      pause_s_(pause_s), io_(loop, [this](int) { on_readable(); }),
      resume_(loop, [this] { io_.watch(fd_.get(), EV_READ); }) {
  io_.watch(fd_.get(), EV_READ);
}

bool Acceptor::is_shortage(int err) {
  return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
}

void Acceptor::on_readable() {
  for (int i = 0; i < kBatch; ++i) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    Fd fd(::accept4(fd_.get(), reinterpret_cast<sockaddr*>(&ss), &len,
                    SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!fd) {
      const int err = errno;
      if (err == EAGAIN || err == EWOULDBLOCK) return;
      // The pending connection's own trouble (accept(2) says to retry on these).
      if (err == EINTR || err == ECONNABORTED || err == EPROTO || err == ENETDOWN ||
          err == ENETUNREACH || err == EHOSTDOWN || err == EHOSTUNREACH || err == ENONET ||
          err == ENOPROTOOPT || err == EOPNOTSUPP || err == EPERM)
        continue;
      // A shortage, or an error that would come back on every retry: wait, do not spin.
      io_.stop();
      resume_.start(pause_s_);
      ++pauses_;
      if (on_pause_) on_pause_(err);
      return;
    }
    on_conn_(std::move(fd), ss, len);
  }
}

}  // namespace mpudp

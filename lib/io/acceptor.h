// Takes connections from a listening socket: the tunnel listeners, the control socket and
// the metrics endpoint all accept through it.
//
// When accept() fails for want of descriptors or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM)
// the connection stays pending and the socket stays readable, so a level-triggered watcher
// would wake again at once, for as long as the shortage lasts: a daemon at its open-file
// limit would spin on one core (and log each turn). On those, and on any error that is not
// the pending connection's own, the acceptor stops watching for `pause_s` and tells its
// owner once per pause; the kernel keeps the pending connections in the listen backlog
// meanwhile.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <functional>

#include "io/fd.h"
#include "io/loop.h"

namespace mpudp {

class Acceptor {
 public:
  using OnConn = std::function<void(Fd fd, const sockaddr_storage& peer, socklen_t len)>;
  // `err`: the errno that made it pause (Acceptor::is_shortage tells which kind).
  using OnPause = std::function<void(int err)>;

  Acceptor(Loop* loop, Fd listening, OnConn on_conn, OnPause on_pause, double pause_s = 1.0);
  Acceptor(const Acceptor&) = delete;
  Acceptor& operator=(const Acceptor&) = delete;

  int fd() const { return fd_.get(); }
  std::uint64_t pauses() const { return pauses_; }
  bool paused() const { return resume_.active(); }

  // The errors that mean "no resources now, the connection is still pending".
  static bool is_shortage(int err);

 private:
  void on_readable();

  Fd fd_;
  OnConn on_conn_;
  OnPause on_pause_;
  double pause_s_;
  std::uint64_t pauses_ = 0;
  IoWatcher io_;
  Timer resume_;
};

}  // namespace mpudp

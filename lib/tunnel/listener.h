// The concentrator's listening sockets: MPTCP when the kernel has it, plain TCP otherwise
// (an MPTCP listener also accepts plain TCP clients, which arrive as fallback sockets).
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "io/acceptor.h"
#include "io/fd.h"
#include "io/loop.h"
#include "net/endpoint.h"

namespace mpudp {

class Listener {
 public:
  using AcceptFn = std::function<void(Fd fd, const Endpoint& peer)>;
  // reuse_port: SO_REUSEPORT, so that several daemons (one per core, docs/SCALE.md) take
  // connections on one address; the kernel spreads new connections over them and matches
  // each MP_JOIN to its connection by token, whichever of them the join's SYN reaches.
  static std::unique_ptr<Listener> open(Loop* loop, const Endpoint& at, bool reuse_port,
                                        AcceptFn on_accept, std::string* err);
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;
  const Endpoint& address() const { return at_; }

 private:
  Listener(Loop* loop, Fd fd, const Endpoint& at, AcceptFn on_accept);

  Endpoint at_;
  AcceptFn on_accept_;
  Acceptor acceptor_;
};

}  // namespace mpudp

// One request in, one answer out, then close: what the control socket and the metrics
// endpoint both are. The listening socket is made by the caller (unix or TCP); this class
// accepts, reads until `answer` has what it needs, writes the answer and closes.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "io/acceptor.h"
#include "io/fd.h"
#include "io/loop.h"

namespace mpudp {

class RequestServer {
 public:
  // Called with everything read so far: the answer once the request is complete,
  // nullopt to keep reading. A request over `max_request` bytes is dropped.
  using Answer = std::function<std::optional<std::string>(const std::string& in)>;

  // `name` says which server it is in the log ("control socket /run/mpudp.sock").
  RequestServer(Loop* loop, std::string name, Fd listening, std::size_t max_request,
                Answer answer);
  ~RequestServer();
  RequestServer(const RequestServer&) = delete;
  RequestServer& operator=(const RequestServer&) = delete;

 private:
  struct Client;
  void on_accept(Fd fd);
  void on_client(Client* c, int revents);
  void drop(Client* c);

  Loop* loop_;
  std::string name_;
  std::size_t max_request_;
  Answer answer_;
  std::vector<std::unique_ptr<Client>> clients_;
  Acceptor acceptor_;
};

}  // namespace mpudp

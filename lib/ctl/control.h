// The control socket: a unix stream socket, root-only, one request line in, one answer
// out, then the server closes. mpudpctl is its client; the answers are JSON (documented
// in docs/CONTROL.md) so scripts and mpudpctl read the same thing.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "io/fd.h"
#include "io/loop.h"
#include "ctl/request_server.h"

namespace mpudp {

class ControlServer {
 public:
  // Answers one request line ("status", "bindings", "reload"); an unknown request gets
  // {"error": "..."}.
  using Handler = std::function<std::string(const std::string& request)>;

  static std::unique_ptr<ControlServer> open(Loop* loop, const std::string& path,
                                             Handler handler, std::string* err);
  ~ControlServer();
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

 private:
  ControlServer(std::unique_ptr<RequestServer> server, std::string path)
      : server_(std::move(server)), path_(std::move(path)) {}

  std::unique_ptr<RequestServer> server_;
  std::string path_;
};

// Asks a running daemon; the answer, or an error text starting with "error: ".
std::string control_request(const std::string& path, const std::string& request,
                            bool* ok);

}  // namespace mpudp

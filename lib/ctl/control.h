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

  // `in_use` (optional) is set when the failure is another daemon answering on PATH.
  static std::unique_ptr<ControlServer> open(Loop* loop, const std::string& path,
                                             Handler handler, std::string* err,
                                             bool* in_use = nullptr);
  ~ControlServer();
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

 private:
  ControlServer(std::unique_ptr<RequestServer> server, std::string path)
      : server_(std::move(server)), path_(std::move(path)) {}

  std::unique_ptr<RequestServer> server_;
  std::string path_;
};

// PATH, or, when PATH is the built-in default under /run and this system has no /run
// (OpenWrt up to 23.05 has only /var/run), the same name under /var/run. mpudpd and
// mpudpctl both go through this, so they always meet.
std::string usable_control_socket(const std::string& path = MPUDP_CONTROL_SOCKET);

// Creates the directories above the socket PATH: the missing ones, 0755 except the
// socket's own directory, 0700 (the daemon's, root only). False with a message on error.
bool make_socket_dir(const std::string& path, std::string* err);

// Asks a running daemon; the answer, or an error text starting with "error: ".
std::string control_request(const std::string& path, const std::string& request,
                            bool* ok);

}  // namespace mpudp

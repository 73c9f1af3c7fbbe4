#include "ctl/control.h"

#include <sys/stat.h>
#include <sys/un.h>
#include <poll.h>

#include <algorithm>
#include <cstddef>
#include <cerrno>
#include <cstring>

#include "ctl/log.h"
#include "io/socket.h"

namespace mpudp {
namespace {
constexpr std::size_t kMaxRequest = 256;

bool make_addr(const std::string& path, sockaddr_un& sun, socklen_t& len) {
  if (path.empty() || path.size() >= sizeof sun.sun_path) return false;
  std::memset(&sun, 0, sizeof sun);
  sun.sun_family = AF_UNIX;
  std::memcpy(sun.sun_path, path.data(), path.size());
  len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + 1);
  return true;
}
}  // namespace

std::string usable_control_socket(const std::string& path) {
  constexpr std::string_view kRun = "/run/";
  struct stat st {};
  if (path == MPUDP_CONTROL_SOCKET && path.starts_with(kRun) && ::stat("/run", &st) != 0)
    return "/var" + path;
  return path;
}

bool make_socket_dir(const std::string& path, std::string* err) {
  const auto last = path.rfind('/');
  if (last == std::string::npos || last == 0) return true;
  for (std::size_t at = path.find('/', 1); at != std::string::npos && at <= last;
       at = path.find('/', at + 1)) {
    const std::string dir = path.substr(0, at);
    if (::mkdir(dir.c_str(), at == last ? 0700 : 0755) != 0 && errno != EEXIST) {
      *err = "cannot create " + dir + ": " + errno_str(errno);
      return false;
    }
  }
  return true;
}

std::unique_ptr<ControlServer> ControlServer::open(Loop* loop, const std::string& path,
                                                   Handler handler, std::string* err,
                                                   bool* in_use) {
  if (in_use) *in_use = false;
  sockaddr_un sun;
  socklen_t len;
  if (!make_addr(path, sun, len)) {
    if (err) *err = "control socket path \"" + path + "\" is empty or too long";
    return nullptr;
  }
  Fd fd = make_socket(AF_UNIX, SOCK_STREAM, 0);
  if (!fd) {
    if (err) *err = "socket: " + errno_str(errno);
    return nullptr;
  }
  // A stale socket from a daemon that died would block bind; a live one answers.
  bool live = false;
  control_request(path, "ping", &live);
  if (live) {
    if (err) *err = "another daemon answers on " + path;
    if (in_use) *in_use = true;
    return nullptr;
  }
  ::unlink(path.c_str());
  // Root-only from the first instant: no window in which others could connect.
  const mode_t old = ::umask(0177);
  const int rc = ::bind(fd.get(), reinterpret_cast<sockaddr*>(&sun), len);
  const int bind_errno = errno;
  ::umask(old);
  if (rc != 0) {
    if (err) *err = "bind " + path + ": " + errno_str(bind_errno);
    return nullptr;
  }
  if (::listen(fd.get(), 8) != 0) {
    if (err) *err = "listen " + path + ": " + errno_str(errno);
    return nullptr;
  }
  auto server = std::make_unique<RequestServer>(
      loop, "control socket " + path, std::move(fd), kMaxRequest,
      [handler = std::move(handler)](const std::string& in) -> std::optional<std::string> {
        const auto nl = in.find('\n');
        if (nl == std::string::npos) return std::nullopt;
        return handler(in.substr(0, nl)) + "\n";
      });
  return std::unique_ptr<ControlServer>(new ControlServer(std::move(server), path));
}

ControlServer::~ControlServer() {
  server_.reset();
  ::unlink(path_.c_str());
}

std::string control_request(const std::string& path, const std::string& request, bool* ok) {
  *ok = false;
  sockaddr_un sun;
  socklen_t len;
  if (!make_addr(path, sun, len)) return "error: control socket path is empty or too long";
  Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return "error: socket: " + errno_str(errno);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&sun), len) != 0)
    return "error: cannot reach mpudpd at " + path + ": " + errno_str(errno);
  const std::string line = request + "\n";
  if (::send(fd.get(), line.data(), line.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(line.size()))
    return "error: send: " + errno_str(errno);
  std::string out;
  char buf[65536];
  for (;;) {
    pollfd p{fd.get(), POLLIN, 0};
    if (::poll(&p, 1, 5000) <= 0) return "error: mpudpd did not answer within 5 s";
    const ssize_t n = ::recv(fd.get(), buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return "error: recv: " + errno_str(errno);
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  while (!out.empty() && out.back() == '\n') out.pop_back();
  *ok = true;
  return out;
}

}  // namespace mpudp

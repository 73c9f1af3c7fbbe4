#include "io/socket.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>

namespace mpudp {

int family_to_af(Family f) { return f == Family::V6 ? AF_INET6 : AF_INET; }

Fd make_socket(int domain, int type, int protocol) {
  return Fd(::socket(domain, type | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol));
}

int set_int_opt(int fd, int level, int name, int value) {
  return ::setsockopt(fd, level, name, &value, sizeof value) == 0 ? 0 : errno;
}

void set_burst_rcvbuf(int fd, int bytes) {
  // Whether FORCE is allowed does not change while the daemon runs: ask once, not on
  // every socket (the concentrator opens one per binding).
  static bool force_denied = false;
  if (!force_denied) {
    const int e = set_int_opt(fd, SOL_SOCKET, SO_RCVBUFFORCE, bytes);
    if (e == 0) return;
    if (e == EPERM) force_denied = true;
  }
  set_int_opt(fd, SOL_SOCKET, SO_RCVBUF, bytes);
}

int bind_to(int fd, const Endpoint& ep) {
  sockaddr_storage ss;
  socklen_t len = ep.to_sockaddr(ss);
  return ::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) == 0 ? 0 : errno;
}

Endpoint route_source(const Endpoint& remote) {
  Fd fd = make_socket(family_to_af(remote.family), SOCK_DGRAM, IPPROTO_UDP);
  if (!fd) return {};
  sockaddr_storage ss{};
  socklen_t len = remote.to_sockaddr(ss);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0) return {};
  len = sizeof ss;
  if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&ss), &len) != 0) return {};
  Endpoint e = Endpoint::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len).value_or(Endpoint{});
  e.port = 0;
  return e;
}

std::string errno_str(int err) { return std::strerror(err); }

std::string read_first_line(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

namespace {
// One line of /proc/sys/net/ipv4 (a namespace's TCP settings); empty when unreadable.
std::string tcp_sysctl(const char* name) {
  return read_first_line(std::string("/proc/sys/net/ipv4/") + name);
}
}  // namespace

int set_congestion_control(int fd, const std::string& name) {
  const std::string ca = name.empty() ? tcp_sysctl("tcp_congestion_control") : name;
  if (ca.empty()) return ENOENT;
  return ::setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, ca.data(),
                      static_cast<socklen_t>(ca.size())) == 0
             ? 0
             : errno;
}

std::string check_congestion_control(const std::string& name) {
  if (name.empty()) return {};
  Fd fd = make_socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
  if (!fd) return "cannot make a TCP socket to try it: " + errno_str(errno);
  // With CAP_NET_ADMIN the kernel loads a missing tcp_<name> module here.
  const int err = set_congestion_control(fd.get(), name);
  if (err == 0) return {};
  const std::string quoted = "\"" + name + "\"";
  if (err == ENOENT)
    return quoted + " is not available in this kernel (net.ipv4.tcp_available_congestion_control: " +
           tcp_sysctl("tcp_available_congestion_control") + ")";
  if (err == EPERM)
    return quoted + " is not allowed to this process (net.ipv4.tcp_allowed_congestion_control: " +
           tcp_sysctl("tcp_allowed_congestion_control") + ")";
  return quoted + ": " + errno_str(err);
}

std::pair<std::uint16_t, std::uint16_t> local_port_range() {
  unsigned lo = 0, hi = 0;
  if (FILE* f = std::fopen("/proc/sys/net/ipv4/ip_local_port_range", "re")) {
    const bool ok = std::fscanf(f, "%u %u", &lo, &hi) == 2;
    std::fclose(f);
    if (ok && lo >= 1 && lo <= hi && hi <= 65535)
      return {static_cast<std::uint16_t>(lo), static_cast<std::uint16_t>(hi)};
  }
  return {32768, 60999};
}

std::size_t descriptor_budget() {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return SIZE_MAX;
  const auto limit = static_cast<std::size_t>(rl.rlim_cur);
  const std::size_t reserve = limit / 4 < 1024 ? limit / 4 : 1024;
  return limit - reserve;
}

}  // namespace mpudp

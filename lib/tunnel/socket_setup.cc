#include "tunnel/socket_setup.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cerrno>

#include "ctl/log.h"
#include "io/socket.h"
#include "tunnel/mptcp_uapi.h"

namespace mpudp {
namespace {
bool g_logged_no_mptcp = false;
bool g_logged_ca_error = false;
bool g_logged_mark_error = false;
bool g_logged_carrier_error = false;
// A copy carriers' congestion control that could not be set: not tried again, since with
// CAP_NET_ADMIN each try asks for the module to be loaded.
std::string g_copy_ca_missing;
// linux/tcp.h of 6.15 and later; Debian 12's headers predate them.
constexpr int kTcpRtoMinUs = 45;
constexpr int kTcpDelackMaxUs = 46;
}  // namespace

Fd make_tunnel_socket(int af, bool* mptcp) {
  *mptcp = true;
  Fd fd = make_socket(af, SOCK_STREAM, IPPROTO_MPTCP);
  if (!fd && (errno == EPROTONOSUPPORT || errno == EINVAL || errno == ENOPROTOOPT)) {
    if (!g_logged_no_mptcp) {
      LOG_WARN("kernel has no MPTCP (%s): the tunnel runs over plain TCP, one path only",
               errno_str(errno).c_str());
      g_logged_no_mptcp = true;
    }
    *mptcp = false;
    fd = make_socket(af, SOCK_STREAM, IPPROTO_TCP);
  }
  return fd;
}

Fd make_carrier_socket(int af, const std::string& device) {
  Fd fd = make_socket(af, SOCK_STREAM, IPPROTO_TCP);
  if (!fd) return fd;
  if (::setsockopt(fd.get(), SOL_SOCKET, SO_BINDTODEVICE, device.c_str(),
                   static_cast<socklen_t>(device.size())) != 0) {
    const int e = errno;
    fd = Fd();
    errno = e;
  }
  return fd;
}

void tune_carrier_socket(int fd) {
  const struct {
    int opt, value;
    const char* name;
  } settings[] = {{TCP_THIN_LINEAR_TIMEOUTS, 1, "TCP_THIN_LINEAR_TIMEOUTS"},
                  {kTcpRtoMinUs, 50000, "TCP_RTO_MIN_US"},
                  {kTcpDelackMaxUs, 5000, "TCP_DELACK_MAX_US"}};
  for (const auto& s : settings)
    if (int err = set_int_opt(fd, IPPROTO_TCP, s.opt, s.value); err != 0 && !g_logged_carrier_error) {
      g_logged_carrier_error = true;
      LOG_INFO("copy carriers: %s: %s; they keep the kernel's timers", s.name,
               errno_str(err).c_str());
    }
}

void mark_copy_congestion_control_missing(const std::string& name) { g_copy_ca_missing = name; }

bool apply_copy_congestion_control(int fd, const std::string& name) {
  if (name.empty() || name == g_copy_ca_missing) return false;
  if (int err = set_congestion_control(fd, name); err != 0) {
    g_copy_ca_missing = name;
    LOG_WARN("tunnel.copy_congestion_control \"%s\": %s; copy carriers run the tunnel's",
             name.c_str(), errno_str(err).c_str());
    return false;
  }
  return true;
}

void apply_congestion_control(int fd, const std::string& name) {
  if (int err = set_congestion_control(fd, name); err != 0 && !g_logged_ca_error) {
    g_logged_ca_error = true;
    LOG_WARN("tunnel.congestion_control \"%s\": %s; connections keep what they have",
             name.empty() ? "(system default)" : name.c_str(), errno_str(err).c_str());
  }
}

void tune_tunnel_socket(int fd, const std::string& congestion_control) {
  set_int_opt(fd, IPPROTO_TCP, TCP_NODELAY, 1);
  if (int err = set_int_opt(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, kNotsentLowat))
    LOG_DEBUG("TCP_NOTSENT_LOWAT not supported here: %s", errno_str(err).c_str());
  if (!congestion_control.empty()) apply_congestion_control(fd, congestion_control);
}

void apply_receive_buffer(int fd, std::size_t bytes) {
  // Not the default's autotuning (config.h, Tunnel::receive_buffer): on the MPTCP socket
  // the kernel applies it to every subflow, those there and later joins. Without the
  // right to force it, net.core.rmem_max caps it; the kernel doubles what it grants.
  if (bytes != 0) set_burst_rcvbuf(fd, static_cast<int>(bytes));
}

void set_express_marks(int fd, const Endpoint& peer, int priority, int dscp, bool with_tos,
                       bool reset) {
  auto failed = [&peer](const char* what, int err) {
    // Unmarked packets still arrive; say it once rather than per connection.
    if (g_logged_mark_error) return;
    g_logged_mark_error = true;
    LOG_WARN("express connection to %s: cannot set %s: %s; its packets go unmarked",
             peer.str().c_str(), what, errno_str(err).c_str());
  };
  if (with_tos && (dscp != 0 || reset)) {
    // IP_TOS also covers an IPv6 socket's IPv4-mapped peer. The kernel keeps the ECN bits.
    const int tos = dscp << 2;
    int err = peer.is_v4() ? set_int_opt(fd, IPPROTO_IP, IP_TOS, tos)
                           : set_int_opt(fd, IPPROTO_IPV6, IPV6_TCLASS, tos);
    if (err) failed(peer.is_v4() ? "DSCP (IP_TOS)" : "DSCP (IPV6_TCLASS)", err);
  }
  // After IP_TOS, which resets the priority to one derived from the TOS bits. MPTCP does
  // the same to a subflow that joins later (it copies the priority, then the TOS), so
  // with both set the connection's keepalive timer sets the priority again (with_tos
  // false): a join gets its priority back within one keepalive period.
  if (priority != 0 || reset)
    if (int err = set_int_opt(fd, SOL_SOCKET, SO_PRIORITY, priority)) failed("SO_PRIORITY", err);
}

void set_abortive_close(int fd) {
  linger lg{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
}

}  // namespace mpudp

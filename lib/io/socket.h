// Small socket helpers shared by the IO rooms; errors come back as errno values.
#pragma once

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

#include "io/fd.h"
#include "net/endpoint.h"

namespace mpudp {

int family_to_af(Family f);
// Non-blocking, close-on-exec socket; invalid Fd and errno set on failure.
Fd make_socket(int domain, int type, int protocol);
// 0 on success, else errno.
int set_int_opt(int fd, int level, int name, int value);
// A receive buffer of `bytes` for sockets that take bursts between two loop iterations:
// SO_RCVBUFFORCE passes net.core.rmem_max (208 KiB by default) with CAP_NET_ADMIN; without
// it, SO_RCVBUF up to rmem_max. The buffer is a bound, not an allocation: an idle socket
// costs nothing for it.
void set_burst_rcvbuf(int fd, int bytes);
// Descriptors the daemon may spend on bindings (a concentrator's relay sockets, quarantined
// sockets and sessions): the open-file limit less a reserve, a quarter of it and at most
// 1024, for what must keep working at the bound: the control socket and its clients, new
// tunnel connections, the path manager's netlink socket. SIZE_MAX without a limit.
std::size_t descriptor_budget();
// The kernel's ephemeral ports (net.ipv4.ip_local_port_range, IPv6 included): where a
// socket bound to port 0 gets its port. The kernel's default, 32768..60999, when the
// file cannot be read.
std::pair<std::uint16_t, std::uint16_t> local_port_range();
int bind_to(int fd, const Endpoint& ep);
// The source address this host's routing picks for datagrams to `remote` (a connected UDP
// probe socket; nothing is sent), port 0; invalid when there is no route.
Endpoint route_source(const Endpoint& remote);
// TCP_CONGESTION (an MPTCP socket passes it on to its subflows, joins included); an empty
// name is the network namespace's default (net.ipv4.tcp_congestion_control). 0 or errno.
int set_congestion_control(int fd, const std::string& name);
// Whether a TCP socket here takes congestion control `name`: empty when it does, else why
// not, naming what the kernel has (for the daemon's start and reload).
std::string check_congestion_control(const std::string& name);
std::string errno_str(int err);
// The first line of a file such as /proc/sys/net/mptcp/enabled (a setting of this
// network namespace); empty when unreadable.
std::string read_first_line(const std::string& path);

}  // namespace mpudp

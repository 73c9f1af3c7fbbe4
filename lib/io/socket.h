// Small socket helpers shared by the IO rooms; errors come back as errno values.
#pragma once

#include <sys/socket.h>

#include <string>

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
int bind_to(int fd, const Endpoint& ep);
std::string errno_str(int err);

}  // namespace mpudp

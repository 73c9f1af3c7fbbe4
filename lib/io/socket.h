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
int bind_to(int fd, const Endpoint& ep);
std::string errno_str(int err);

}  // namespace mpudp

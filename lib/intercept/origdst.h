// The original destination of a TPROXY-intercepted datagram, from the ancillary data the
// kernel attaches when IP_RECVORIGDSTADDR / IPV6_RECVORIGDSTADDR is on. Pure parsing, so
// unit tests can feed it hand-built control messages.
#pragma once

#include <sys/socket.h>

#include <optional>

#include "net/endpoint.h"

namespace mpudp {

std::optional<Endpoint> parse_origdst(const msghdr& msg);

}  // namespace mpudp

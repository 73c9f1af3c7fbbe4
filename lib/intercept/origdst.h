// The original destination of a TPROXY-intercepted datagram, from the ancillary data the
// kernel attaches when IP_RECVORIGDSTADDR / IPV6_RECVORIGDSTADDR is on. Pure parsing, so
// unit tests can feed it hand-built control messages.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <optional>

#include "net/endpoint.h"

namespace mpudp {

// With `dscp`, also the datagram's DSCP from IP_TOS / IPV6_TCLASS (IP_RECVTOS /
// IPV6_RECVTCLASS on), 0 when the message carries none.
std::optional<Endpoint> parse_origdst(const msghdr& msg, std::uint8_t* dscp = nullptr);

}  // namespace mpudp

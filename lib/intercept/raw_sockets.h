// The raw sockets the CPE writes whole IP packets through, whose source is not its own
// address: NFQUEUE's replies and the ICMP errors to clients.
#pragma once

#include <string>

#include "io/fd.h"

namespace mpudp {

struct RawSockets {
  Fd v4, v6;
  // IPPROTO_RAW sockets with the IP header included (IPV6_HDRINCL for IPv6). Needs
  // CAP_NET_RAW; false with the reason when either cannot be had.
  bool open(std::string* err);
};

}  // namespace mpudp

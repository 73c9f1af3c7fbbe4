// What an ICMP error on a relay socket's error queue means for the client, in the terms of
// the ICMP frame (docs/PROTOCOL.md, "ICMP"). Pure: unit tests feed it values.
#pragma once

#include <time.h>  // linux/errqueue.h uses struct timespec without including it
#include <linux/errqueue.h>

#include <cstdint>

#include "wire/frame.h"

namespace mpudp {

struct IcmpError {
  bool relayed = false;  // false: counted, not passed on
  wire::IcmpKind kind = wire::IcmpKind::PortUnreachable;
  std::uint16_t mtu = 0;  // TooBig only
};

// Errors direct routing would not have shown the client as one of the frame's kinds (time
// exceeded, protocol unreachable, local errors other than too big), and "too big" with an
// MTU a client could not use (0, over 16 bits), are not relayed.
IcmpError classify_icmp_error(const sock_extended_err& ee);

}  // namespace mpudp

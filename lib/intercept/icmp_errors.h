// The CPE's half of ICMP transparency: the ICMP (IPv4) or ICMPv6 error a client would
// have had from the remote's network, sent from the remote's address through a raw socket
// on the concentrator's word (an ICMP frame, docs/PROTOCOL.md "ICMP").
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "ctl/stats.h"
#include "io/fd.h"
#include "net/endpoint.h"
#include "wire/frame.h"

namespace mpudp {

// ICMP type and code for an error kind in the client's family; ok false for a kind this
// build does not know.
struct IcmpCode {
  bool ok = false;
  std::uint8_t type = 0;
  std::uint8_t code = 0;
};
IcmpCode icmp_code(wire::IcmpKind kind, Family family);

// A token bucket, as the kernel limits the ICMP it sends (net.ipv4.icmp_msgs_per_sec,
// icmp_msgs_burst). Time is passed in, so this stays pure.
class IcmpBucket {
 public:
  IcmpBucket(double rate, double burst) : rate_(rate), burst_(burst), tokens_(burst) {}
  bool take(double now);

 private:
  double rate_, burst_, tokens_;
  double at_ = -1;
};

class IcmpErrors {
 public:
  // Raw sockets with headers included (IPPROTO_RAW; IPV6_HDRINCL): the packet's source
  // is the remote's address, which is not this host's. Needs CAP_NET_RAW.
  static std::unique_ptr<IcmpErrors> open(Stats& stats, std::string* err);
  // Sends `client` the error `kind` about its datagram of `payload_len` bytes to
  // `remote`, from `remote`, within the rate; counted either way.
  void send(const Endpoint& remote, const Endpoint& client, wire::IcmpKind kind,
            std::uint16_t mtu, std::size_t payload_len, double now);

 private:
  IcmpErrors(Fd v4, Fd v6, Stats& stats);
  Fd v4_, v6_;
  Stats& stats_;
  // 1000 a second in bursts of 50: the kernel's own defaults for the ICMP it sends.
  IcmpBucket bucket_{1000, 50};
};

}  // namespace mpudp

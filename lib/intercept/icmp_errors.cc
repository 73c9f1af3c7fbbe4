#include "intercept/icmp_errors.h"

#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cerrno>

#include "ctl/log.h"
#include "intercept/packet.h"
#include "intercept/raw_sockets.h"
#include "io/socket.h"

namespace mpudp {

IcmpCode icmp_code(wire::IcmpKind kind, Family family) {
  using K = wire::IcmpKind;
  const bool v6 = family == Family::V6;
  switch (kind) {
    // ICMP destination unreachable (3) codes, RFC 792/1812; ICMPv6 (1) codes, RFC 4443.
    case K::PortUnreachable: return v6 ? IcmpCode{true, 1, 4} : IcmpCode{true, 3, 3};
    case K::HostUnreachable: return v6 ? IcmpCode{true, 1, 3} : IcmpCode{true, 3, 1};
    case K::NetUnreachable: return v6 ? IcmpCode{true, 1, 0} : IcmpCode{true, 3, 0};
    case K::AdminProhibited: return v6 ? IcmpCode{true, 1, 1} : IcmpCode{true, 3, 13};
    // Fragmentation needed and DF set (RFC 1191); ICMPv6 packet too big.
    case K::TooBig: return v6 ? IcmpCode{true, 2, 0} : IcmpCode{true, 3, 4};
  }
  return {};
}

bool IcmpBucket::take(double now) {
  if (at_ >= 0) tokens_ = std::min(burst_, tokens_ + (now - at_) * rate_);
  at_ = now;
  if (tokens_ < 1) return false;
  tokens_ -= 1;
  return true;
}

std::unique_ptr<IcmpErrors> IcmpErrors::open(Stats& stats, std::string* err) {
  RawSockets raw;
  if (!raw.open(err)) return nullptr;
  return std::unique_ptr<IcmpErrors>(
      new IcmpErrors(std::move(raw.v4), std::move(raw.v6), stats));
}

IcmpErrors::IcmpErrors(Fd v4, Fd v6, Stats& stats)
    : v4_(std::move(v4)), v6_(std::move(v6)), stats_(stats) {}

void IcmpErrors::send(const Endpoint& remote, const Endpoint& client, wire::IcmpKind kind,
                      std::uint16_t mtu, std::size_t payload_len, double now) {
  const IcmpCode ic = icmp_code(kind, client.family);
  if (!ic.ok) {
    stats_.add(Counter::lan_icmp_failed);
    return;
  }
  if (!bucket_.take(now)) {
    stats_.add(Counter::lan_icmp_rate_limited);
    return;
  }
  std::array<std::uint8_t, packet::kIcmpErrorMax> buf;
  const std::size_t len =
      packet::build_icmp_error(remote, client, ic.type, ic.code, mtu, payload_len, buf);
  if (len == 0) {
    stats_.add(Counter::lan_icmp_failed);
    return;
  }
  sockaddr_storage ss;
  Endpoint dst = client;
  dst.port = 0;  // raw sockets take the address only
  const socklen_t sl = dst.to_sockaddr(ss);
  const int fd = client.is_v6() ? v6_.get() : v4_.get();
  for (;;) {
    if (::sendto(fd, buf.data(), len, MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&ss), sl) >= 0) {
      stats_.add(Counter::lan_icmp_tx);
      return;
    }
    if (errno != EINTR) break;
  }
  stats_.add(Counter::lan_icmp_failed);
  LOG_DEBUG("ICMP %s to %s from %s: %s", wire::to_string(kind), client.str().c_str(),
            remote.str().c_str(), errno_str(errno).c_str());
}

}  // namespace mpudp

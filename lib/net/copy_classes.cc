#include "net/copy_classes.h"

#include <algorithm>

namespace mpudp {

bool CopyClasses::matches(const Endpoint& client, const Endpoint& remote) const {
  const auto in = [](std::uint16_t port) {
    return [port](const PortRange& r) { return port >= r.lo && port <= r.hi; };
  };
  // Either end's port: a server's well-known port names the service (SIP, TURN), but
  // some consoles and phones keep a fixed source port of their own instead.
  return std::any_of(ports.begin(), ports.end(), in(remote.port)) ||
         std::any_of(ports.begin(), ports.end(), in(client.port)) ||
         std::any_of(hosts.begin(), hosts.end(),
                     [&client](const Cidr& c) { return c.contains(client); });
}

}  // namespace mpudp

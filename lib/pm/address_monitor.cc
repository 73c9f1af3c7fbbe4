#include "pm/address_monitor.h"

#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>

#include "ctl/log.h"

namespace mpudp::pm {

bool AddressMonitor::start(std::string* err) {
  if (links_.start(err)) return true;
  set_.clear();
  ifaddrs* ifa = nullptr;
  if (::getifaddrs(&ifa) != 0) return false;
  for (ifaddrs* i = ifa; i != nullptr; i = i->ifa_next) {
    if (i->ifa_addr == nullptr) continue;
    const socklen_t len =
        i->ifa_addr->sa_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
    if (auto e = Endpoint::from_sockaddr(i->ifa_addr, len))
      set_.add(::if_nametoindex(i->ifa_name), *e);
  }
  ::freeifaddrs(ifa);
  return false;
}

void AddressMonitor::on_address(int ifindex, const Endpoint& a, bool present, bool) {
  const auto holder = static_cast<std::uint32_t>(ifindex);
  if (present) {
    if (!set_.contains(a)) LOG_DEBUG("own address %s", a.address_str().c_str());
    set_.add(holder, a);
  } else {
    set_.remove(holder, a);
    if (!set_.contains(a)) LOG_DEBUG("own address %s gone", a.address_str().c_str());
  }
}

}  // namespace mpudp::pm

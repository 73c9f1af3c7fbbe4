#include "intercept/origdst.h"

#include <netinet/in.h>

#include <cstring>

namespace mpudp {

std::optional<Endpoint> parse_origdst(const msghdr& msg, std::uint8_t* dscp) {
  if (dscp != nullptr) *dscp = 0;
  if (msg.msg_control == nullptr || msg.msg_controllen < sizeof(cmsghdr)) return std::nullopt;
  // CMSG_NXTHDR takes a non-const msghdr in glibc; it does not modify it.
  auto* m = const_cast<msghdr*>(&msg);
  for (cmsghdr* c = CMSG_FIRSTHDR(m); c != nullptr; c = CMSG_NXTHDR(m, c)) {
    const auto data_len = static_cast<socklen_t>(c->cmsg_len - CMSG_LEN(0));
    // The kernel writes the TOS / traffic class before the original destination
    // (ip_cmsg_recv_offset, ip6_datagram_recv_specific_ctl), so this loop sees it first.
    if (dscp != nullptr && c->cmsg_level == SOL_IP && c->cmsg_type == IP_TOS && data_len >= 1) {
      *dscp = static_cast<std::uint8_t>(*CMSG_DATA(c) >> 2);
      continue;
    }
    if (dscp != nullptr && c->cmsg_level == SOL_IPV6 && c->cmsg_type == IPV6_TCLASS &&
        data_len >= sizeof(int)) {
      int tclass = 0;
      std::memcpy(&tclass, CMSG_DATA(c), sizeof tclass);
      *dscp = static_cast<std::uint8_t>((tclass & 0xff) >> 2);
      continue;
    }
    if (c->cmsg_level == SOL_IP && c->cmsg_type == IP_ORIGDSTADDR) {
      if (data_len < sizeof(sockaddr_in)) return std::nullopt;
      return Endpoint::from_sockaddr(reinterpret_cast<const sockaddr*>(CMSG_DATA(c)), data_len);
    }
    if (c->cmsg_level == SOL_IPV6 && c->cmsg_type == IPV6_ORIGDSTADDR) {
      if (data_len < sizeof(sockaddr_in6)) return std::nullopt;
      return Endpoint::from_sockaddr(reinterpret_cast<const sockaddr*>(CMSG_DATA(c)), data_len);
    }
  }
  return std::nullopt;
}

}  // namespace mpudp

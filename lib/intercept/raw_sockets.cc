#include "intercept/raw_sockets.h"

#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>

#include "io/socket.h"

namespace mpudp {

bool RawSockets::open(std::string* err) {
  v4 = make_socket(AF_INET, SOCK_RAW, IPPROTO_RAW);  // IPPROTO_RAW implies IP_HDRINCL
  if (!v4) {
    if (err) *err = "raw IPv4 socket (needs CAP_NET_RAW): " + errno_str(errno);
    return false;
  }
  v6 = make_socket(AF_INET6, SOCK_RAW, IPPROTO_RAW);
  if (!v6) {
    if (err) *err = "raw IPv6 socket (needs CAP_NET_RAW): " + errno_str(errno);
    return false;
  }
  if (int e = set_int_opt(v6.get(), IPPROTO_IPV6, IPV6_HDRINCL, 1)) {
    if (err) *err = "IPV6_HDRINCL (Linux >= 4.5): " + errno_str(e);
    return false;
  }
  // They only send: nothing that reaches them by accident should pile up.
  set_int_opt(v4.get(), SOL_SOCKET, SO_RCVBUF, 1);
  set_int_opt(v6.get(), SOL_SOCKET, SO_RCVBUF, 1);
  return true;
}

}  // namespace mpudp

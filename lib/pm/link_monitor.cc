#include "pm/link_monitor.h"

#include <fcntl.h>
#include <libmnl/libmnl.h>
#include <linux/if.h>
#include <linux/if_addr.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "ctl/log.h"

namespace mpudp::pm {
namespace {

struct Attrs {
  const nlattr* a[IFLA_MAX > IFA_MAX ? IFLA_MAX + 1 : IFA_MAX + 1] = {};
  unsigned max = 0;
};

int collect(const nlattr* attr, void* data) {
  auto* t = static_cast<Attrs*>(data);
  if (mnl_attr_type_valid(attr, static_cast<std::uint16_t>(t->max)) < 0) return MNL_CB_OK;
  t->a[mnl_attr_get_type(attr)] = attr;
  return MNL_CB_OK;
}

}  // namespace

LinkMonitor::LinkMonitor(Loop* loop, LinkObserver& obs)
    : obs_(obs), watcher_(loop, [this](int) { on_readable(); }) {}

bool LinkMonitor::start(std::string* err) {
  if (!sock_.open(NETLINK_ROUTE, RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR, err))
    return false;
  // Overflow is handled by a fresh dump; a bigger buffer makes it rarer.
  int rcvbuf = 1 << 20;
  setsockopt(sock_.fd(), SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
  if (!dump(err)) return false;
  if (!sock_.set_nonblocking(err)) return false;
  watcher_.watch(sock_.fd(), EV_READ);
  return true;
}

void LinkMonitor::stop() { watcher_.stop(); }

bool LinkMonitor::dump(std::string* err) {
  obs_.on_links_reset();
  auto handle_dump = [this](const nlmsghdr* m) { handle(m, true); };
  auto handle_live = [this](const nlmsghdr* m) { handle(m, false); };
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
  {
    nlmsghdr* nlh = mnl_nlmsg_put_header(buf.data());
    nlh->nlmsg_type = RTM_GETLINK;
    nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    auto* ifi = static_cast<ifinfomsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifinfomsg)));
    ifi->ifi_family = AF_UNSPEC;
    if (!sock_.transact(nlh, handle_dump, err, handle_live)) {
      *err = "rtnetlink link dump: " + *err;
      return false;
    }
  }
  {
    nlmsghdr* nlh = mnl_nlmsg_put_header(buf.data());
    nlh->nlmsg_type = RTM_GETADDR;
    nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    auto* ifa = static_cast<ifaddrmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifaddrmsg)));
    ifa->ifa_family = AF_UNSPEC;
    if (!sock_.transact(nlh, handle_dump, err, handle_live)) {
      *err = "rtnetlink address dump: " + *err;
      return false;
    }
  }
  obs_.on_changes_done();
  return true;
}

void LinkMonitor::handle(const nlmsghdr* nlh, bool from_dump) {
  switch (nlh->nlmsg_type) {
    case RTM_NEWLINK:
    case RTM_DELLINK: {
      if (mnl_nlmsg_get_payload_len(nlh) < sizeof(ifinfomsg)) return;
      const auto* ifi = static_cast<const ifinfomsg*>(mnl_nlmsg_get_payload(nlh));
      if (nlh->nlmsg_type == RTM_DELLINK) {
        obs_.on_link_gone(ifi->ifi_index);
        return;
      }
      Attrs t;
      t.max = IFLA_MAX;
      mnl_attr_parse(nlh, sizeof(ifinfomsg), collect, &t);
      const nlattr* name = t.a[IFLA_IFNAME];
      if (name == nullptr || mnl_attr_get_payload_len(name) == 0) return;
      const char* p = static_cast<const char*>(mnl_attr_get_payload(name));
      std::string n(p, strnlen(p, mnl_attr_get_payload_len(name)));
      bool up = (ifi->ifi_flags & IFF_UP) && (ifi->ifi_flags & IFF_RUNNING);
      obs_.on_link(ifi->ifi_index, n, up);
      return;
    }
    case RTM_NEWADDR:
    case RTM_DELADDR: {
      if (mnl_nlmsg_get_payload_len(nlh) < sizeof(ifaddrmsg)) return;
      const auto* ifa = static_cast<const ifaddrmsg*>(mnl_nlmsg_get_payload(nlh));
      Attrs t;
      t.max = IFA_MAX;
      mnl_attr_parse(nlh, sizeof(ifaddrmsg), collect, &t);
      // IFA_LOCAL is the interface's own address (IFA_ADDRESS is the peer on ptp links).
      const nlattr* a = t.a[IFA_LOCAL] ? t.a[IFA_LOCAL] : t.a[IFA_ADDRESS];
      if (a == nullptr) return;
      Endpoint e;
      std::size_t need = ifa->ifa_family == AF_INET ? 4 : ifa->ifa_family == AF_INET6 ? 16 : 0;
      if (need == 0 || mnl_attr_get_payload_len(a) < need) return;
      e.family = need == 4 ? Family::V4 : Family::V6;
      std::memcpy(e.addr.data(), mnl_attr_get_payload(a), need);
      std::uint32_t flags = ifa->ifa_flags;
      if (t.a[IFA_FLAGS] && mnl_attr_get_payload_len(t.a[IFA_FLAGS]) >= 4)
        flags = mnl_attr_get_u32(t.a[IFA_FLAGS]);
      bool present = nlh->nlmsg_type == RTM_NEWADDR &&
                     (flags & (IFA_F_TENTATIVE | IFA_F_DADFAILED)) == 0;
      obs_.on_address(static_cast<int>(ifa->ifa_index), e, present, from_dump);
      return;
    }
    default:
      return;
  }
}

void LinkMonitor::on_readable() {
  std::vector<char> buf(32768);
  bool any = false;
  for (;;) {
    ssize_t n = mnl_socket_recvfrom(sock_.get(), buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      if (errno == ENOBUFS) {
        LOG_WARN("rtnetlink: link/address changes were lost; reading the state again");
        std::string err;
        // The dump is synchronous: blocking for it is brief, and the socket must not be
        // read in non-blocking mode while a dump answers.
        int fl = fcntl(sock_.fd(), F_GETFL);
        fcntl(sock_.fd(), F_SETFL, fl & ~O_NONBLOCK);
        if (!dump(&err)) LOG_ERROR("rtnetlink: %s", err.c_str());
        fcntl(sock_.fd(), F_SETFL, fl);
        return;
      }
      LOG_ERROR("rtnetlink receive: %s", std::strerror(errno));
      break;
    }
    int len = static_cast<int>(n);
    for (auto* nlh = reinterpret_cast<const nlmsghdr*>(buf.data()); mnl_nlmsg_ok(nlh, len);
         nlh = mnl_nlmsg_next(nlh, &len)) {
      handle(nlh, false);
      any = true;
    }
  }
  if (any) obs_.on_changes_done();
}

}  // namespace mpudp::pm

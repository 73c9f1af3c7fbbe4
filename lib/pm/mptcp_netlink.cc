#include "pm/mptcp_netlink.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <libmnl/libmnl.h>
#include <linux/genetlink.h>
#include <linux/mptcp.h>
#include <linux/netlink.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <utility>

namespace mpudp::pm {
namespace {

// Large enough for any single message the kernel sends here (dumps are split by it).
constexpr std::size_t kBufSize = 32768;

std::string errno_text(const char* what) { return std::string(what) + ": " + std::strerror(errno); }

// A parsed attribute table, indexed by type; attributes of unknown type are skipped (a
// newer kernel may add some), known ones of the wrong size are treated as absent.
template <std::size_t N>
struct AttrTable {
  std::array<const nlattr*, N + 1> a{};
  const nlattr* operator[](std::size_t t) const { return t <= N ? a[t] : nullptr; }
};

template <std::size_t N>
int collect_cb(const nlattr* attr, void* data) {
  auto* t = static_cast<AttrTable<N>*>(data);
  if (mnl_attr_type_valid(attr, N) < 0) return MNL_CB_OK;
  t->a[mnl_attr_get_type(attr)] = attr;
  return MNL_CB_OK;
}

bool attr_len_at_least(const nlattr* a, std::size_t n) {
  return a != nullptr && mnl_attr_get_payload_len(a) >= n;
}
std::optional<std::uint8_t> get_u8(const nlattr* a) {
  if (!attr_len_at_least(a, 1)) return std::nullopt;
  return mnl_attr_get_u8(a);
}
std::optional<std::uint16_t> get_u16(const nlattr* a) {
  if (!attr_len_at_least(a, 2)) return std::nullopt;
  return mnl_attr_get_u16(a);
}
std::optional<std::uint32_t> get_u32(const nlattr* a) {
  if (!attr_len_at_least(a, 4)) return std::nullopt;
  return mnl_attr_get_u32(a);
}

Endpoint endpoint_from(Family fam, const nlattr* a, std::uint16_t port_host) {
  Endpoint e;
  std::size_t n = fam == Family::V4 ? 4 : 16;
  if (!attr_len_at_least(a, n)) return e;
  e.family = fam;
  std::memcpy(e.addr.data(), mnl_attr_get_payload(a), n);
  e.port = port_host;
  return e;
}

nlmsghdr* put_genl(char* buf, std::uint16_t family, std::uint8_t cmd, std::uint16_t flags) {
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf);
  nlh->nlmsg_type = family;
  nlh->nlmsg_flags = NLM_F_REQUEST | flags;
  auto* g = static_cast<genlmsghdr*>(mnl_nlmsg_put_extra_header(nlh, sizeof(genlmsghdr)));
  g->cmd = cmd;
  g->version = MPTCP_PM_VER;
  return nlh;
}

}  // namespace

// ---- MnlSocket -------------------------------------------------------------------------

MnlSocket::~MnlSocket() {
  if (s_) mnl_socket_close(s_);
}
MnlSocket::MnlSocket(MnlSocket&& o) noexcept
    : s_(std::exchange(o.s_, nullptr)), seq_(o.seq_) {}
MnlSocket& MnlSocket::operator=(MnlSocket&& o) noexcept {
  if (this != &o) {
    if (s_) mnl_socket_close(s_);
    s_ = std::exchange(o.s_, nullptr);
    seq_ = o.seq_;
  }
  return *this;
}

bool MnlSocket::open(int bus, unsigned groups, std::string* err) {
  mnl_socket* s = mnl_socket_open2(bus, SOCK_CLOEXEC);
  if (s == nullptr) {
    *err = errno_text("netlink socket");
    return false;
  }
  if (mnl_socket_bind(s, groups, MNL_SOCKET_AUTOPID) < 0) {
    *err = errno_text("netlink bind");
    mnl_socket_close(s);
    return false;
  }
  int one = 1;
  // Best effort: without them errors are still reported, only less precisely.
  mnl_socket_setsockopt(s, NETLINK_EXT_ACK, &one, sizeof(one));
  mnl_socket_setsockopt(s, NETLINK_CAP_ACK, &one, sizeof(one));
  if (s_) mnl_socket_close(s_);
  s_ = s;
  seq_ = static_cast<std::uint32_t>(time(nullptr));
  return true;
}

bool MnlSocket::join_group(unsigned group, std::string* err) {
  int g = static_cast<int>(group);
  if (mnl_socket_setsockopt(s_, NETLINK_ADD_MEMBERSHIP, &g, sizeof(g)) < 0) {
    *err = errno_text("netlink join group");
    return false;
  }
  return true;
}

bool MnlSocket::set_nonblocking(std::string* err) {
  int fl = fcntl(fd(), F_GETFL);
  if (fl < 0 || fcntl(fd(), F_SETFL, fl | O_NONBLOCK) < 0) {
    *err = errno_text("fcntl O_NONBLOCK");
    return false;
  }
  return true;
}

int MnlSocket::fd() const { return s_ ? mnl_socket_get_fd(s_) : -1; }
std::uint32_t MnlSocket::portid() const { return s_ ? mnl_socket_get_portid(s_) : 0; }

std::string netlink_error_text(const nlmsghdr* nlh) {
  if (mnl_nlmsg_get_payload_len(nlh) < sizeof(nlmsgerr)) return "truncated netlink error";
  const auto* e = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
  std::string s = std::strerror(-e->error);
  if ((nlh->nlmsg_flags & NLM_F_ACK_TLVS) == 0) return s;
  std::size_t off = sizeof(nlmsgerr);
  if ((nlh->nlmsg_flags & NLM_F_CAPPED) == 0 && e->msg.nlmsg_len >= sizeof(nlmsghdr))
    off += MNL_ALIGN(e->msg.nlmsg_len - sizeof(nlmsghdr));
  if (off >= mnl_nlmsg_get_payload_len(nlh)) return s;
  AttrTable<NLMSGERR_ATTR_MAX> t;
  mnl_attr_parse(nlh, static_cast<unsigned>(off), collect_cb<NLMSGERR_ATTR_MAX>, &t);
  const nlattr* msg = t[NLMSGERR_ATTR_MSG];
  if (msg != nullptr && mnl_attr_get_payload_len(msg) > 0) {
    const char* p = static_cast<const char*>(mnl_attr_get_payload(msg));
    std::string text(p, strnlen(p, mnl_attr_get_payload_len(msg)));
    if (!text.empty()) s += " (kernel: " + text + ")";
  }
  return s;
}

bool MnlSocket::transact(nlmsghdr* req, const std::function<void(const nlmsghdr*)>& on_msg,
                         std::string* err,
                         const std::function<void(const nlmsghdr*)>& on_other) {
  const bool dump = (req->nlmsg_flags & NLM_F_DUMP) == NLM_F_DUMP;
  if (!dump) req->nlmsg_flags |= NLM_F_ACK;
  req->nlmsg_seq = ++seq_;
  if (mnl_socket_sendto(s_, req, req->nlmsg_len) < 0) {
    *err = errno_text("netlink send");
    return false;
  }
  std::vector<char> buf(kBufSize);
  const std::uint32_t seq = req->nlmsg_seq, pid = portid();
  for (;;) {
    ssize_t n = mnl_socket_recvfrom(s_, buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      // A multicast overflow on a shared socket is not an error of this request.
      if (errno == ENOBUFS) continue;
      *err = errno_text("netlink receive");
      return false;
    }
    int len = static_cast<int>(n);
    for (auto* nlh = reinterpret_cast<const nlmsghdr*>(buf.data()); mnl_nlmsg_ok(nlh, len);
         nlh = mnl_nlmsg_next(nlh, &len)) {
      if (nlh->nlmsg_seq != seq || nlh->nlmsg_pid != pid) {
        if (on_other) on_other(nlh);
        continue;
      }
      if (nlh->nlmsg_type == NLMSG_ERROR) {
        if (mnl_nlmsg_get_payload_len(nlh) < sizeof(nlmsgerr)) {
          *err = "truncated netlink error";
          return false;
        }
        const auto* e = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
        if (e->error == 0) return true;
        errno = -e->error;
        *err = netlink_error_text(nlh);
        return false;
      }
      if (nlh->nlmsg_type == NLMSG_DONE) {
        if (mnl_nlmsg_get_payload_len(nlh) >= sizeof(int)) {
          int rc = *static_cast<const int*>(mnl_nlmsg_get_payload(nlh));
          if (rc < 0) {
            errno = -rc;
            *err = std::strerror(-rc);
            return false;
          }
        }
        return true;
      }
      on_msg(nlh);
    }
  }
}

// ---- family resolution ----------------------------------------------------------------

bool resolve_mptcp_pm(GenlFamily* out, std::string* err) {
  MnlSocket s;
  if (!s.open(NETLINK_GENERIC, 0, err)) return false;
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf.data());
  nlh->nlmsg_type = GENL_ID_CTRL;
  nlh->nlmsg_flags = NLM_F_REQUEST;
  auto* g = static_cast<genlmsghdr*>(mnl_nlmsg_put_extra_header(nlh, sizeof(genlmsghdr)));
  g->cmd = CTRL_CMD_GETFAMILY;
  g->version = 1;
  mnl_attr_put_strz(nlh, CTRL_ATTR_FAMILY_NAME, MPTCP_PM_NAME);
  GenlFamily fam;
  bool got_id = false;
  std::string e;
  bool ok = s.transact(
      nlh,
      [&](const nlmsghdr* m) {
        AttrTable<CTRL_ATTR_MAX> t;
        mnl_attr_parse(m, sizeof(genlmsghdr), collect_cb<CTRL_ATTR_MAX>, &t);
        if (auto id = get_u16(t[CTRL_ATTR_FAMILY_ID])) {
          fam.id = *id;
          got_id = true;
        }
        const nlattr* groups = t[CTRL_ATTR_MCAST_GROUPS];
        if (groups == nullptr) return;
        std::vector<const nlattr*> entries;
        mnl_attr_parse_nested(
            groups,
            [](const nlattr* a, void* d) {
              static_cast<std::vector<const nlattr*>*>(d)->push_back(a);
              return static_cast<int>(MNL_CB_OK);
            },
            &entries);
        for (const nlattr* grp : entries) {
          AttrTable<CTRL_ATTR_MCAST_GRP_MAX> gt;
          if (mnl_attr_parse_nested(grp, collect_cb<CTRL_ATTR_MCAST_GRP_MAX>, &gt) < 0)
            continue;
          const nlattr* name = gt[CTRL_ATTR_MCAST_GRP_NAME];
          auto gid = get_u32(gt[CTRL_ATTR_MCAST_GRP_ID]);
          if (name == nullptr || !gid) continue;
          const char* p = static_cast<const char*>(mnl_attr_get_payload(name));
          std::string gname(p, strnlen(p, mnl_attr_get_payload_len(name)));
          if (gname == MPTCP_PM_EV_GRP_NAME) fam.events_group = *gid;
        }
      },
      &e);
  if (!ok) {
    if (errno == ENOENT)
      *err = "the kernel has no 'mptcp_pm' generic netlink family (MPTCP not available): " + e;
    else
      *err = "resolving the 'mptcp_pm' netlink family: " + e;
    return false;
  }
  if (!got_id) {
    *err = "resolving the 'mptcp_pm' netlink family: no family id in the kernel's answer";
    return false;
  }
  *out = fam;
  return true;
}

// ---- MptcpNetlink ---------------------------------------------------------------------

std::unique_ptr<MptcpNetlink> MptcpNetlink::open(std::string* err) {
  auto nl = std::unique_ptr<MptcpNetlink>(new MptcpNetlink());
  if (!resolve_mptcp_pm(&nl->fam_, err)) return nullptr;
  if (!nl->sock_.open(NETLINK_GENERIC, 0, err)) return nullptr;
  return nl;
}

bool MptcpNetlink::get_limits(Limits* out, std::string* err) {
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
  nlmsghdr* nlh = put_genl(buf.data(), fam_.id, MPTCP_PM_CMD_GET_LIMITS, 0);
  Limits l;
  std::string e;
  bool ok = sock_.transact(
      nlh,
      [&](const nlmsghdr* m) {
        AttrTable<MPTCP_PM_ATTR_MAX> t;
        mnl_attr_parse(m, sizeof(genlmsghdr), collect_cb<MPTCP_PM_ATTR_MAX>, &t);
        if (auto v = get_u32(t[MPTCP_PM_ATTR_SUBFLOWS])) l.subflows = *v;
        if (auto v = get_u32(t[MPTCP_PM_ATTR_RCV_ADD_ADDRS])) l.add_addr_accepted = *v;
      },
      &e);
  if (!ok) {
    *err = "mptcp_pm GET_LIMITS: " + e;
    return false;
  }
  *out = l;
  return true;
}

bool MptcpNetlink::set_limits(const Limits& l, std::string* err) {
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
  nlmsghdr* nlh = put_genl(buf.data(), fam_.id, MPTCP_PM_CMD_SET_LIMITS, 0);
  mnl_attr_put_u32(nlh, MPTCP_PM_ATTR_RCV_ADD_ADDRS, l.add_addr_accepted);
  mnl_attr_put_u32(nlh, MPTCP_PM_ATTR_SUBFLOWS, l.subflows);
  std::string e;
  if (!sock_.transact(nlh, [](const nlmsghdr*) {}, &e)) {
    *err = "mptcp_pm SET_LIMITS subflows " + std::to_string(l.subflows) +
           " add_addr_accepted " + std::to_string(l.add_addr_accepted) + ": " + e;
    return false;
  }
  return true;
}

std::optional<std::uint8_t> MptcpNetlink::add_endpoint(const EndpointSpec& spec,
                                                       std::string* err) {
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
  nlmsghdr* nlh = put_genl(buf.data(), fam_.id, MPTCP_PM_CMD_ADD_ADDR, 0);
  nlattr* nest = mnl_attr_nest_start(nlh, MPTCP_PM_ATTR_ADDR);
  if (spec.addr.is_v4()) {
    mnl_attr_put_u16(nlh, MPTCP_PM_ADDR_ATTR_FAMILY, AF_INET);
    mnl_attr_put(nlh, MPTCP_PM_ADDR_ATTR_ADDR4, 4, spec.addr.addr.data());
  } else {
    mnl_attr_put_u16(nlh, MPTCP_PM_ADDR_ATTR_FAMILY, AF_INET6);
    mnl_attr_put(nlh, MPTCP_PM_ADDR_ATTR_ADDR6, 16, spec.addr.addr.data());
  }
  mnl_attr_put_u32(nlh, MPTCP_PM_ADDR_ATTR_FLAGS, spec.flags);
  if (spec.ifindex > 0)
    mnl_attr_put_u32(nlh, MPTCP_PM_ADDR_ATTR_IF_IDX, static_cast<std::uint32_t>(spec.ifindex));
  mnl_attr_nest_end(nlh, nest);
  std::string e;
  const std::string what = "mptcp_pm ADD_ADDR " + spec.addr.address_str() + " ifindex " +
                           std::to_string(spec.ifindex) + " " + flags_str(spec.flags);
  if (!sock_.transact(nlh, [](const nlmsghdr*) {}, &e)) {
    *err = what + ": " + e;
    return std::nullopt;
  }
  // The kernel's ack does not carry the id it chose: look the address up.
  std::vector<KernelEndpoint> eps;
  if (!list_endpoints(&eps, err)) return std::nullopt;
  for (const KernelEndpoint& k : eps)
    if (k.spec.addr == spec.addr) return k.id;
  *err = what + ": added, but not listed afterwards";
  return std::nullopt;
}

bool MptcpNetlink::del_endpoint(std::uint8_t id, std::string* err) {
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
  nlmsghdr* nlh = put_genl(buf.data(), fam_.id, MPTCP_PM_CMD_DEL_ADDR, 0);
  nlattr* nest = mnl_attr_nest_start(nlh, MPTCP_PM_ATTR_ADDR);
  mnl_attr_put_u8(nlh, MPTCP_PM_ADDR_ATTR_ID, id);
  mnl_attr_nest_end(nlh, nest);
  std::string e;
  if (!sock_.transact(nlh, [](const nlmsghdr*) {}, &e)) {
    *err = "mptcp_pm DEL_ADDR id " + std::to_string(id) + ": " + e;
    return false;
  }
  return true;
}

bool MptcpNetlink::list_endpoints(std::vector<KernelEndpoint>* out, std::string* err) {
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
  nlmsghdr* nlh = put_genl(buf.data(), fam_.id, MPTCP_PM_CMD_GET_ADDR, NLM_F_DUMP);
  std::vector<KernelEndpoint> eps;
  std::string e;
  bool ok = sock_.transact(
      nlh,
      [&](const nlmsghdr* m) {
        AttrTable<MPTCP_PM_ATTR_MAX> t;
        mnl_attr_parse(m, sizeof(genlmsghdr), collect_cb<MPTCP_PM_ATTR_MAX>, &t);
        const nlattr* a = t[MPTCP_PM_ATTR_ADDR];
        if (a == nullptr) return;
        AttrTable<MPTCP_PM_ADDR_ATTR_MAX> at;
        if (mnl_attr_parse_nested(a, collect_cb<MPTCP_PM_ADDR_ATTR_MAX>, &at) < 0) return;
        auto fam = get_u16(at[MPTCP_PM_ADDR_ATTR_FAMILY]);
        auto id = get_u8(at[MPTCP_PM_ADDR_ATTR_ID]);
        if (!fam || !id) return;
        KernelEndpoint k;
        k.id = *id;
        // The endpoint port is host order (unlike event ports).
        std::uint16_t port = get_u16(at[MPTCP_PM_ADDR_ATTR_PORT]).value_or(0);
        if (*fam == AF_INET)
          k.spec.addr = endpoint_from(Family::V4, at[MPTCP_PM_ADDR_ATTR_ADDR4], port);
        else if (*fam == AF_INET6)
          k.spec.addr = endpoint_from(Family::V6, at[MPTCP_PM_ADDR_ATTR_ADDR6], port);
        k.spec.flags = get_u32(at[MPTCP_PM_ADDR_ATTR_FLAGS]).value_or(0);
        k.spec.ifindex = static_cast<int>(get_u32(at[MPTCP_PM_ADDR_ATTR_IF_IDX]).value_or(0));
        if (k.spec.addr.valid()) eps.push_back(k);
      },
      &e);
  if (!ok) {
    *err = "mptcp_pm GET_ADDR: " + e;
    return false;
  }
  *out = std::move(eps);
  return true;
}

// ---- events ---------------------------------------------------------------------------

const char* event_name(std::uint8_t type) {
  switch (type) {
    case MPTCP_EVENT_CREATED: return "created";
    case MPTCP_EVENT_ESTABLISHED: return "established";
    case MPTCP_EVENT_CLOSED: return "closed";
    case MPTCP_EVENT_ANNOUNCED: return "announced";
    case MPTCP_EVENT_REMOVED: return "removed";
    case MPTCP_EVENT_SUB_ESTABLISHED: return "sub_established";
    case MPTCP_EVENT_SUB_CLOSED: return "sub_closed";
    case MPTCP_EVENT_SUB_PRIORITY: return "sub_priority";
    // Newer than some uapi headers this builds against.
    case 15: return "listener_created";
    case 16: return "listener_closed";
    default: return "unknown";
  }
}

std::string event_str(const PmEvent& e) {
  char tok[16];
  std::snprintf(tok, sizeof(tok), "%08x", e.token);
  std::string s = std::string(event_name(e.type)) + " token " + tok;
  if (e.local.valid()) s += " local " + e.local.str();
  if (e.remote.valid()) s += " remote " + e.remote.str();
  if (e.loc_id) s += " loc_id " + std::to_string(*e.loc_id);
  if (e.rem_id) s += " rem_id " + std::to_string(*e.rem_id);
  if (e.ifindex) s += " ifindex " + std::to_string(e.ifindex);
  if (e.backup) s += " backup";
  if (e.error) s += " error " + std::to_string(*e.error);
  return s;
}

bool MptcpEvents::open(const GenlFamily& fam, std::string* err) {
  if (!fam.events_group) {
    *err = "the kernel's mptcp_pm family has no '" MPTCP_PM_EV_GRP_NAME "' group";
    return false;
  }
  family_id_ = fam.id;
  return sock_.open(NETLINK_GENERIC, 0, err) && sock_.join_group(*fam.events_group, err) &&
         sock_.set_nonblocking(err);
}

bool MptcpEvents::read(const std::function<void(const PmEvent&)>& on_event, std::string* err) {
  std::vector<char> buf(kBufSize);
  for (;;) {
    ssize_t n = mnl_socket_recvfrom(sock_.get(), buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR || errno == ENOBUFS) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
      *err = errno_text("mptcp_pm events receive");
      return false;
    }
    int len = static_cast<int>(n);
    for (auto* nlh = reinterpret_cast<const nlmsghdr*>(buf.data()); mnl_nlmsg_ok(nlh, len);
         nlh = mnl_nlmsg_next(nlh, &len)) {
      if (nlh->nlmsg_type != family_id_ || mnl_nlmsg_get_payload_len(nlh) < sizeof(genlmsghdr))
        continue;
      const auto* g = static_cast<const genlmsghdr*>(mnl_nlmsg_get_payload(nlh));
      AttrTable<MPTCP_ATTR_MAX> t;
      mnl_attr_parse(nlh, sizeof(genlmsghdr), collect_cb<MPTCP_ATTR_MAX>, &t);
      PmEvent e;
      e.type = g->cmd;
      e.token = get_u32(t[MPTCP_ATTR_TOKEN]).value_or(0);
      // Event ports are big-endian, unlike the endpoint port.
      std::uint16_t sport = ntohs(get_u16(t[MPTCP_ATTR_SPORT]).value_or(0));
      std::uint16_t dport = ntohs(get_u16(t[MPTCP_ATTR_DPORT]).value_or(0));
      // ANNOUNCED carries no family attribute: the address attribute's type says it.
      auto fam = get_u16(t[MPTCP_ATTR_FAMILY]);
      if (!fam) {
        if (t[MPTCP_ATTR_SADDR4] || t[MPTCP_ATTR_DADDR4]) fam = AF_INET;
        if (t[MPTCP_ATTR_SADDR6] || t[MPTCP_ATTR_DADDR6]) fam = AF_INET6;
      }
      if (fam && *fam == AF_INET) {
        e.local = endpoint_from(Family::V4, t[MPTCP_ATTR_SADDR4], sport);
        e.remote = endpoint_from(Family::V4, t[MPTCP_ATTR_DADDR4], dport);
      } else if (fam && *fam == AF_INET6) {
        e.local = endpoint_from(Family::V6, t[MPTCP_ATTR_SADDR6], sport);
        e.remote = endpoint_from(Family::V6, t[MPTCP_ATTR_DADDR6], dport);
      }
      e.loc_id = get_u8(t[MPTCP_ATTR_LOC_ID]);
      e.rem_id = get_u8(t[MPTCP_ATTR_REM_ID]);
      e.ifindex = static_cast<int>(get_u32(t[MPTCP_ATTR_IF_IDX]).value_or(0));
      e.backup = get_u8(t[MPTCP_ATTR_BACKUP]).value_or(0) != 0;
      e.error = get_u8(t[MPTCP_ATTR_ERROR]);
      on_event(e);
    }
  }
}

}  // namespace mpudp::pm

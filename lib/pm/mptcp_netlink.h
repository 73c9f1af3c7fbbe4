// The in-kernel MPTCP path manager over generic netlink (libmnl): endpoints and limits
// on one socket, path-manager events on another. Every request asks for the kernel's
// extended ack so that errors carry its explanation.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "net/endpoint.h"
#include "pm/pm_backend.h"

struct mnl_socket;
struct nlmsghdr;

namespace mpudp::pm {

// Owns a libmnl socket.
class MnlSocket {
 public:
  MnlSocket() = default;
  ~MnlSocket();
  MnlSocket(MnlSocket&& o) noexcept;
  MnlSocket& operator=(MnlSocket&& o) noexcept;
  MnlSocket(const MnlSocket&) = delete;
  MnlSocket& operator=(const MnlSocket&) = delete;

  // NETLINK_ROUTE or NETLINK_GENERIC; `groups` is the legacy bind mask (rtnetlink).
  bool open(int bus, unsigned groups, std::string* err);
  bool join_group(unsigned group, std::string* err);
  bool set_nonblocking(std::string* err);
  int fd() const;
  std::uint32_t portid() const;
  mnl_socket* get() const { return s_; }
  explicit operator bool() const { return s_ != nullptr; }

  // Sends `req` (seq set here) and feeds every reply message to `on_msg` until the ack
  // (or NLMSG_DONE of a dump). Messages that are not replies to it (multicast) go to
  // `on_other` when given. The error text includes the kernel's extack message.
  bool transact(nlmsghdr* req, const std::function<void(const nlmsghdr*)>& on_msg,
                std::string* err,
                const std::function<void(const nlmsghdr*)>& on_other = nullptr);

 private:
  mnl_socket* s_ = nullptr;
  std::uint32_t seq_ = 0;
};

// "Operation not permitted (kernel: ...)": for an NLMSG_ERROR message.
std::string netlink_error_text(const nlmsghdr* err_msg);

struct GenlFamily {
  std::uint16_t id = 0;
  std::optional<std::uint32_t> events_group;  // mptcp_pm_events
};
// CTRL_CMD_GETFAMILY for "mptcp_pm". Fails with a clear message when the family is
// missing (no MPTCP in the kernel, or net.mptcp disabled at build).
bool resolve_mptcp_pm(GenlFamily* out, std::string* err);

class MptcpNetlink final : public PmBackend {
 public:
  // Resolves the family and opens the command socket.
  static std::unique_ptr<MptcpNetlink> open(std::string* err);
  const GenlFamily& family() const { return fam_; }

  bool get_limits(Limits* out, std::string* err) override;
  bool set_limits(const Limits& l, std::string* err) override;
  std::optional<std::uint8_t> add_endpoint(const EndpointSpec& spec, std::string* err) override;
  bool del_endpoint(std::uint8_t id, std::string* err) override;
  bool list_endpoints(std::vector<KernelEndpoint>* out, std::string* err) override;

 private:
  GenlFamily fam_;
  MnlSocket sock_;
};

struct PmEvent {
  std::uint8_t type = 0;  // MPTCP_EVENT_*
  std::uint32_t token = 0;
  Endpoint local, remote;  // ports in host order (the kernel sends them big-endian)
  std::optional<std::uint8_t> loc_id, rem_id;
  int ifindex = 0;
  bool backup = false;
  std::optional<std::uint8_t> error;
};
const char* event_name(std::uint8_t type);
std::string event_str(const PmEvent& e);

// The mptcp_pm_events multicast group.
class MptcpEvents {
 public:
  bool open(const GenlFamily& fam, std::string* err);
  int fd() const { return sock_.fd(); }
  // Reads what is queued without blocking. Returns false on a socket error other than
  // "nothing more" (ENOBUFS: events were lost; reading goes on).
  bool read(const std::function<void(const PmEvent&)>& on_event, std::string* err);

 private:
  std::uint16_t family_id_ = 0;
  MnlSocket sock_;
};

}  // namespace mpudp::pm

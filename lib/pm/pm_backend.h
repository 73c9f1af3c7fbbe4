// The kernel's path manager as the planner's actions need it. The netlink implementation
// is mptcp_netlink.h; unit tests use a fake. Errors come back as text (with the kernel's
// extended-ack message when it gave one), never as exceptions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "pm/path_config.h"
#include "pm/planner.h"

namespace mpudp::pm {

struct KernelEndpoint {
  std::uint8_t id = 0;
  EndpointSpec spec;
};

class PmBackend {
 public:
  virtual ~PmBackend() = default;
  virtual bool get_limits(Limits* out, std::string* err) = 0;
  virtual bool set_limits(const Limits& l, std::string* err) = 0;
  // The id the kernel gave the new endpoint.
  virtual std::optional<std::uint8_t> add_endpoint(const EndpointSpec& spec,
                                                   std::string* err) = 0;
  virtual bool del_endpoint(std::uint8_t id, std::string* err) = 0;
  virtual bool list_endpoints(std::vector<KernelEndpoint>* out, std::string* err) = 0;
};

}  // namespace mpudp::pm

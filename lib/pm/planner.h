// The endpoint logic, with no IO: it knows the configured paths, the links and their
// addresses as the link monitor reported them, and the endpoints this daemon owns, and
// says which endpoints to add and delete so the kernel matches. Everything the path
// manager does to the kernel is decided here, so it is all unit-tested.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "net/endpoint.h"
#include "pm/path_config.h"

namespace mpudp::pm {

struct EndpointSpec {
  Endpoint addr;  // port 0: the path manager never asks for a port
  int ifindex = 0;
  std::uint32_t flags = 0;
  friend bool operator==(const EndpointSpec&, const EndpointSpec&) = default;
};

struct OwnedEndpoint {
  EndpointSpec spec;
  std::uint8_t id = 0;  // the id the kernel gave it
  std::size_t path = 0;
};

struct Action {
  enum class Kind : std::uint8_t { Add, Del };
  Kind kind = Kind::Add;
  EndpointSpec spec;
  std::uint8_t id = 0;   // Del only
  std::size_t path = 0;  // index into the configured paths
};

class Planner {
 public:
  explicit Planner(std::vector<PathConfig> paths = {});

  void set_paths(std::vector<PathConfig> paths) { paths_ = std::move(paths); }
  const std::vector<PathConfig>& paths() const { return paths_; }

  // Link and address state, as rtnetlink reports it. `up` means administratively up
  // with carrier. Addresses from the start-up dump rank below later ones, so that among
  // addresses present at start the first (IPv4 primary) is used, and an interface that
  // gets a new address later moves to it.
  void forget_links() { links_.clear(); }
  void link_changed(int ifindex, const std::string& name, bool up);
  void link_removed(int ifindex);
  void address_added(int ifindex, const Endpoint& addr, bool from_dump);
  void address_removed(int ifindex, const Endpoint& addr);

  // Configured interfaces no link has, in configuration order.
  std::vector<std::string> missing_interfaces() const;

  // Deletes first (an address moving between flags, or an endpoint moving to an address
  // another of ours held, needs the old one gone), then adds.
  std::vector<Action> plan() const;
  // Everything we own, deleted.
  std::vector<Action> teardown() const;

  // What the kernel did with an action.
  void added(const EndpointSpec& spec, std::size_t path, std::uint8_t id);
  void removed(std::uint8_t id);
  const std::vector<OwnedEndpoint>& owned() const { return owned_; }

  static bool usable(const Endpoint& addr);  // not link-local, not unspecified

 private:
  struct Addr {
    Endpoint addr;
    std::uint64_t rank;
  };
  struct Link {
    std::string name;
    bool up = false;
    std::vector<Addr> addrs;
  };
  std::vector<std::pair<EndpointSpec, std::size_t>> desired() const;

  std::vector<PathConfig> paths_;
  std::map<int, Link> links_;
  std::vector<OwnedEndpoint> owned_;
  std::uint64_t next_rank_ = 1;
};

}  // namespace mpudp::pm

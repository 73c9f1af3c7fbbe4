// The addresses a host holds, as its interfaces report them (pm/address_monitor.h keeps
// one up to date from rtnetlink), or any other set of addresses to refuse (the
// concentrator's connected CPEs). An address held twice (two interfaces, two sessions)
// stays until both let go. Ports are ignored. Pure.
#pragma once

#include <cstddef>
#include <cstdint>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "net/endpoint.h"

namespace mpudp {

class AddressSet {
 public:
  // `holder` tells holders of the same address apart (an interface index, a session
  // id): adding a (holder, address) pair twice counts once, as rtnetlink repeats an
  // address on every change of its lifetimes.
  void add(std::uint32_t holder, const Endpoint& addr);
  void remove(std::uint32_t holder, const Endpoint& addr);
  // Every address `holder` held (an interface went away).
  void remove_holder(std::uint32_t holder);
  void clear();

  // The address itself is in the set.
  bool contains(const Endpoint& addr) const;
  // It, or an IPv4 address it carries (net/embedded_v4.h), is in the set.
  bool covers(const Endpoint& addr) const;
  std::size_t size() const { return count_.size(); }
  std::vector<Endpoint> addresses() const;

 private:
  static Endpoint key(const Endpoint& e);
  struct Held {
    std::uint32_t holder;
    Endpoint addr;
    friend bool operator==(const Held&, const Held&) = default;
  };
  struct HeldHash {
    std::size_t operator()(const Held& h) const noexcept {
      return EndpointHash{}(h.addr) * 31 + h.holder;
    }
  };
  std::unordered_set<Held, HeldHash> held_;
  std::unordered_map<Endpoint, std::size_t, EndpointHash> count_;  // address -> holders
};

}  // namespace mpudp

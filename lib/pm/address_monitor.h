// Keeps an AddressSet equal to this host's addresses as rtnetlink reports them (the same
// LinkMonitor the path manager uses), so that the loop checks follow address changes
// (DHCP, PPP, a new uplink) without polling.
#pragma once

#include <string>

#include "io/loop.h"
#include "net/address_set.h"
#include "pm/link_monitor.h"

namespace mpudp::pm {

class AddressMonitor final : public LinkObserver {
 public:
  AddressMonitor(Loop* loop, AddressSet& set) : set_(set), links_(loop, *this) {}
  // Fills the set (synchronously) and follows changes. On failure (no rtnetlink) the set
  // holds the addresses getifaddrs() sees now and does not follow; `err` says why.
  bool start(std::string* err);

 private:
  void on_links_reset() override { set_.clear(); }
  void on_link(int, const std::string&, bool) override {}
  void on_link_gone(int ifindex) override { set_.remove_holder(static_cast<std::uint32_t>(ifindex)); }
  void on_address(int ifindex, const Endpoint& a, bool present, bool) override;
  void on_changes_done() override {}

  AddressSet& set_;
  LinkMonitor links_;
};

}  // namespace mpudp::pm

// Links and addresses from rtnetlink: subscribes to the link and address groups first,
// then dumps, so that no change between the dump and the subscription is missed. A
// receive-buffer overflow (ENOBUFS) means changes were lost: the observer is told to
// forget and the state is dumped again.
#pragma once

#include <functional>
#include <string>

#include "io/loop.h"
#include "net/endpoint.h"
#include "pm/mptcp_netlink.h"

namespace mpudp::pm {

class LinkObserver {
 public:
  virtual ~LinkObserver() = default;
  virtual void on_links_reset() = 0;  // a full dump follows
  // `up`: administratively up with carrier.
  virtual void on_link(int ifindex, const std::string& name, bool up) = 0;
  virtual void on_link_gone(int ifindex) = 0;
  // Tentative (DAD not done) and DAD-failed addresses are reported as gone: nothing can
  // bind to them.
  virtual void on_address(int ifindex, const Endpoint& addr, bool present, bool from_dump) = 0;
  // After each batch of messages: the moment to act on what changed.
  virtual void on_changes_done() = 0;
};

class LinkMonitor {
 public:
  LinkMonitor(Loop* loop, LinkObserver& obs);
  // Subscribes and dumps (synchronously: the observer knows every link when it returns),
  // then watches the socket on the loop.
  bool start(std::string* err);
  void stop();

 private:
  bool dump(std::string* err);
  void handle(const nlmsghdr* nlh, bool from_dump);
  void on_readable();

  LinkObserver& obs_;
  MnlSocket sock_;
  IoWatcher watcher_;
};

}  // namespace mpudp::pm

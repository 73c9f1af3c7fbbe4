// Keeps the kernel's MPTCP endpoints in line with the configured paths and the links as
// they come and go, logs and counts path-manager events, and on stop removes exactly the
// endpoints it added (endpoints someone else configured are never touched) and puts the
// limits back as it found them.
#pragma once

#include <memory>
#include <string>

#include "ctl/stats.h"
#include "io/loop.h"
#include "pm/link_monitor.h"
#include "pm/mptcp_netlink.h"
#include "pm/path_config.h"
#include "pm/planner.h"
#include "pm/pm_backend.h"
#include "tunnel/subflows.h"

namespace mpudp::pm {

// Carries out the planner's actions on the backend, recording what the kernel gave us.
// Failures are logged and counted; the rest of the plan still runs.
void apply_plan(Planner& planner, PmBackend& backend, Stats& stats);
// Removes every endpoint the planner owns.
void apply_teardown(Planner& planner, PmBackend& backend, Stats& stats);

class PathManager final : public LinkObserver {
 public:
  enum class StartResult {
    Ok,
    Unavailable,  // no MPTCP path manager (or netlink refused): the proxy runs without it
    Fatal,        // the configuration cannot be honoured (a path names no interface)
  };

  // `backend` may be given (tests); otherwise the netlink one is opened at start.
  PathManager(Loop* loop, Stats& stats, PmSettings settings,
              std::unique_ptr<PmBackend> backend = nullptr);
  ~PathManager() override;
  PathManager(const PathManager&) = delete;
  PathManager& operator=(const PathManager&) = delete;

  StartResult start(std::string* err);
  // Removes our endpoints, restores the limits. Idempotent.
  void stop();
  // New paths or limits (SIGHUP). A path naming an interface that does not exist is
  // reported and skipped until the interface appears.
  void reload(const PmSettings& settings);
  bool running() const { return running_; }
  // Sets SubflowInfo::backup from the endpoints this manager owns (the kernel does not
  // report the flag per subflow).
  void annotate(std::vector<SubflowInfo>& subflows) const;

 private:
  void on_links_reset() override { planner_.forget_links(); }
  void on_link(int ifindex, const std::string& name, bool up) override {
    planner_.link_changed(ifindex, name, up);
  }
  void on_link_gone(int ifindex) override { planner_.link_removed(ifindex); }
  void on_address(int ifindex, const Endpoint& a, bool present, bool from_dump) override;
  void on_changes_done() override;
  void on_events_readable();
  void count_event(const PmEvent& e);

  Loop* loop_;
  Stats& stats_;
  PmSettings settings_;
  std::unique_ptr<PmBackend> backend_;
  Planner planner_;
  std::unique_ptr<LinkMonitor> links_;
  MptcpEvents events_;
  IoWatcher events_watcher_;
  std::optional<Limits> saved_limits_;
  bool running_ = false;
};

}  // namespace mpudp::pm

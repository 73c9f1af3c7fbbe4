#include "pm/path_manager.h"

#include <linux/mptcp.h>

#include "ctl/log.h"

namespace mpudp::pm {

void apply_plan(Planner& planner, PmBackend& backend, Stats& stats) {
  for (const Action& a : planner.plan()) {
    std::string err;
    // A deleted endpoint may belong to a path a reload just dropped.
    std::string ifname = "(removed path)";
    if (a.path < planner.paths().size()) {
      const PathConfig& p = planner.paths()[a.path];
      ifname = p.interface.empty() ? "direct_address" : p.interface;
    }
    if (a.kind == Action::Kind::Del) {
      // Gone from the kernel either way: a failure means someone removed it already.
      if (backend.del_endpoint(a.id, &err)) {
        stats.add(Counter::pm_endpoints_removed);
        LOG_INFO("paths: %s: endpoint id %u %s removed", ifname.c_str(), a.id,
                 a.spec.addr.address_str().c_str());
      } else {
        stats.add(Counter::pm_netlink_errors);
        LOG_WARN("paths: %s: %s", ifname.c_str(), err.c_str());
      }
      planner.removed(a.id);
      continue;
    }
    if (auto id = backend.add_endpoint(a.spec, &err)) {
      planner.added(a.spec, a.path, *id);
      stats.add(Counter::pm_endpoints_added);
      LOG_INFO("paths: %s: endpoint id %u %s %s added", ifname.c_str(), *id,
               a.spec.addr.address_str().c_str(), flags_str(a.spec.flags).c_str());
    } else {
      stats.add(Counter::pm_netlink_errors);
      LOG_ERROR("paths: %s: %s", ifname.c_str(), err.c_str());
    }
  }
}

void apply_teardown(Planner& planner, PmBackend& backend, Stats& stats) {
  for (const Action& a : planner.teardown()) {
    std::string err;
    if (backend.del_endpoint(a.id, &err)) {
      stats.add(Counter::pm_endpoints_removed);
      LOG_INFO("paths: endpoint id %u %s removed", a.id, a.spec.addr.address_str().c_str());
    } else {
      stats.add(Counter::pm_netlink_errors);
      LOG_WARN("paths: %s", err.c_str());
    }
    planner.removed(a.id);
  }
}

PathManager::PathManager(Loop* loop, Stats& stats, PmSettings settings,
                         std::unique_ptr<PmBackend> backend)
    : loop_(loop),
      stats_(stats),
      settings_(std::move(settings)),
      backend_(std::move(backend)),
      planner_(settings_.paths),
      events_watcher_(loop, [this](int) { on_events_readable(); }) {}

PathManager::~PathManager() { stop(); }

PathManager::StartResult PathManager::start(std::string* err) {
  for (std::size_t i = 0; i < settings_.paths.size(); ++i) {
    std::string e = path_error(settings_.paths[i]);
    if (!e.empty()) {
      *err = "paths[" + std::to_string(i) + "]: " + e;
      return StartResult::Fatal;
    }
  }
  links_ = std::make_unique<LinkMonitor>(loop_, *this);
  std::string e;
  // Links first: a missing interface is a configuration error whether or not the kernel
  // has MPTCP. The dump's on_changes_done does nothing until running_.
  if (!links_->start(&e)) {
    *err = "paths: " + e;
    links_.reset();
    return StartResult::Unavailable;
  }
  auto missing = planner_.missing_interfaces();
  if (!missing.empty()) {
    *err = "paths: interface '" + missing.front() + "' does not exist";
    links_.reset();
    return StartResult::Fatal;
  }
  GenlFamily fam;
  if (!backend_) {
    auto nl = MptcpNetlink::open(&e);
    if (!nl) {
      stats_.add(Counter::pm_netlink_errors);
      *err = "paths: " + e + "; MPTCP endpoints are not managed";
      links_.reset();
      return StartResult::Unavailable;
    }
    fam = nl->family();
    backend_ = std::move(nl);
  }
  Limits before;
  if (backend_->get_limits(&before, &e)) {
    saved_limits_ = before;
  } else {
    stats_.add(Counter::pm_netlink_errors);
    LOG_WARN("paths: %s", e.c_str());
  }
  Limits want = effective_limits(settings_);
  if (backend_->set_limits(want, &e)) {
    LOG_INFO("paths: limits subflows %u add_addr_accepted %u", want.subflows,
             want.add_addr_accepted);
  } else {
    stats_.add(Counter::pm_netlink_errors);
    LOG_ERROR("paths: %s", e.c_str());
  }
  if (fam.id != 0) {
    if (events_.open(fam, &e)) {
      events_watcher_.watch(events_.fd(), EV_READ);
    } else {
      stats_.add(Counter::pm_netlink_errors);
      LOG_WARN("paths: path-manager events not followed: %s", e.c_str());
    }
  }
  running_ = true;
  apply_plan(planner_, *backend_, stats_);
  return StartResult::Ok;
}

void PathManager::stop() {
  if (!running_) return;
  running_ = false;
  events_watcher_.stop();
  if (links_) links_->stop();
  apply_teardown(planner_, *backend_, stats_);
  if (saved_limits_) {
    std::string e;
    if (!backend_->set_limits(*saved_limits_, &e)) {
      stats_.add(Counter::pm_netlink_errors);
      LOG_WARN("paths: restoring limits: %s", e.c_str());
    }
  }
}

void PathManager::reload(const PmSettings& settings) {
  if (!running_ || settings == settings_) return;
  std::vector<PathConfig> paths;
  for (std::size_t i = 0; i < settings.paths.size(); ++i) {
    std::string e = path_error(settings.paths[i]);
    if (!e.empty()) {
      LOG_ERROR("paths[%zu]: %s; path ignored", i, e.c_str());
      continue;
    }
    paths.push_back(settings.paths[i]);
  }
  Limits old_l = effective_limits(settings_);
  settings_ = settings;
  planner_.set_paths(std::move(paths));
  for (const std::string& m : planner_.missing_interfaces())
    LOG_WARN("paths: interface '%s' does not exist (yet)", m.c_str());
  Limits want = effective_limits(settings_);
  std::string e;
  if (!(want == old_l)) {
    if (backend_->set_limits(want, &e)) {
      LOG_INFO("paths: limits subflows %u add_addr_accepted %u", want.subflows,
               want.add_addr_accepted);
    } else {
      stats_.add(Counter::pm_netlink_errors);
      LOG_ERROR("paths: %s", e.c_str());
    }
  }
  apply_plan(planner_, *backend_, stats_);
}

void PathManager::annotate(std::vector<SubflowInfo>& subflows) const {
  for (SubflowInfo& s : subflows) {
    Endpoint local = s.local;
    local.port = 0;
    for (const OwnedEndpoint& o : planner_.owned())
      if (o.spec.addr == local) s.backup = (o.spec.flags & kFlagBackup) != 0;
  }
}

void PathManager::on_address(int ifindex, const Endpoint& a, bool present, bool from_dump) {
  if (present)
    planner_.address_added(ifindex, a, from_dump);
  else
    planner_.address_removed(ifindex, a);
}

void PathManager::on_changes_done() {
  if (running_) apply_plan(planner_, *backend_, stats_);
}

void PathManager::count_event(const PmEvent& e) {
  switch (e.type) {
    case MPTCP_EVENT_CREATED: stats_.add(Counter::pm_events_created); break;
    case MPTCP_EVENT_ESTABLISHED: stats_.add(Counter::pm_events_established); break;
    case MPTCP_EVENT_CLOSED: stats_.add(Counter::pm_events_closed); break;
    case MPTCP_EVENT_ANNOUNCED: stats_.add(Counter::pm_events_announced); break;
    case MPTCP_EVENT_REMOVED: stats_.add(Counter::pm_events_removed); break;
    case MPTCP_EVENT_SUB_ESTABLISHED: stats_.add(Counter::pm_events_subflow_established); break;
    case MPTCP_EVENT_SUB_CLOSED: stats_.add(Counter::pm_events_subflow_closed); break;
    default: break;
  }
}

void PathManager::on_events_readable() {
  std::string e;
  bool ok = events_.read(
      [this](const PmEvent& ev) {
        count_event(ev);
        LOG_DEBUG("mptcp event: %s", event_str(ev).c_str());
      },
      &e);
  if (!ok) {
    stats_.add(Counter::pm_netlink_errors);
    LOG_ERROR("paths: %s; events no longer followed", e.c_str());
    events_watcher_.stop();
  }
}

}  // namespace mpudp::pm

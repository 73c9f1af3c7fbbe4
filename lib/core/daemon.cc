#include "core/daemon.h"

#include <sys/resource.h>
#include <sys/stat.h>

#include <csignal>
#include <memory>

#include "core/concentrator.h"
#include "core/cpe.h"
#include "core/privileges.h"
#include "ctl/control.h"
#include "ctl/json.h"
#include "ctl/log.h"
#include "ctl/metrics.h"
#include "ctl/notify.h"
#include "io/loop.h"
#include "io/socket.h"
#include "pm/path_manager.h"
#include "pm/recovery.h"
#include "tunnel/socket_setup.h"

namespace mpudp {
namespace {

log::Level to_log_level(LogLevel l) {
  switch (l) {
    case LogLevel::Error: return log::Level::Error;
    case LogLevel::Warn: return log::Level::Warn;
    case LogLevel::Info: return log::Level::Info;
    case LogLevel::Debug: return log::Level::Debug;
  }
  return log::Level::Info;
}

void apply_log_settings(const Config& c) {
  log::set_level(to_log_level(c.log_level));
  log::set_target(c.log_target == LogTarget::Syslog ? log::Target::Syslog : log::Target::Stderr);
}

// Every binding holds a socket on the concentrator (and a connection on the CPE in
// per-binding mode): the default soft limit of 1024 descriptors would cap bindings.max.
void raise_fd_limit(const Config& cfg) {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
  if (rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) LOG_WARN("cannot raise the open-file limit");
    getrlimit(RLIMIT_NOFILE, &rl);
  }
  // A concentrator binding holds a socket (and so does a per-binding CPE connection): past
  // the descriptor budget, new bindings are refused and counted (descriptor_limit on the
  // concentrator, binding_refused on a CPE).
  const bool socket_per_binding = cfg.role == ProxyRole::Concentrator ||
                                  cfg.session_mode == SessionModeConfig::PerBinding;
  const std::size_t budget = descriptor_budget();
  if (socket_per_binding && cfg.bindings.max > budget)
    LOG_WARN("bindings.max %zu is above what the open-file limit %llu allows: raise the limit "
             "(LimitNOFILE=) or expect bindings to be refused near %zu",
             cfg.bindings.max, static_cast<unsigned long long>(rl.rlim_cur), budget);
}

// After start-up: keep the capabilities the configuration still uses at run time (each
// logged with its reason), drop every other one.
void drop_capabilities(const Config& c) {
  const std::uint64_t held = effective_capabilities();
  std::uint64_t keep = 0;
  std::string names;
  for (const CapabilityNeed& n : capabilities_needed(c, HostFacts::read())) {
    const std::uint64_t bit = std::uint64_t{1} << n.cap;
    const std::string name = capability_name(n.cap);
    if ((held & bit) == 0) {
      LOG_WARN("%s is not held, and it is needed: %s", name.c_str(), n.why.c_str());
      continue;
    }
    keep |= bit;
    if (!names.empty()) names += ", ";
    names += name;
    LOG_INFO("keeping %s: %s", name.c_str(), n.why.c_str());
  }
  if (held == 0) return;
  std::string err;
  if (!keep_only_capabilities(keep, &err)) {
    LOG_WARN("cannot drop capabilities: %s", err.c_str());
    return;
  }
  LOG_INFO("capabilities from now on: %s", names.empty() ? "none" : names.c_str());
}

struct LoopHandle {
  Loop* loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
  ~LoopHandle() {
    if (loop) ev_loop_destroy(loop);
  }
};

pm::PmSettings pm_settings(const Config& c) {
  pm::PmSettings s;
  s.role = c.role == ProxyRole::Cpe ? pm::PmRole::Cpe : pm::PmRole::Concentrator;
  for (const Config::Path& p : c.paths)
    s.paths.push_back({p.interface, p.subflow, p.signal, p.backup, p.fullmesh, p.laminar, {}});
  // The concentrator's own address is announced (ADD_ADDR) to every CPE, so that their
  // joins come to it and not to the balanced address they dialled (docs/SCALE.md).
  if (c.role == ProxyRole::Concentrator && c.concentrator.direct_address.valid())
    s.paths.push_back({"", false, true, false, false, false, c.concentrator.direct_address});
  s.limits = {c.limits.subflows, c.limits.add_addr_accepted};
  return s;
}

// tunnel.copy_congestion_control where copies are on: a name the file gives must exist
// (the answer is why not); the default (bbr) may be missing, as on a router without its
// module: the carriers then run the tunnel's, as the warning says (at start, on reloads).
std::string check_copy_congestion_control(const Config& c) {
  const std::string& name = c.tunnel.copy_congestion_control_name();
  if (!c.tunnel.copies || name.empty()) return {};
  std::string why = check_congestion_control(name);
  // Usable now (its module loaded since, say): the carriers try it again.
  if (why.empty()) mark_copy_congestion_control_missing({});
  if (why.empty() || c.tunnel.copy_congestion_control) return why;
  LOG_WARN("tunnel.copy_congestion_control (default %s): %s; copy carriers run the tunnel's "
           "congestion control, and a call waits longer on a lossy uplink (docs/CONFIG.md)",
           name.c_str(), why.c_str());
  mark_copy_congestion_control_missing(name);
  return {};
}

}  // namespace

int run_daemon(const Config& initial, const DaemonOptions& opts) {
  log::set_timestamps(opts.timestamps);
  log::set_priority_prefix(opts.priority_prefix);
  apply_log_settings(initial);
  std::signal(SIGPIPE, SIG_IGN);
  raise_fd_limit(initial);

  LoopHandle lh;
  if (lh.loop == nullptr) {
    LOG_ERROR("cannot create the event loop");
    return 1;
  }
  Stats stats;
  // Declared before the proxies so that it outlives them: our endpoints go last.
  std::unique_ptr<pm::PathManager> paths;
  // False when the configured paths cannot be honoured (an interface does not exist).
  // Without a usable MPTCP path manager the proxy still runs, on what the kernel has.
  auto start_paths = [&](const Config& c) {
    if (pm_settings(c).paths.empty()) return true;
    auto m = std::make_unique<pm::PathManager>(lh.loop, stats, pm_settings(c));
    std::string perr;
    switch (m->start(&perr)) {
      case pm::PathManager::StartResult::Ok:
        paths = std::move(m);
        return true;
      case pm::PathManager::StartResult::Unavailable:
        LOG_ERROR("%s; the tunnel runs on the kernel's own endpoints (or plain TCP)",
                  perr.c_str());
        return true;
      case pm::PathManager::StartResult::Fatal:
        LOG_ERROR("%s", perr.c_str());
        return false;
    }
    return false;
  };
  // A file can only say a name; whether this kernel has it is known here.
  if (std::string why = check_congestion_control(initial.tunnel.congestion_control);
      !why.empty()) {
    LOG_ERROR("tunnel.congestion_control: %s", why.c_str());
    return 1;
  }
  if (std::string why = check_copy_congestion_control(initial); !why.empty()) {
    LOG_ERROR("tunnel.copy_congestion_control: %s", why.c_str());
    return 1;
  }
  // Endpoints before the tunnel, so that its first connection finds every path.
  if (!start_paths(initial)) return 1;
  // Before the first connection too: subflows read the TCP settings when they start.
  // Declared here so that the settings are put back after the proxies are gone.
  pm::SysctlTuner recovery;
  auto set_recovery = [&recovery](const Config& c) {
    if (c.tunnel.path_recovery == PathRecovery::Fast)
      recovery.apply(pm::fast_recovery_settings());
    else
      recovery.restore();
  };
  set_recovery(initial);
  std::unique_ptr<CpeProxy> cpe;
  std::unique_ptr<ConcentratorProxy> conc;
  ProxyBase* proxy = nullptr;
  std::string err;
  bool ok;
  if (initial.role == ProxyRole::Cpe) {
    cpe = std::make_unique<CpeProxy>(lh.loop, initial, stats);
    ok = cpe->start(&err);
    proxy = cpe.get();
  } else {
    conc = std::make_unique<ConcentratorProxy>(lh.loop, initial, stats);
    ok = conc->start(&err);
    proxy = conc.get();
  }
  proxy->annotate_subflows = [&paths](std::vector<SubflowInfo>& subflows) {
    if (paths) paths->annotate(subflows);
  };

  if (!ok) {
    LOG_ERROR("%s", err.c_str());
    return 1;
  }

  auto stop = [&](int signum) {
    LOG_INFO("signal %d: shutting down", signum);
    sd_notify_state("STOPPING=1");
    if (cpe) cpe->shutdown();
    if (conc) conc->shutdown();
    ev_break(lh.loop, EVBREAK_ALL);
  };
  SignalWatcher sigint(lh.loop, SIGINT, stop);
  SignalWatcher sigterm(lh.loop, SIGTERM, stop);
  // SIGHUP and `mpudpctl reload` share this; the answer says what happened.
  auto reload = [&]() -> std::pair<bool, std::string> {
    sd_notify_state("RELOADING=1");
    // Whatever the outcome, the daemon is serving again when this returns.
    struct Ready {
      ~Ready() { sd_notify_state("READY=1"); }
    } ready;
    auto res = load_config_file(opts.config_path);
    if (auto* e = std::get_if<ConfigError>(&res)) {
      LOG_ERROR("reload refused, keeping the running configuration: %s", e->str().c_str());
      return {false, "reload refused, running configuration kept: " + e->str()};
    }
    const Config& next = std::get<Config>(res);
    if (next.role != proxy->config().role ||
        next.session_mode != proxy->config().session_mode) {
      LOG_ERROR("reload refused: role and session_mode need a restart");
      return {false, "reload refused: role and session_mode need a restart"};
    }
    if (std::string why = check_congestion_control(next.tunnel.congestion_control);
        !why.empty()) {
      LOG_ERROR("reload refused: tunnel.congestion_control: %s", why.c_str());
      return {false, "reload refused, running configuration kept: tunnel.congestion_control: " +
                         why};
    }
    if (std::string why = check_copy_congestion_control(next); !why.empty()) {
      LOG_ERROR("reload refused: tunnel.copy_congestion_control: %s", why.c_str());
      return {false,
              "reload refused, running configuration kept: tunnel.copy_congestion_control: " + why};
    }
    if (next.encryption != proxy->config().encryption) {
      LOG_ERROR("reload refused: encryption needs a restart");
      return {false, "reload refused: encryption needs a restart"};
    }
    // Its listener is opened at start, and sessions already named it to their CPEs.
    if (!(next.concentrator.direct_address == proxy->config().concentrator.direct_address)) {
      LOG_ERROR("reload refused: concentrator.direct_address needs a restart");
      return {false, "reload refused: concentrator.direct_address needs a restart"};
    }
    // The new keys, peers, CA and CRL are loaded before anything changes: a file that
    // does not load keeps the running ones (and the sessions they admitted).
    if (std::string why; !proxy->prepare_reload(next, &why)) {
      LOG_ERROR("reload refused, keeping the running configuration: %s", why.c_str());
      return {false, "reload refused, running configuration kept: " + why};
    }
    apply_log_settings(next);
    set_recovery(next);
    proxy->reload(next);
    if (paths && !pm_settings(next).paths.empty())
      paths->reload(pm_settings(next));
    else if (paths)
      paths.reset();  // removes our endpoints, restores the limits
    else
      start_paths(next);
    LOG_INFO("configuration reloaded from %s", opts.config_path.c_str());
    return {true, "configuration reloaded from " + opts.config_path};
  };
  // logrotate's postrotate sends SIGHUP: the binding log moves to its new file even when
  // the configuration on disk cannot be reloaded (a successful reload reopens it too).
  SignalWatcher sighup(lh.loop, SIGHUP, [&](int) {
    if (!reload().first && conc) conc->reopen_binding_log();
  });

  const double started = ev_now(lh.loop);
  std::unique_ptr<ControlServer> control;
  if (!initial.control_socket.empty()) {
    const std::string path = usable_control_socket(initial.control_socket);
    // The socket's directory (/run/mpudp) is the daemon's own: created root-only, with
    // whatever is missing above it.
    std::string dir_err;
    bool live_peer = false;
    if (!make_socket_dir(path, &dir_err)) LOG_ERROR("control socket: %s", dir_err.c_str());
    control = ControlServer::open(
        lh.loop, path,
        [&](const std::string& req) -> std::string {
          if (req == "status") return proxy->status_json(ev_now(lh.loop) - started);
          if (req == "bindings") return proxy->bindings_json();
          json::Writer w;
          w.begin_object();
          if (req == "ping") {
            w.key("ok").value(true);
          } else if (req == "reload") {
            auto [reloaded, message] = reload();
            w.key("ok").value(reloaded);
            if (reloaded)
              w.key("message").value(message);
            else
              w.key("error").value(message);
          } else {
            w.key("error").value("unknown request \"" + req + "\" (status, bindings, reload)");
          }
          w.end_object();
          return w.str();
        },
        &err, &live_peer);
    // Another daemon on the socket is another instance of this service: refuse to run
    // beside it. Any other failure costs mpudpctl only, and stopping for it would take
    // the LAN's UDP down with it (and, under a supervisor, restart in a loop on a
    // system where the path can never be bound): say so loudly and carry on.
    if (!control && live_peer) {
      LOG_ERROR("control socket: %s", err.c_str());
      return 1;
    }
    if (!control)
      LOG_ERROR("control socket: %s; running without it (mpudpctl cannot reach this daemon)",
                err.c_str());
  }
  SignalWatcher sigusr1(lh.loop, SIGUSR1, [&](int) {
    LOG_INFO("stats bindings=%zu %s", proxy->bindings().size(), stats.to_json().c_str());
  });

  std::unique_ptr<MetricsServer> metrics;
  if (initial.metrics_listen.valid()) {
    const Endpoint& at = initial.metrics_listen;
    const bool loopback = at.is_v4() ? at.addr[0] == 127
                                     : at.addr == std::array<std::uint8_t, 16>{0, 0, 0, 0, 0, 0, 0, 0,
                                                                              0, 0, 0, 0, 0, 0, 0, 1};
    if (!loopback)
      LOG_WARN("metrics on %s are readable from the network; loopback is safer",
               at.str().c_str());
    metrics = MetricsServer::open(
        lh.loop, at,
        [&] {
          std::vector<Gauge> g = proxy->gauges();
          g.push_back({"uptime_seconds", "seconds since start", ev_now(lh.loop) - started, {}, {}});
          return prometheus_text(stats, g);
        },
        &err);
    if (!metrics) {
      LOG_ERROR("metrics_listen: %s", err.c_str());
      return 1;
    }
    LOG_INFO("metrics on http://%s/metrics", at.str().c_str());
  }

  drop_capabilities(initial);
  sd_notify_state("READY=1");
  ev_run(lh.loop, 0);
  paths.reset();  // after the proxies said goodbye over every path
  LOG_INFO("stats bindings=%zu %s", proxy->bindings().size(), stats.to_json().c_str());
  LOG_INFO("stopped");
  return 0;
}

}  // namespace mpudp

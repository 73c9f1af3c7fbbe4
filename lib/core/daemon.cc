#include "core/daemon.h"

#include <sys/resource.h>

#include <csignal>
#include <memory>

#include "core/concentrator.h"
#include "core/cpe.h"
#include "ctl/log.h"
#include "io/loop.h"

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

// Every binding holds a socket on the concentrator (and a connection on the CPE in
// per-binding mode): the default soft limit of 1024 descriptors would cap bindings.max.
void raise_fd_limit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= rl.rlim_max) return;
  rl.rlim_cur = rl.rlim_max;
  if (setrlimit(RLIMIT_NOFILE, &rl) != 0) LOG_WARN("cannot raise the open-file limit");
}

struct LoopHandle {
  Loop* loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
  ~LoopHandle() {
    if (loop) ev_loop_destroy(loop);
  }
};

}  // namespace

int run_daemon(const Config& initial, const DaemonOptions& opts) {
  log::set_timestamps(opts.timestamps);
  log::set_level(to_log_level(initial.log_level));
  std::signal(SIGPIPE, SIG_IGN);
  raise_fd_limit();

  LoopHandle lh;
  if (lh.loop == nullptr) {
    LOG_ERROR("cannot create the event loop");
    return 1;
  }
  Stats stats;
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
  if (!ok) {
    LOG_ERROR("%s", err.c_str());
    return 1;
  }

  auto stop = [&](int signum) {
    LOG_INFO("signal %d: shutting down", signum);
    if (cpe) cpe->shutdown();
    if (conc) conc->shutdown();
    ev_break(lh.loop, EVBREAK_ALL);
  };
  SignalWatcher sigint(lh.loop, SIGINT, stop);
  SignalWatcher sigterm(lh.loop, SIGTERM, stop);
  SignalWatcher sighup(lh.loop, SIGHUP, [&](int) {
    auto res = load_config_file(opts.config_path);
    if (auto* e = std::get_if<ConfigError>(&res)) {
      LOG_ERROR("reload refused, keeping the running configuration: %s", e->str().c_str());
      return;
    }
    const Config& next = std::get<Config>(res);
    if (next.role != proxy->config().role ||
        next.session_mode != proxy->config().session_mode) {
      LOG_ERROR("reload refused: role and session_mode need a restart");
      return;
    }
    log::set_level(to_log_level(next.log_level));
    proxy->reload(next);
    LOG_INFO("configuration reloaded from %s", opts.config_path.c_str());
  });
  SignalWatcher sigusr1(lh.loop, SIGUSR1, [&](int) {
    LOG_INFO("stats bindings=%zu %s", proxy->bindings().size(), stats.to_json().c_str());
  });

  ev_run(lh.loop, 0);
  LOG_INFO("stats bindings=%zu %s", proxy->bindings().size(), stats.to_json().c_str());
  LOG_INFO("stopped");
  return 0;
}

}  // namespace mpudp

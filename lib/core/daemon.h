// Runs a proxy of the configured role until SIGINT/SIGTERM. SIGHUP reloads the config
// file (a broken file is reported and the running config stays); SIGUSR1 logs counters.
#pragma once

#include <string>

#include "config/config.h"

namespace mpudp {

struct DaemonOptions {
  std::string config_path;
  bool timestamps = true;
  // stderr is the journal: `<N>` priority prefixes (log::is_journal_stream).
  bool priority_prefix = false;
};

// Returns the process exit code.
int run_daemon(const Config& cfg, const DaemonOptions& opts);

}  // namespace mpudp

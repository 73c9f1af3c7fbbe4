// mpudpd: parse arguments, load the configuration, hand over to the library.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <iterator>
#include <string>
#include <variant>

#include "config/config.h"
#include "core/daemon.h"
#include "ctl/log.h"

namespace {

constexpr int kExitUsage = 64;  // EX_USAGE: bad command line or configuration

void usage(std::FILE* out) {
  std::fprintf(out,
               "usage: mpudpd -c FILE [--check | --print-rules]\n"
               "       mpudpd --print-rules --fragment <YAML\n"
               "  -c, --config FILE  configuration (YAML)\n"
               "      --check        validate the configuration and exit (0 ok, 64 bad)\n"
               "      --print-rules  validate, then print what mpudp-rules(8) needs as\n"
               "                     KEY=value lines and exit (64: bad configuration)\n"
               "      --fragment     with --print-rules: read only the rules' keys from\n"
               "                     standard input, none required\n"
               "  -h, --help         this text\n"
               "  -V, --version      print the version\n");
}

}  // namespace

int main(int argc, char** argv) {
  std::string path;
  bool check = false;
  bool print_rules = false;
  bool fragment = false;
  for (int i = 1; i < argc; ++i) {
    const char* a = argv[i];
    if (!std::strcmp(a, "-c") || !std::strcmp(a, "--config")) {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "mpudpd: %s needs a file name\n", a);
        return kExitUsage;
      }
      path = argv[++i];
    } else if (!std::strncmp(a, "--config=", 9)) {
      path = a + 9;
    } else if (!std::strcmp(a, "--check")) {
      check = true;
    } else if (!std::strcmp(a, "--print-rules")) {
      print_rules = true;
    } else if (!std::strcmp(a, "--fragment")) {
      fragment = true;
    } else if (!std::strcmp(a, "-h") || !std::strcmp(a, "--help")) {
      usage(stdout);
      return 0;
    } else if (!std::strcmp(a, "-V") || !std::strcmp(a, "--version")) {
      std::printf("mpudpd %s\n", MPUDP_VERSION);
      return 0;
    } else {
      std::fprintf(stderr, "mpudpd: unknown argument '%s'\n", a);
      usage(stderr);
      return kExitUsage;
    }
  }
  if (fragment != (print_rules && path.empty())) {
    std::fprintf(stderr, "mpudpd: --fragment goes with --print-rules and without -c\n");
    return kExitUsage;
  }
  if (fragment) {
    const std::string text{std::istreambuf_iterator<char>(std::cin), {}};
    auto res = mpudp::load_rules_fragment(text, "mpudp-rules");
    if (auto* e = std::get_if<mpudp::ConfigError>(&res)) {
      std::fprintf(stderr, "%s\n", e->str().c_str());
      return kExitUsage;
    }
    std::fputs(mpudp::print_rules(std::get<mpudp::Config>(res)).c_str(), stdout);
    return 0;
  }
  if (path.empty()) {
    std::fprintf(stderr, "mpudpd: no configuration given (-c FILE)\n");
    usage(stderr);
    return kExitUsage;
  }
  auto res = mpudp::load_config_file(path);
  if (auto* e = std::get_if<mpudp::ConfigError>(&res)) {
    std::fprintf(stderr, "%s\n", e->str().c_str());
    return kExitUsage;
  }
  if (print_rules) {
    std::fputs(mpudp::print_rules(std::get<mpudp::Config>(res)).c_str(), stdout);
    return 0;
  }
  if (check) {
    std::printf("%s: ok\n", path.c_str());
    return 0;
  }
  mpudp::DaemonOptions opts;
  opts.config_path = path;
  // systemd and procd stamp each line themselves (procd sets no variable of its own, so
  // the OpenWrt init script sets MPUDP_NO_TIMESTAMPS).
  opts.timestamps = std::getenv("JOURNAL_STREAM") == nullptr && std::getenv("INVOCATION_ID") == nullptr &&
                    std::getenv("MPUDP_NO_TIMESTAMPS") == nullptr;
  opts.priority_prefix =
      mpudp::log::is_journal_stream(std::getenv("JOURNAL_STREAM"), STDERR_FILENO);
  return mpudp::run_daemon(std::get<mpudp::Config>(res), opts);
}

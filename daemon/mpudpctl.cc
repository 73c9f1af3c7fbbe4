// mpudpctl: asks a running mpudpd over its control socket and shows the answer.
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "ctl/control.h"
#include "ctl/json.h"

namespace {

constexpr int kExitUsage = 64;

using mpudp::json::Value;

void usage(std::FILE* out) {
  std::fprintf(out,
               "usage: mpudpctl [-s SOCKET] COMMAND\n"
               "  status [--json]     role, uptime, tunnel connections and subflows, counters\n"
               "  bindings [--json]   one line per binding\n"
               "  top [--count N]     live view, refreshed every second (q or Ctrl-C quits)\n"
               "  reload              re-read the configuration (same as SIGHUP)\n"
               "  -s, --socket PATH   control socket (default %s)\n",
               mpudp::usable_control_socket().c_str());
}

std::string human_bytes(double b) {
  const char* units[] = {"B", "KB", "MB", "GB", "TB"};
  int u = 0;
  while (b >= 1000 && u < 4) {
    b /= 1000;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", b, units[u]);
  return buf;
}

std::string human_duration(double s) {
  char buf[32];
  const long t = static_cast<long>(s);
  if (t >= 3600)
    std::snprintf(buf, sizeof buf, "%ldh%02ldm", t / 3600, (t / 60) % 60);
  else if (t >= 60)
    std::snprintf(buf, sizeof buf, "%ldm%02lds", t / 60, t % 60);
  else
    std::snprintf(buf, sizeof buf, "%.1fs", s);
  return buf;
}

bool fetch(const std::string& sock, const std::string& req, Value* out) {
  bool ok = false;
  const std::string answer = mpudp::control_request(sock, req, &ok);
  if (!ok) {
    std::fprintf(stderr, "mpudpctl: %s\n", answer.c_str());
    return false;
  }
  std::string err;
  auto v = mpudp::json::parse(answer, &err);
  if (!v) {
    std::fprintf(stderr, "mpudpctl: unreadable answer from mpudpd (%s)\n", err.c_str());
    return false;
  }
  if (!(*v)["error"].string().empty()) {
    std::fprintf(stderr, "mpudpctl: %s\n", (*v)["error"].string().c_str());
    return false;
  }
  *out = std::move(*v);
  return true;
}

void print_subflows(const Value& conn) {
  for (const Value& sf : conn["subflows"].array()) {
    std::printf("      subflow %-6s %s -> %s  tx %s  rx %s  rtt %.2f ms (min %.2f)%s\n",
                sf["interface"].string("?").c_str(), sf["local"].string().c_str(),
                sf["remote"].string().c_str(), human_bytes(sf["tx_bytes"].number()).c_str(),
                human_bytes(sf["rx_bytes"].number()).c_str(), sf["rtt_us"].number() / 1000.0,
                sf["min_rtt_us"].number() / 1000.0, sf["backup"].boolean() ? "  backup" : "");
  }
}

void print_status(const Value& s) {
  std::printf("mpudpd %s %s, up %s, %s sessions\n", s["role"].string().c_str(),
              s["version"].string().c_str(), human_duration(s["uptime_s"].number()).c_str(),
              s["session_mode"].string().c_str());
  const Value& b = s["bindings"];
  std::printf("bindings: %.0f of %.0f (idle timeout %s)\n", b["count"].number(),
              b["max"].number(), human_duration(b["idle_timeout_s"].number()).c_str());
  const auto& conns = s["connections"].array();
  std::printf("tunnel connections: %zu\n", conns.size());
  for (const Value& c : conns) {
    // A copy carrier is plain TCP on purpose (one uplink each), not a fallback.
    const bool carrier = c["copy_carrier"].boolean();
    std::string kind;
    if (carrier) {
      kind.append(c["copy_spare"].boolean() ? ", spare copy carrier" : ", copy carrier");
      if (const std::string dev = c["carrier_interface"].string(); !dev.empty())
        kind.append(" over ").append(dev);
      kind.append(", ")
          .append(std::to_string(static_cast<std::uint64_t>(c["first_arrivals"].number())))
          .append(" first copies");
      if (c["stalled"].boolean()) kind.append(", stalled");
    }
    std::printf("  #%-5.0f %-24s %-10s %s%s%s%s  queued %s\n", c["id"].number(),
                c["peer"].string().c_str(), c["state"].string().c_str(),
                c["mptcp"].boolean() ? "MPTCP" : "TCP",
                c["mptcp"].boolean() || carrier ? "" : " (fallback)",
                c["express_connection"].boolean() ? ", express" : "", kind.c_str(),
                human_bytes(c["queued_bytes"].number()).c_str());
    print_subflows(c);
  }
  std::printf("counters:\n");
  if (const auto* o = std::get_if<mpudp::json::Object>(&s["stats"]["counters"].v))
    for (const auto& [k, v] : *o)
      if (v.number() != 0) std::printf("  %-28s %.0f\n", k.c_str(), v.number());
  std::printf("drops:");
  bool any = false;
  if (const auto* o = std::get_if<mpudp::json::Object>(&s["stats"]["drops"].v))
    for (const auto& [k, v] : *o)
      if (v.number() != 0) {
        std::printf("\n  %-28s %.0f", k.c_str(), v.number());
        any = true;
      }
  std::printf("%s\n", any ? "" : " none");
}

void print_bindings(const Value& v) {
  const auto& list = v["bindings"].array();
  std::printf("%-28s %-8s %-8s %-10s %-10s %s\n", "CLIENT", "AGE", "IDLE", "UP", "DOWN",
              "REMOTES");
  for (const Value& b : list) {
    std::string remotes;
    for (const Value& r : b["remotes"].array()) {
      if (!remotes.empty()) remotes += ',';
      remotes += r.string();
    }
    std::printf("%-28s %-8s %-8s %-10s %-10s %s\n", b["client"].string().c_str(),
                human_duration(b["age_s"].number()).c_str(),
                human_duration(b["idle_s"].number()).c_str(),
                human_bytes(b["up_bytes"].number()).c_str(),
                human_bytes(b["down_bytes"].number()).c_str(), remotes.c_str());
  }
  std::printf("%zu binding%s\n", list.size(), list.size() == 1 ? "" : "s");
}

std::string bar(double value, double max, int width) {
  const int n = max > 0 ? static_cast<int>(std::lround(width * std::min(1.0, value / max))) : 0;
  return std::string(static_cast<std::size_t>(n), '#') +
         std::string(static_cast<std::size_t>(width - n), '.');
}

int top(const std::string& sock, int count) {
  std::map<std::string, double> last_sf;       // subflow key -> tx+rx bytes
  std::map<std::string, double> last_binding;  // client -> up+down bytes
  const bool tty = isatty(STDIN_FILENO);
  for (int i = 0; count == 0 || i < count; ++i) {
    Value s, b;
    if (!fetch(sock, "status", &s) || !fetch(sock, "bindings", &b)) return 1;
    std::printf("\033[H\033[2J");
    std::printf("mpudpctl top — %s, %.0f bindings, up %s   (q quits)\n\n",
                s["role"].string().c_str(), s["bindings"]["count"].number(),
                human_duration(s["uptime_s"].number()).c_str());
    std::vector<std::pair<std::string, double>> paths;
    double max_rate = 1;
    for (const Value& c : s["connections"].array()) {
      for (const Value& sf : c["subflows"].array()) {
        const std::string key = sf["interface"].string("?") + " " + sf["local"].string() +
                                " -> " + sf["remote"].string();
        const double total = sf["tx_bytes"].number() + sf["rx_bytes"].number();
        const double rate = last_sf.count(key) ? (total - last_sf[key]) * 8 : 0;
        last_sf[key] = total;
        paths.emplace_back(key, rate);
        max_rate = std::max(max_rate, rate);
      }
    }
    std::printf("throughput per path (bit/s)\n");
    if (paths.empty()) std::printf("  (no subflows reported)\n");
    for (const auto& [key, rate] : paths)
      std::printf("  %-44s %s %s\n", key.c_str(), bar(rate, max_rate, 30).c_str(),
                  human_bytes(rate / 8).c_str());
    std::vector<std::pair<double, std::string>> busy;
    for (const Value& bd : b["bindings"].array()) {
      const std::string client = bd["client"].string();
      const double total = bd["up_bytes"].number() + bd["down_bytes"].number();
      const double prev = last_binding.count(client) ? last_binding[client] : total;
      last_binding[client] = total;
      busy.emplace_back(total - prev, client);
    }
    std::sort(busy.rbegin(), busy.rend());
    std::printf("\nbusiest bindings (bytes/s)\n");
    for (std::size_t k = 0; k < std::min<std::size_t>(10, busy.size()); ++k)
      std::printf("  %-30s %s\n", busy[k].second.c_str(), human_bytes(busy[k].first).c_str());
    std::fflush(stdout);
    if (count != 0 && i + 1 >= count) break;
    pollfd p{STDIN_FILENO, POLLIN, 0};
    if (tty && ::poll(&p, 1, 1000) > 0) {
      char ch = 0;
      if (::read(STDIN_FILENO, &ch, 1) == 1 && (ch == 'q' || ch == 'Q')) break;
    } else if (!tty) {
      ::usleep(1000 * 1000);
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string sock = mpudp::usable_control_socket();
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "-s" || a == "--socket") {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "mpudpctl: %s needs a path\n", a.c_str());
        return kExitUsage;
      }
      sock = argv[++i];
    } else if (a == "-h" || a == "--help") {
      usage(stdout);
      return 0;
    } else {
      args.push_back(a);
    }
  }
  if (args.empty()) {
    usage(stderr);
    return kExitUsage;
  }
  const std::string cmd = args[0];
  const bool as_json = std::find(args.begin() + 1, args.end(), "--json") != args.end();
  if (cmd == "status" || cmd == "bindings") {
    if (as_json) {
      bool ok = false;
      const std::string answer = mpudp::control_request(sock, cmd, &ok);
      std::fprintf(ok ? stdout : stderr, "%s%s\n", ok ? "" : "mpudpctl: ", answer.c_str());
      return ok ? 0 : 1;
    }
    Value v;
    if (!fetch(sock, cmd, &v)) return 1;
    cmd == "status" ? print_status(v) : print_bindings(v);
    return 0;
  }
  if (cmd == "reload") {
    Value v;
    if (!fetch(sock, "reload", &v)) return 1;
    std::printf("%s\n", v["message"].string("reloaded").c_str());
    return 0;
  }
  if (cmd == "top") {
    int count = 0;
    for (std::size_t i = 1; i + 1 < args.size(); ++i)
      if (args[i] == "--count") count = std::atoi(args[i + 1].c_str());
    return top(sock, count);
  }
  std::fprintf(stderr, "mpudpctl: unknown command '%s'\n", cmd.c_str());
  usage(stderr);
  return kExitUsage;
}

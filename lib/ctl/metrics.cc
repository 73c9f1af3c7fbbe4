#include "ctl/metrics.h"

#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>

#include "io/socket.h"

namespace mpudp {
namespace {
constexpr std::size_t kMaxRequest = 4096;

void family(std::string& out, const std::string& name, const char* help, const char* type) {
  out += "# HELP mpudp_" + name + " " + help + "\n";
  out += "# TYPE mpudp_" + name + " " + type + "\n";
}
// The exposition format's escapes for a label value: backslash, double quote, newline.
std::string label_value(const std::string& v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}
}  // namespace

std::string prometheus_text(const Stats& stats, const std::vector<Gauge>& gauges) {
  std::string out;
  for (std::size_t i = 0; i < static_cast<std::size_t>(Counter::kCount); ++i) {
    const auto c = static_cast<Counter>(i);
    const std::string name = std::string(info(c).name) + "_total";
    family(out, name, info(c).help, "counter");
    out += "mpudp_" + name + " " + std::to_string(stats.get(c)) + "\n";
  }
  family(out, "dropped_datagrams_total", "datagrams dropped, by reason", "counter");
  for (std::size_t i = 0; i < static_cast<std::size_t>(Drop::kCount); ++i) {
    const auto d = static_cast<Drop>(i);
    out += std::string("mpudp_dropped_datagrams_total{reason=\"") + info(d).name + "\"} " +
           std::to_string(stats.get(d)) + "\n";
  }
  for (const Gauge& g : gauges) {
    family(out, g.name, g.help.c_str(), "gauge");
    char buf[64];
    if (g.label.empty()) {
      std::snprintf(buf, sizeof buf, "%.17g", g.value);
      out += "mpudp_" + g.name + " " + buf + "\n";
      continue;
    }
    for (const auto& [value, v] : g.series) {
      std::snprintf(buf, sizeof buf, "%.17g", v);
      out += "mpudp_" + g.name + "{" + g.label + "=\"" + label_value(value) + "\"} " + buf + "\n";
    }
  }
  return out;
}


std::unique_ptr<MetricsServer> MetricsServer::open(Loop* loop, const Endpoint& at,
                                                   Render render, std::string* err) {
  Fd fd = make_socket(family_to_af(at.family), SOCK_STREAM, IPPROTO_TCP);
  auto fail = [&](const std::string& what, int e) {
    if (err) *err = what + ": " + errno_str(e);
    return nullptr;
  };
  if (!fd) return fail("socket", errno);
  set_int_opt(fd.get(), SOL_SOCKET, SO_REUSEADDR, 1);
  if (at.is_v6()) set_int_opt(fd.get(), SOL_IPV6, IPV6_V6ONLY, 1);
  if (int e = bind_to(fd.get(), at)) return fail("bind " + at.str(), e);
  if (::listen(fd.get(), 16) != 0) return fail("listen " + at.str(), errno);
  auto server = std::make_unique<RequestServer>(
      loop, "metrics endpoint " + at.str(), std::move(fd), kMaxRequest,
      [render = std::move(render)](const std::string& in) -> std::optional<std::string> {
        if (in.find("\r\n\r\n") == std::string::npos && in.find("\n\n") == std::string::npos)
          return std::nullopt;
        const bool metrics = in.rfind("GET /metrics ", 0) == 0 || in.rfind("GET / ", 0) == 0;
        const std::string body = metrics ? render() : "not found: try /metrics\n";
        return std::string(metrics ? "HTTP/1.0 200 OK\r\n" : "HTTP/1.0 404 Not Found\r\n") +
               "Content-Type: text/plain; version=0.0.4\r\nContent-Length: " +
               std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
      });
  return std::unique_ptr<MetricsServer>(new MetricsServer(std::move(server)));
}

}  // namespace mpudp

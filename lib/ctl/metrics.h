// Prometheus text exposition: counters from the one list in stats.h (names say object
// and direction), drops as one family labelled by reason, and a few gauges. Served over
// plain HTTP on `metrics_listen`, off unless configured.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "ctl/stats.h"
#include "io/fd.h"
#include "io/loop.h"
#include "ctl/request_server.h"
#include "net/endpoint.h"

namespace mpudp {

struct Gauge {
  std::string name;  // without the mpudp_ prefix
  std::string help;
  double value = 0;
  // With a label name: one series per (label value, value) below instead of `value`, e.g.
  // bindings per tenant. Label values are escaped here (an identity may hold a quote).
  std::string label;
  std::vector<std::pair<std::string, double>> series;
};

// Pure: the exposition text for these stats and gauges.
std::string prometheus_text(const Stats& stats, const std::vector<Gauge>& gauges);

class MetricsServer {
 public:
  using Render = std::function<std::string()>;
  static std::unique_ptr<MetricsServer> open(Loop* loop, const Endpoint& at, Render render,
                                             std::string* err);
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

 private:
  explicit MetricsServer(std::unique_ptr<RequestServer> server) : server_(std::move(server)) {}
  std::unique_ptr<RequestServer> server_;
};

}  // namespace mpudp

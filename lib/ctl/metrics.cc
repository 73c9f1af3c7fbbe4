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
constexpr std::size_t kMaxClients = 8;

void family(std::string& out, const std::string& name, const char* help, const char* type) {
  out += "# HELP mpudp_" + name + " " + help + "\n";
  out += "# TYPE mpudp_" + name + " " + type + "\n";
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
    std::snprintf(buf, sizeof buf, "%.17g", g.value);
    out += "mpudp_" + g.name + " " + buf + "\n";
  }
  return out;
}

struct MetricsServer::Client {
  Fd fd;
  std::string in;
  std::string out;
  std::size_t sent = 0;
  std::unique_ptr<IoWatcher> io;
};

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
  return std::unique_ptr<MetricsServer>(new MetricsServer(loop, std::move(fd), std::move(render)));
}

MetricsServer::MetricsServer(Loop* loop, Fd fd, Render render)
    : loop_(loop), fd_(std::move(fd)), render_(std::move(render)),
      io_(loop, [this](int) { on_accept(); }) {
  io_.watch(fd_.get(), EV_READ);
}

MetricsServer::~MetricsServer() {
  io_.stop();
  clients_.clear();
}

void MetricsServer::on_accept() {
  for (;;) {
    Fd cfd(::accept4(fd_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!cfd) return;
    if (clients_.size() >= kMaxClients) continue;
    auto c = std::make_unique<Client>();
    c->fd = std::move(cfd);
    Client* raw = c.get();
    c->io = std::make_unique<IoWatcher>(loop_, [this, raw](int ev) { on_client(raw, ev); });
    c->io->watch(c->fd.get(), EV_READ);
    clients_.push_back(std::move(c));
  }
}

void MetricsServer::drop(Client* c) {
  std::erase_if(clients_, [c](const std::unique_ptr<Client>& p) { return p.get() == c; });
}

void MetricsServer::on_client(Client* c, int revents) {
  if (revents & EV_READ) {
    char buf[1024];
    const ssize_t n = ::recv(c->fd.get(), buf, sizeof buf, 0);
    if (n <= 0) {
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
      drop(c);
      return;
    }
    c->in.append(buf, static_cast<std::size_t>(n));
    if (c->in.find("\r\n\r\n") == std::string::npos && c->in.find("\n\n") == std::string::npos) {
      if (c->in.size() > kMaxRequest) drop(c);
      return;
    }
    const bool metrics = c->in.rfind("GET /metrics ", 0) == 0 || c->in.rfind("GET / ", 0) == 0;
    const std::string body = metrics ? render_() : "not found: try /metrics\n";
    c->out = std::string(metrics ? "HTTP/1.0 200 OK\r\n" : "HTTP/1.0 404 Not Found\r\n") +
             "Content-Type: text/plain; version=0.0.4\r\nContent-Length: " +
             std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
    c->io->watch(c->fd.get(), EV_WRITE);
  }
  if (revents & EV_WRITE) {
    const ssize_t n = ::send(c->fd.get(), c->out.data() + c->sent, c->out.size() - c->sent,
                             MSG_NOSIGNAL);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n > 0) c->sent += static_cast<std::size_t>(n);
    if (n <= 0 || c->sent == c->out.size()) drop(c);
  }
}

}  // namespace mpudp

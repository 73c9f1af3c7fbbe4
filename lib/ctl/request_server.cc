#include "ctl/request_server.h"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>

#include "ctl/log.h"
#include "io/socket.h"

namespace mpudp {
namespace {
// The daemon's work comes first: more clients than this at once are turned away.
constexpr std::size_t kMaxClients = 16;
}  // namespace

struct RequestServer::Client {
  Fd fd;
  std::string in;
  std::string out;
  std::size_t sent = 0;
  std::unique_ptr<IoWatcher> io;
};

RequestServer::RequestServer(Loop* loop, std::string name, Fd listening,
                             std::size_t max_request, Answer answer)
    : loop_(loop), name_(std::move(name)), max_request_(max_request),
      answer_(std::move(answer)),
      acceptor_(
          loop, std::move(listening),
          [this](Fd fd, const sockaddr_storage&, socklen_t) { on_accept(std::move(fd)); },
          [this](int e) {
            LOG_WARN("%s: accept: %s; not accepting for a second", name_.c_str(),
                     errno_str(e).c_str());
          }) {}

RequestServer::~RequestServer() { clients_.clear(); }

void RequestServer::on_accept(Fd cfd) {
  if (clients_.size() >= kMaxClients) return;  // closes it
  auto c = std::make_unique<Client>();
  c->fd = std::move(cfd);
  Client* raw = c.get();
  c->io = std::make_unique<IoWatcher>(loop_, [this, raw](int ev) { on_client(raw, ev); });
  c->io->watch(c->fd.get(), EV_READ);
  clients_.push_back(std::move(c));
}

void RequestServer::drop(Client* c) {
  std::erase_if(clients_, [c](const std::unique_ptr<Client>& p) { return p.get() == c; });
}

void RequestServer::on_client(Client* c, int revents) {
  if ((revents & EV_READ) && c->out.empty()) {
    char buf[1024];
    const ssize_t n = ::recv(c->fd.get(), buf, sizeof buf, 0);
    if (n <= 0) {
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
      drop(c);
      return;
    }
    c->in.append(buf, static_cast<std::size_t>(n));
    auto answer = answer_(c->in);
    if (!answer) {
      if (c->in.size() > max_request_) drop(c);
      return;
    }
    c->out = std::move(*answer);
    c->io->watch(c->fd.get(), EV_WRITE);
    return;
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

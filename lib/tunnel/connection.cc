#include "tunnel/connection.h"

#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "ctl/log.h"
#include "io/socket.h"
#include "tunnel/mptcp_uapi.h"
#include "tunnel/socket_setup.h"
#include "tunnel/subflows.h"
#include "tunnel/tls_transport.h"

namespace mpudp {
namespace {

// Reads start small (Connection::read_chunk_) and double while they fill the buffer up to
// kReadChunk: a per-binding connection carrying a call never touches more than a page or
// so of read buffer (its queues start small the same way, FrameQueue::kMinAlloc), while a
// bulk one reaches full-size reads within a few. Thousands of per-binding connections
// with 16 KiB each showed in memory.
constexpr std::size_t kReadChunk = 16 * 1024;
constexpr std::size_t kMaxInBuffer = 2 * wire::kMaxFrame;
// HELLO and AUTH are a few dozen bytes (a future HELLO may grow, not by this much): before
// the handshake a peer does not get to size our read buffer with a declared length.
constexpr std::size_t kMaxHandshakeFrame = 512;
constexpr int kMaxReadRounds = 8;
constexpr std::size_t kControlHeadroom = 64 * 1024;
// How soon to look again when the send limit held bytes back: a fraction of the queue
// the limit allows (tunnel.target_delay), so the paths never run dry meanwhile.
constexpr double kRetryInterval = 0.001;

constexpr std::int64_t kNoLimit = WriteBudget::kNoLimit;

std::uint32_t g_next_id = 0;
// Connection ids double as binding-table scopes on the concentrator; 0 is the CPE's scope.
std::uint32_t next_connection_id() {
  // 0 is "no connection" and 0xffffffff Flow::kKnownEverywhere: never connection ids.
  if (++g_next_id == 0 || g_next_id == 0xffffffffu) g_next_id = 1;
  return g_next_id;
}
bool g_logged_fallback = false;

}  // namespace

Flusher::Flusher(Deferred& deferred) {
  deferred.add_task([this] { run(); });
}

void Flusher::schedule(Connection* c) {
  if (c->flush_scheduled_) return;
  c->flush_scheduled_ = true;
  pending_.push_back(c);
}

void Flusher::cancel(Connection* c) {
  if (!c->flush_scheduled_) return;
  c->flush_scheduled_ = false;
  std::erase(pending_, c);
  std::replace(running_.begin(), running_.end(), c, static_cast<Connection*>(nullptr));
}

void Flusher::run() {
  // Flushing can fail a connection whose handler then queues frames on another; go round
  // until nothing is pending (bounded, in case of a pathological handler).
  for (int round = 0; round < 4 && !pending_.empty(); ++round) {
    running_.swap(pending_);
    for (auto*& c : running_) {
      if (c == nullptr) continue;
      c->flush_scheduled_ = false;
      Connection* conn = c;
      c = nullptr;
      conn->flush();
    }
    running_.clear();
  }
}

std::unique_ptr<Connection> Connection::connect(const ConnectionContext& ctx,
                                                const Endpoint& peer,
                                                const ConnectionOptions& opts,
                                                ConnectionHandler& handler, std::string* err,
                                                std::unique_ptr<Transport> transport,
                                                const std::string& device) {
  bool mptcp = true;
  Fd fd = device.empty() ? make_tunnel_socket(family_to_af(peer.family), &mptcp)
                         : make_carrier_socket(family_to_af(peer.family), device);
  if (!fd) {
    if (err) *err = (device.empty() ? "socket: " : "socket on " + device + ": ") +
                    errno_str(errno);
    return nullptr;
  }
  if (!device.empty()) mptcp = false;
  tune_tunnel_socket(fd.get(), opts.congestion_control);
  sockaddr_storage ss;
  socklen_t len = peer.to_sockaddr(ss);
  bool connecting = true;
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    if (errno != EINPROGRESS) {
      if (err) *err = "connect " + peer.str() + ": " + errno_str(errno);
      return nullptr;
    }
  } else {
    connecting = false;
  }
  std::unique_ptr<Connection> c(
      new Connection(ctx, std::move(fd), peer, opts, handler, true, std::move(transport)));
  c->mptcp_ = mptcp;
  if (!connecting) c->on_connect_done();
  return c;
}

std::unique_ptr<Connection> Connection::adopt(const ConnectionContext& ctx, Fd fd,
                                              const Endpoint& peer,
                                              const ConnectionOptions& opts,
                                              ConnectionHandler& handler,
                                              std::unique_ptr<Transport> transport) {
  tune_tunnel_socket(fd.get(), opts.congestion_control);
  std::unique_ptr<Connection> c(
      new Connection(ctx, std::move(fd), peer, opts, handler, false, std::move(transport)));
  // Reported once the peer's HELLO said what the connection is (report_fallback): a CPE's
  // copy carrier arrives as plain TCP on purpose.
  c->check_fallback(false);
  c->secured_ = c->transport_->ready();
  return c;
}

Connection::Connection(const ConnectionContext& ctx, Fd fd, const Endpoint& peer,
                       const ConnectionOptions& opts, ConnectionHandler& handler,
                       bool connecting, std::unique_ptr<Transport> transport)
    : ctx_(ctx),
      opts_(opts),
      handler_(handler),
      fd_(std::move(fd)),
      transport_(transport ? std::move(transport) : std::make_unique<PlainTransport>()),
      peer_(peer),
      identity_(peer.str()),
      id_(next_connection_id()),
      state_(connecting ? State::Connecting : State::Open),
      io_(ctx.loop, [this](int ev) { on_io(ev); }),
      keepalive_timer_(ctx.loop, [this] { on_keepalive_timer(); }),
      handshake_timer_(ctx.loop, [this] {
        ctx_.stats.add(Counter::handshake_timeouts);
        fail(kHandshakeTimeoutReason);
      }),
      retry_timer_(ctx.loop, [this] { ctx_.flusher.schedule(this); }),
      trim_timer_(ctx.loop, [this] { on_trim_timer(); }) {
  set_options(opts);
  last_rx_ = ev_now(ctx_.loop);
  update_watch();
  keepalive_timer_.start(std::chrono::duration<double>(opts_.keepalive).count());
}

Connection::~Connection() { shut(); }

const TlsSession* Connection::tls() const {
  const auto* t = dynamic_cast<const TlsTransport*>(transport_.get());
  return t != nullptr && !t->cleartext() ? &t->session() : nullptr;
}

void Connection::check_secured() {
  if (secured_ || state_ != State::Open || !transport_->ready()) return;
  secured_ = true;
  handler_.on_secured(*this);
  if (state_ == State::Open && queued_bytes() > 0) ctx_.flusher.schedule(this);
}

void Connection::transport_failed(std::string_view during) {
  if (const TlsSession* s = tls(); s != nullptr && s->failed()) {
    if (!s->established()) ctx_.stats.add(Counter::tls_handshake_failures);
    else if (s->failure() == TlsFailure::BadRecord) ctx_.stats.add(Counter::tls_record_failures);
  }
  std::string why = transport_->failure();
  if (why.empty()) why = std::string(during) + ": " + errno_str(errno);
  fail(why);
}

void Connection::make_express() {
  express = true;
  mark(true);
}

void Connection::make_carrier(std::string interface) {
  carrier = true;
  carrier_interface = std::move(interface);
  mark(true);
  if (mptcp_) return;
  tune_carrier_socket(fd_.get());
  apply_copy_congestion_control(fd_.get(), opts_.copy_congestion_control);
}

void Connection::probe_paths() const {
  constexpr double kProbeInterval = 0.010;
  const double now = ev_now(ctx_.loop);
  if (now - paths_checked_ < kProbeInterval) return;
  paths_checked_ = now;
  stalled_ = pathless_ = false;
  exposure_ = 0;
  frames_since_probe_ = 0;
  if (!fd_) return;
  // An MPTCP connection whose subflows the peer reset (an uplink gone, a middlebox
  // flushing its state) stays open, waiting for a join: what it is given waits with it,
  // until the keepalives give it up seconds later.
  if (mptcp_ && state_ == State::Open && live_subflows(fd_.get()) == 0) {
    stalled_ = pathless_ = true;
    stalled_at_ = now;
    return;
  }
  tcp_info ti{};
  socklen_t len = sizeof ti;
  if (::getsockopt(fd_.get(), IPPROTO_TCP, TCP_INFO, &ti, &len) != 0) return;
  if (ti.tcpi_unacked == 0) all_acked_at_ = now;
  const auto idle_ms = static_cast<std::uint32_t>(
      std::min((now - all_acked_at_) * 1000.0, 1e9));
  const CarrierSample sample{ti.tcpi_ca_state, ti.tcpi_retransmits, ti.tcpi_unacked,
                             ti.tcpi_rtt, std::min(ti.tcpi_last_ack_recv, idle_ms),
                             ti.tcpi_sacked, ti.tcpi_lost, ti.tcpi_snd_cwnd};
  stalled_ = carrier_stalled(sample);
  exposure_ = carrier_exposure(sample);
  if (stalled_) stalled_at_ = now;
}

bool Connection::stalled() const {
  probe_paths();
  return stalled_;
}

bool Connection::pathless() const {
  probe_paths();
  return pathless_;
}

std::uint32_t Connection::exposure() const {
  probe_paths();
  return exposure_ + frames_since_probe_;
}

bool Connection::recovering() const {
  constexpr double kRecoveryHold = 1.0;
  probe_paths();
  return !stalled_ && ev_now(ctx_.loop) - stalled_at_ < kRecoveryHold;
}

void Connection::mark(bool with_tos, bool reset) {
  set_express_marks(fd_.get(), peer_, opts_.express_priority, opts_.express_dscp, with_tos,
                    reset);
}

void Connection::set_options(const ConnectionOptions& opts) {
  const bool same_target = limit_ && opts.target_delay == opts_.target_delay;
  const bool remark = (express || carrier) && fd_ && (opts.express_priority != opts_.express_priority ||
                                         opts.express_dscp != opts_.express_dscp);
  // A copy carrier runs its own (tunnel.copy_congestion_control) unless that is empty.
  const bool own_ca = carrier && !mptcp_;
  const bool new_copy_ca =
      fd_ && own_ca && opts.copy_congestion_control != opts_.copy_congestion_control;
  const bool new_ca = fd_ && (new_copy_ca || opts.congestion_control != opts_.congestion_control);
  opts_ = opts;
  const SojournDropper::Params sp{
      std::chrono::duration_cast<SojournDropper::Micros>(opts_.queue_target),
      std::chrono::duration_cast<SojournDropper::Micros>(opts_.queue_interval)};
  backlog_sojourn_.set_params(sp);
  express_sojourn_.set_params(sp);
  if (remark) mark(true, true);
  // Live subflows switch at once; the kernel gives later joins the new one too.
  if (new_ca && !(own_ca && apply_copy_congestion_control(fd_.get(), opts_.copy_congestion_control)))
    apply_congestion_control(fd_.get(), opts_.congestion_control);
  if (same_target) return;
  limit_.reset();
  if (opts_.target_delay > Duration::zero()) {
    SendLimit::Params p;
    p.target_s = std::chrono::duration<double>(opts_.target_delay).count();
    limit_ = std::make_unique<SendLimit>(p);
  }
}

std::uint8_t* Connection::reserve(std::size_t n, std::size_t headroom, QueueMark* mark) {
  reserved_express_ = false;
  if (mark != nullptr) {
    if (mark->conn != id_) *mark = QueueMark{id_, 0, 0, 0};
    if (flow_is_sparse(*mark, n, backlog_.head_pos(), express_queue_.head_pos()) &&
        express_open(handshake_done_, held_, backlog_.head_pos(), express_from_)) {
      bool grew = false;
      if (std::uint8_t* p = express_queue_.reserve(n, kExpressBytes, &grew)) {
        reserved_express_ = true;
        if (grew) arm_trim();
        return p;
      }
    }
  }
  const std::size_t cap = std::max(opts_.queue_bytes, wire::kMaxFrame) + headroom;
  bool grew = false;
  std::uint8_t* p = backlog_.reserve(n, cap, &grew);
  if (grew) arm_trim();
  return p;
}

void Connection::on_trim_timer() {
  transport_->trim();
  backlog_.trim(kKeepBytes);
  express_queue_.trim(kKeepBytes);
  if (in_len_ == 0 && in_.capacity() > kKeepBytes) {
    std::vector<std::uint8_t>().swap(in_);
    read_chunk_ = kFirstReadChunk;
  }
  arm_trim();
}

void Connection::commit(std::size_t n, QueueMark* mark) {
  const TimePoint t = now();
  if (reserved_express_) {
    express_queue_.commit(n, t);
    if (mark != nullptr) {
      mark->express_end = express_queue_.tail_pos();
      mark->express_run += static_cast<std::uint32_t>(n);
    }
  } else {
    backlog_.commit(n, t);
    if (mark != nullptr) mark->backlog_end = backlog_.tail_pos();
  }
  reserved_express_ = false;
  ++frames_since_probe_;
  ctx_.stats.add(Counter::tunnel_tx_frames);
  ctx_.flusher.schedule(this);
}

bool Connection::send(const wire::Frame& f, QueueMark* mark) {
  if (state_ == State::Closed) return false;
  const std::size_t n = wire::encoded_size(f);
  if (n == 0) return false;
  // CLOSE and RESET keep the two binding tables in step and are a few bytes each: they
  // get room beyond the datagram limit, so a queue full of datagrams cannot drop them.
  const bool control = !std::holds_alternative<wire::Open>(f) && !std::holds_alternative<wire::Data>(f);
  std::uint8_t* p = reserve(n, control ? kControlHeadroom : 0, mark);
  if (p == nullptr) return false;
  if (wire::encode(f, {p, n}) != n) return false;
  commit(n, mark);
  return true;
}

bool Connection::send_data(std::uint32_t flow_id, std::span<const std::uint8_t> payload,
                           QueueMark* mark) {
  if (state_ == State::Closed || payload.size() > wire::kMaxDataPayload) return false;
  std::uint8_t* p = reserve(wire::kDataOverhead + payload.size(), 0, mark);
  if (p == nullptr) return false;
  const std::size_t h = wire::encode_data_header(flow_id, payload.size(), p);
  if (!payload.empty()) std::memcpy(p + h, payload.data(), payload.size());
  commit(h + payload.size(), mark);
  return true;
}

bool Connection::reserve_held_slot(const wire::Frame& placeholder) {
  if (state_ == State::Closed || held_) return false;
  const std::size_t n = wire::encoded_size(placeholder);
  if (n == 0) return false;
  std::uint8_t* p = reserve(n, 0, nullptr);
  if (p == nullptr || wire::encode(placeholder, {p, n}) != n) return false;
  held_ = true;
  held_at_ = backlog_.tail_pos();
  held_len_ = n;
  commit(n, nullptr);
  return true;
}

bool Connection::fill_held_slot(const wire::Frame& f) {
  if (!held_ || state_ == State::Closed) return false;
  // Nothing at or past held_at_ has left (flush stops there), so the slot is still in
  // the buffer.
  std::uint8_t* p = backlog_.at(held_at_);
  if (wire::encoded_size(f) != held_len_ || wire::encode(f, {p, held_len_}) != held_len_)
    return false;
  held_ = false;
  ctx_.flusher.schedule(this);
  return true;
}

void Connection::start_handshake_deadline(Duration after) {
  handshake_timer_.start(std::chrono::duration<double>(after).count());
}

void Connection::handshake_complete() {
  handshake_timer_.stop();
  if (!handshake_done_) {
    handshake_done_ = true;
    apply_receive_buffer(fd_.get(), opts_.receive_buffer);
    express_from_ = backlog_.tail_pos();
    // What waited for the handshake (a TLS or key exchange over a long RTT) has not
    // waited in a queue that could drain: its sojourn starts now.
    const TimePoint t = now();
    backlog_.restamp(t);
    express_queue_.restamp(t);
  }
}

bool Connection::congested() const {
  if (express_bytes() <= kExpressBytes / 2) return false;
  if (express_sojourn_.dropping()) return true;
  const TimePoint head = express_queue_.head_time();
  return head != TimePoint{} && now() - head > opts_.queue_target;
}

std::uint64_t Connection::queued_datagrams() const {
  return backlog_.datagrams() + express_queue_.datagrams();
}

std::int64_t Connection::kernel_room(std::size_t want) {
  if (!limit_) return kNoLimit;
  // Within the limit even if nothing written since the last look was transmitted: no
  // need to ask the kernel. An unloaded tunnel saves two syscalls per flush this way.
  const std::uint64_t bound = unsent_seen_ + (written_ - written_seen_);
  if (!limited_ && bound + want <= limit_->limit())
    return static_cast<std::int64_t>(limit_->limit() - bound);
  const PathSample ps = path_sample(fd_.get());
  int nsd = 0;  // the MPTCP socket's own unsent bytes (for plain TCP: the same as notsent)
  if (!ps.ok || (mptcp_ && ::ioctl(fd_.get(), SIOCOUTQNSD, &nsd) != 0)) {
    // Once it has answered, a failure is a moment without subflows (a path change):
    // keep to what was seen last. Never answered: this kernel cannot tell.
    if (sampled_)
      return static_cast<std::int64_t>(limit_->limit()) - static_cast<std::int64_t>(bound);
    PEER_DEBUG(identity_,
               "tunnel to %s: the kernel does not report unsent bytes here: no send limit",
               peer_.str().c_str());
    limit_.reset();
    return kNoLimit;
  }
  sampled_ = true;
  limit_->set_subflows(ps.subflows);
  limit_->set_rtt_spread(ps.rtt_spread_us / 1e6);
  limit_->observe(ev_now(ctx_.loop), ps.sent, limited_);
  written_seen_ = written_;
  // What the transport holds (a record layer's ciphertext) is as unsent as the kernel's.
  unsent_seen_ = ps.notsent + static_cast<std::uint64_t>(std::max(nsd, 0)) +
                 (opts_.limit_path_queue ? ps.path_queued : 0) + transport_->unsent();
  return static_cast<std::int64_t>(limit_->limit()) - static_cast<std::int64_t>(unsent_seen_);
}

void Connection::flush() {
  if (state_ != State::Open) return;  // a connecting socket flushes once it is up
  if (transport_->push(fd_.get()) != 0) {
    transport_failed("write");
    return;
  }
  if (!transport_->ready()) {  // frames wait for the TLS handshake
    update_watch();
    return;
  }
  write_out(kernel_room(sendable_backlog().ready + express_bytes()));
  if (state_ == State::Closed) return;
  update_watch();
}

void Connection::drop_stale(TimePoint t) {
  // Before the handshake nothing leaves (nor is judged): HELLO and AUTH head the backlog.
  if (!handshake_done_) return;
  std::uint64_t dropped = 0;
  for (auto [q, d] : {std::pair{&express_queue_, &express_sojourn_},
                      std::pair{&backlog_, &backlog_sojourn_}}) {
    if (q->empty()) {
      d->on_empty();
      continue;
    }
    for (;;) {
      const std::size_t n = q->droppable_head();
      // Not past the held slot: nothing there may leave, nor be dropped, before AUTH.
      if (n == 0 || (q == &backlog_ && held_ && q->head_pos() + q->cut() + n > held_at_))
        break;
      // A frame without a time (none is queued so; the epoch) is never judged stale.
      const TimePoint queued_at = q->head_time();
      if (queued_at == TimePoint{} || !d->should_drop(t, queued_at, q->size())) break;
      q->drop_head();
      ++dropped;
    }
  }
  // A stalled carrier's copies are not the datagrams' loss: their other copies went on.
  if (dropped > 0)
    ctx_.stats.drop(carrier ? Drop::copy_queue_sojourn : Drop::tunnel_queue_sojourn, dropped);
}

void Connection::write_out(std::int64_t room) {
  WriteBudget budget = WriteBudget::from_room(room, kExpressBytes);
  limited_ = false;
  kernel_full_ = false;
  const TimePoint t = now();
  for (;;) {
    drop_stale(t);
    const WritePlan plan =
        plan_write(sendable_backlog(), {express_queue_.size(), express_queue_.cut()}, budget);
    if (plan.count == 0) {
      limited_ = plan.held_back;
      return;
    }
    iovec iov[WritePlan::kMaxPieces];
    std::size_t backlog_off = 0;
    for (std::size_t i = 0; i < plan.count; ++i) {
      const auto& piece = plan.pieces[i];
      if (piece.lane == Lane::Express) {
        iov[i] = {express_queue_.data(), piece.len};
      } else {
        iov[i] = {backlog_.data() + backlog_off, piece.len};
        backlog_off += piece.len;
      }
    }
    const ssize_t n = transport_->write(fd_.get(), {iov, plan.count});
    ctx_.stats.add(Counter::tunnel_writes);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        limited_ = kernel_full_ = true;
        return;
      }
      transport_failed("write");
      return;
    }
    std::size_t left = static_cast<std::size_t>(n);
    written_ += left;
    budget.spend(left);
    ctx_.stats.add(Counter::tunnel_tx_bytes, left);
    std::uint64_t datagrams = 0;
    // Express frames left ahead of a backlog: sparse flows share this connection with
    // bulk ones, and the send limit keeps to its shorter target for a while (SendLimit).
    const bool backlogged = !backlog_.empty();
    for (std::size_t i = 0; i < plan.count && left > 0; ++i) {
      const auto& piece = plan.pieces[i];
      const std::size_t take = std::min(left, piece.len);
      const bool express_piece = piece.lane == Lane::Express;
      if (express_piece && backlogged && limit_) limit_->note_shared(ev_now(ctx_.loop));
      datagrams += (express_piece ? express_queue_ : backlog_).advance(take);
      left -= take;
    }
    ctx_.stats.add(Counter::tunnel_tx_datagrams, datagrams);
    if (static_cast<std::size_t>(n) < plan.total) {  // the kernel is full; wait for EV_WRITE
      limited_ = kernel_full_ = true;
      return;
    }
  }
}

void Connection::update_watch() {
  if (state_ == State::Closed) return;
  int ev = 0;
  if (state_ == State::Connecting) {
    ev = EV_WRITE;
  } else {
    ev = EV_READ;
    // The transport's own bytes (a TLS flight, ciphertext) wait for the socket.
    if (transport_->unsent() > 0) ev |= EV_WRITE;
    // Held bytes wait for fill_held_slot, bytes over the send limit for the retry timer,
    // not for the socket: no EV_WRITE for them, or the loop would spin on a writable
    // socket.
    const std::size_t sendable =
        transport_->ready() ? sendable_backlog().ready + express_bytes() : 0;
    if (sendable > 0 && kernel_full_) ev |= EV_WRITE;
    if (sendable > 0 && !kernel_full_) {
      if (!retry_timer_.active()) retry_timer_.start(kRetryInterval);
    } else {
      retry_timer_.stop();
    }
  }
  io_.watch(fd_.get(), ev);
}

void Connection::on_io(int revents) {
  if (state_ == State::Connecting) {
    if (revents & EV_WRITE) on_connect_done();
    return;
  }
  if (revents & EV_READ) read_frames();
  if (state_ == State::Open && (revents & EV_WRITE)) flush();
}

void Connection::on_connect_done() {
  int soerr = 0;
  socklen_t len = sizeof soerr;
  if (::getsockopt(fd_.get(), SOL_SOCKET, SO_ERROR, &soerr, &len) != 0) soerr = errno;
  if (soerr != 0) {
    ctx_.stats.add(Counter::tunnel_connect_failures);
    fail("connect " + peer_.str() + ": " + errno_str(soerr));
    return;
  }
  state_ = State::Open;
  ctx_.stats.add(Counter::tunnel_connects);
  last_rx_ = ev_now(ctx_.loop);
  check_fallback();
  if (!transport_->start()) {
    transport_failed("start");
    return;
  }
  update_watch();
  handler_.on_connected(*this);
  if (state_ != State::Open) return;
  check_secured();
  if (state_ == State::Open && (queued_bytes() > 0 || transport_->unsent() > 0)) flush();
}

void Connection::check_fallback(bool report) {
  if (!mptcp_) return;
  if (!mptcp_fell_back(fd_.get())) return;
  mptcp_ = false;
  fallback_unreported_ = true;
  if (report) report_fallback();
}

void Connection::report_fallback() {
  if (!fallback_unreported_) return;
  fallback_unreported_ = false;
  if (carrier) return;
  ctx_.stats.add(Counter::tunnel_fallbacks);
  if (!g_logged_fallback) {
    PEER_WARN(identity_,
              "tunnel connection with %s fell back to plain TCP (the peer or a middlebox "
              "does not do MPTCP): it works, over one path",
              peer_.str().c_str());
    g_logged_fallback = true;
  } else {
    PEER_DEBUG(identity_, "tunnel connection with %s fell back to plain TCP", peer_.str().c_str());
  }
}

void Connection::read_frames() {
  for (int round = 0; round < kMaxReadRounds && state_ != State::Closed; ++round) {
    // Room for a whole pending frame, so a 64 KiB datagram never deadlocks the reader.
    std::size_t want = in_len_ + read_chunk_;
    if (in_len_ >= wire::kHeaderSize) want = std::max(want, wire::frame_size(in_.data()));
    if (in_.size() < want) {
      in_.resize(std::min(kMaxInBuffer, std::max(want, in_.size() * 2)));
      arm_trim();
    }
    const std::size_t space = in_.size() - in_len_;
    const ssize_t n = transport_->read(fd_.get(), {in_.data() + in_len_, space});
    const int read_errno = errno;
    if (n >= 0 || read_errno == EAGAIN || read_errno == EWOULDBLOCK) {
      check_secured();
      if (state_ == State::Closed) return;
    }
    if (n == 0) {
      if (handshake_done_)
        fail("peer closed the connection");
      else if (tls() != nullptr)
        fail("peer closed the connection during the handshake");
      else
        // What a concentrator that requires TLS does to a version 1 HELLO (it logs why).
        fail("peer closed the connection during the handshake (does it take clear text? "
             "a concentrator that requires TLS refuses encryption: none)");
      return;
    }
    if (n < 0) {
      errno = read_errno;
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        update_watch();  // a handshake flight may wait for the socket
        return;
      }
      transport_failed("read");
      return;
    }
    if (static_cast<std::size_t>(n) == space) read_chunk_ = std::min(kReadChunk, read_chunk_ * 2);
    in_len_ += static_cast<std::size_t>(n);
    ctx_.stats.add(Counter::tunnel_rx_bytes, static_cast<std::uint64_t>(n));
    last_rx_ = ev_now(ctx_.loop);
    keepalives_unanswered_ = 0;

    std::size_t off = 0;
    wire::DecodeStatus bad = wire::DecodeStatus::Ok;
    while (state_ != State::Closed) {
      auto d = wire::decode({in_.data() + off, in_len_ - off});
      if (d.status == wire::DecodeStatus::NeedMore) break;
      if (d.status != wire::DecodeStatus::Ok) {
        bad = d.status;
        break;
      }
      off += d.consumed;
      ctx_.stats.add(Counter::tunnel_rx_frames);
      handler_.on_frame(*this, d.frame);
    }
    handler_.on_frames_done(*this);
    if (bad != wire::DecodeStatus::Ok && state_ != State::Closed) {
      ctx_.stats.add(Counter::tunnel_protocol_errors);
      fail(std::string("protocol error: ") + wire::to_string(bad));
      return;
    }
    if (state_ == State::Closed) return;
    if (off > 0) {
      std::memmove(in_.data(), in_.data() + off, in_len_ - off);
      in_len_ -= off;
    }
    // What is left is the start of a frame. Before the handshake a peer does not get to
    // size our read buffer (the next round's) with the length it declares.
    if (!handshake_done_ && in_len_ >= wire::kHeaderSize &&
        wire::frame_size(in_.data()) > kMaxHandshakeFrame) {
      ctx_.stats.add(Counter::tunnel_protocol_errors);
      fail("protocol error: a frame of " + std::to_string(wire::frame_size(in_.data())) +
           " bytes before the handshake completed (at most " +
           std::to_string(kMaxHandshakeFrame) + ")");
      return;
    }
    // A short read took everything there was: the (level-triggered) watcher says when
    // more comes, without a read that would only return EAGAIN.
    if (static_cast<std::size_t>(n) < space) return;
  }
}

void Connection::on_keepalive_timer() {
  if (state_ != State::Open) {
    if (state_ == State::Connecting) {
      ctx_.stats.add(Counter::tunnel_connect_failures);
      fail("connect " + peer_.str() + ": timed out");
    }
    return;
  }
  if ((express || carrier) && opts_.express_dscp != 0 && opts_.express_priority != 0)
    mark(false);
  const double period = std::chrono::duration<double>(opts_.keepalive).count();
  const double silent = ev_now(ctx_.loop) - last_rx_;
  if (opts_.keepalive_role == ConnectionOptions::Keepalive::Probe) {
    if (silent >= period) {
      if (keepalives_unanswered_ >= 3) {
        fail("peer silent for " + std::to_string(static_cast<int>(silent)) + " s");
        return;
      }
      ++keepalives_unanswered_;
      if (send(wire::Keepalive{true})) ctx_.stats.add(Counter::tunnel_keepalives_tx);
    }
  } else if (opts_.keepalive_role == ConnectionOptions::Keepalive::Expect &&
             silent >= 4 * period) {
    fail("peer silent for " + std::to_string(static_cast<int>(silent)) + " s");
    return;
  }
  keepalive_timer_.start(period);
}

void Connection::shut() {
  if (state_ == State::Closed && !fd_) return;
  // What is still queued here is lost with the connection: each datagram is counted, as
  // a drop, exactly once (written ones were counted as tunnel_tx_datagrams).
  ctx_.stats.drop(Drop::shutdown, queued_datagrams());
  backlog_.clear();
  express_queue_.clear();
  held_ = false;
  io_.stop();
  keepalive_timer_.stop();
  handshake_timer_.stop();
  retry_timer_.stop();
  trim_timer_.stop();
  ctx_.flusher.cancel(this);
  fd_.reset();
  state_ = State::Closed;
}

void Connection::fail(std::string_view reason) {
  if (state_ == State::Closed) return;
  const bool was_open = state_ == State::Open;
  shut();
  if (was_open) ctx_.stats.add(Counter::tunnel_disconnects);
  handler_.on_closed(*this, reason);
}

void Connection::close() {
  if (state_ == State::Open) ctx_.stats.add(Counter::tunnel_disconnects);
  shut();
}

void Connection::abort() {
  if (fd_) set_abortive_close(fd_.get());
  close();
}

}  // namespace mpudp

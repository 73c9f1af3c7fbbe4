// One stream connection between the proxies, MPTCP when the kernel has it. It frames and
// deframes; what frames mean is the handler's business.
//
// Writes are coalesced: frames queued during one loop iteration leave in a single write()
// just before the loop blocks again (see Flusher). What the kernel holds unsent is kept
// to tunnel.target_delay at the rate the subflows send (SendLimit); the rest waits here,
// in two queues:
//   - express: frames of sparse flows, flows with nothing else waiting (a VoIP or DNS
//     flow next to a bulk transfer). It goes first, so their datagrams wait behind at
//     most a datagram or a few small ones of each other sparse flow, never behind a
//     backlog;
//   - backlog: everything else. Bounded in time: a write drops DATA frames that waited
//     too long at the head (tunnel.queue_target/queue_interval, CoDel, sojourn.h;
//     counted tunnel_queue_sojourn), so the flows that overload the tunnel are the ones
//     that lose, while a burst the paths drain soon passes whole. Bounded in memory by
//     tunnel.queue_bytes, sized for bursts: when full, the datagram is dropped (counted
//     by the caller, tunnel_queue_full).
// A flow's order is kept: it enters the express queue only when none of its frames waits
// in the backlog (QueueMark); the express queue leaves before the backlog. A flow may
// have up to kExpressRunBytes waiting in express (always at least one frame): when the
// kernel takes nothing for a while (its send buffer full until data-level acks come
// back, a CPU-starved router reading a burst in one go), a call's next datagrams still
// go express instead of into a full backlog, while a bulk flow, which always has frames
// in the backlog under overload, never gets in. Queues switch only at frame boundaries.
//
// The parts: each queue is a FrameQueue; which queue a frame joins and what one write
// takes from them are pure functions (write_scheduler.h); the bytes meet the socket in a
// Transport (plain; the TLS record layer takes its place); the socket is made, tuned and
// marked in socket_setup.h. What is left here is the socket's lifecycle, the send
// limit's bookkeeping, the held AUTH slot, keepalive and the timers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "binding/clock.h"
#include "ctl/stats.h"
#include "io/fd.h"
#include "io/loop.h"
#include "net/endpoint.h"
#include "net/queue_mark.h"
#include "tunnel/frame_queue.h"
#include "tunnel/send_limit.h"
#include "tunnel/sojourn.h"
#include "tunnel/tls.h"
#include "tunnel/transport.h"
#include "tunnel/write_scheduler.h"
#include "wire/frame.h"

namespace mpudp {

class Connection;

// The reason on_closed gets when the handshake deadline passed.
inline constexpr std::string_view kHandshakeTimeoutReason = "handshake not completed in time";

class ConnectionHandler {
 public:
  virtual ~ConnectionHandler() = default;
  virtual void on_connected(Connection&) {}
  // The transport can carry frames: at once for plain, after the TLS handshake for TLS
  // (then the peer's identity is known: Connection::tls()). Frames queued before wait.
  virtual void on_secured(Connection&) {}
  // Called for each decoded frame; spans in `f` are valid only during the call. The
  // handler may close the connection from here; no further frames are delivered then.
  virtual void on_frame(Connection& c, const wire::Frame& f) = 0;
  // After the frames of one read: the last moment their spans are valid (the buffer
  // moves next). Work batched from them must be finished here.
  virtual void on_frames_done(Connection&) {}
  // The connection is closed (fd gone). Destroy it with Deferred::destroy_later, not now.
  virtual void on_closed(Connection& c, std::string_view reason) = 0;
};

// Gathers connections with queued frames and writes each once before the loop blocks.
class Flusher {
 public:
  explicit Flusher(Deferred& deferred);
  void schedule(Connection* c);
  void cancel(Connection* c);

 private:
  void run();
  std::vector<Connection*> pending_;
  std::vector<Connection*> running_;
};

struct ConnectionOptions {
  // A memory bound (docs/HARDENING.md): a reply burst of 256 flows × 1200 B (300 KB with
  // framing) fits several times over; how long frames may wait is the sojourn bound's.
  std::size_t queue_bytes = 2 * 1024 * 1024;
  // tunnel.queue_target and queue_interval: CoDel's (SojournDropper), in both queues.
  Duration queue_target = std::chrono::milliseconds(5);
  Duration queue_interval = std::chrono::milliseconds(100);
  // Multiplexed sessions only (a per-binding connection lives and dies with its binding's
  // idle timeout): the CPE probes after `keepalive` of silence and gives up after 3
  // unanswered probes; the concentrator gives up after 4 periods of silence.
  enum class Keepalive : std::uint8_t { Off, Probe, Expect };
  Keepalive keepalive_role = Keepalive::Off;
  Duration keepalive = std::chrono::seconds(15);
  // Unsent data the kernel may hold, as time at the subflows' sending rate; zero leaves
  // the kernel's own send buffer sizing alone (only TCP_NOTSENT_LOWAT applies then).
  // The daemon sets it from tunnel.target_delay (whose default this is).
  Duration target_delay = std::chrono::milliseconds(20);
  // The limit also counts what waits in the paths' queues (queued_in_path).
  bool limit_path_queue = false;
  // Marks of an express connection's packets (make_express): SO_PRIORITY and DSCP.
  int express_priority = 6;
  int express_dscp = 0;
  // tunnel.congestion_control: the subflows' TCP congestion control; empty leaves the
  // system's default (and restores it when a reload empties it).
  std::string congestion_control;
  // tunnel.copy_congestion_control, a copy carrier's (make_carrier); empty: the above.
  std::string copy_congestion_control;
  // tunnel.receive_buffer: SO_RCVBUF of the connection's socket once the handshake is
  // complete (apply_receive_buffer); 0 keeps autotuning.
  std::size_t receive_buffer = 0;
  // A queue buffer a burst grew past kKeepBytes is given back when found empty this
  // long after it grew (and looked at again after as long while it is in use), so that a
  // concentrator holding many long-lived sessions does not keep every one's largest
  // burst for good.
  Duration trim_after = std::chrono::seconds(10);
};

struct ConnectionContext {
  Loop* loop;
  Deferred& deferred;
  Flusher& flusher;
  Stats& stats;
  // Stamps queued frames (sojourn times); null: the steady clock.
  const Clock* clock = nullptr;
};

class Connection {
 public:
  enum class State : std::uint8_t { Connecting, Open, Closed };

  // Starts a non-blocking connect. nullptr with `err` set when no socket could be made.
  // `transport` null: clear text (PlainTransport). With a `device`, a plain TCP
  // connection bound to that interface (SO_BINDTODEVICE): a copy carrier, one path.
  static std::unique_ptr<Connection> connect(const ConnectionContext& ctx,
                                             const Endpoint& peer,
                                             const ConnectionOptions& opts,
                                             ConnectionHandler& handler, std::string* err,
                                             std::unique_ptr<Transport> transport = nullptr,
                                             const std::string& device = {});
  static std::unique_ptr<Connection> adopt(const ConnectionContext& ctx, Fd fd,
                                           const Endpoint& peer,
                                           const ConnectionOptions& opts,
                                           ConnectionHandler& handler,
                                           std::unique_ptr<Transport> transport = nullptr);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Queues a frame. false when it does not fit in the bounded queue or the connection
  // is closed; the caller counts the drop.
  // With `mark` (the flow's, see QueueMark) the frame may take the express queue.
  bool send(const wire::Frame& f, QueueMark* mark = nullptr);
  bool send_data(std::uint32_t flow_id, std::span<const std::uint8_t> payload,
                 QueueMark* mark = nullptr);

  // Reserves room for `placeholder` (a frame of the size the real one will have) at the
  // end of the queue and holds everything queued after it: bytes before the slot still
  // leave, the slot and what follows wait for fill_held_slot. The CPE queues its AUTH
  // this way right behind its HELLO, so datagrams arriving before the concentrator has
  // proved the key are kept (within queue_bytes) instead of sent or dropped.
  bool reserve_held_slot(const wire::Frame& placeholder);
  // Writes `f` (same encoded size as the placeholder) into the slot and releases the hold.
  bool fill_held_slot(const wire::Frame& f);
  bool holding() const { return held_; }

  // Fails the connection ("handshake not completed within N s", counted as
  // handshake_timeouts) unless handshake_complete() is called within `after`.
  void start_handshake_deadline(Duration after);
  // Also opens the express queue: from then on sparse flows may go ahead of the backlog,
  // once what was queued before (HELLO, AUTH) has left.
  void handshake_complete();

  // Closes now; queued bytes are lost (their datagrams counted as dropped, `shutdown`).
  // on_closed is *not* called for closes the owner asks for itself.
  void close();
  // Closes with SO_LINGER 0: the kernel sends RST, for MPTCP an MP_FASTCLOSE.
  void abort();
  // Closes now and tells the handler (on_closed with `reason`), as when the connection
  // fails by itself: for a handler that finds the peer at fault inside on_frame.
  void fail(std::string_view reason);

  State state() const { return state_; }
  bool open() const { return state_ == State::Open; }
  bool usable() const { return state_ != State::Closed; }
  // False for plain TCP: the kernel lacked MPTCP or the peer fell back.
  bool is_mptcp() const { return mptcp_; }
  const Endpoint& peer() const { return peer_; }
  // Who the peer is, for the peer slot of log lines (log.h): its address until a
  // handshake proves an identity and says so with set_identity().
  std::string_view identity() const { return identity_; }
  void set_identity(std::string id) { identity_ = std::move(id); }
  std::uint32_t id() const { return id_; }
  int fd() const { return fd_.get(); }
  // The TLS session of an encrypting connection (null in clear text, and for a peer an
  // accept_cleartext concentrator serves in clear).
  const TlsSession* tls() const;
  // Frames can leave (the TLS handshake is over, or there is none).
  bool secured() const { return secured_; }
  std::size_t queued_bytes() const { return backlog_.size() + express_queue_.size(); }
  std::size_t express_bytes() const { return express_queue_.size(); }
  // Datagrams (DATA, OPEN with payload) queued here and not yet whole in the kernel.
  std::uint64_t queued_datagrams() const;
  // User-space memory the connection's buffers hold (read buffer, backlog, express queue).
  std::size_t buffer_bytes() const {
    return in_.capacity() + backlog_.capacity() + express_queue_.capacity();
  }
  // The express queue is past half full and standing: new flows are turned away so that
  // the sparse flows already running keep the rest ("at a cap, new work is refused, old
  // work continues"). Standing: its head has waited longer than tunnel.queue_target, or
  // CoDel is dropping from it. A burst of first datagrams that the paths take within the
  // target (a page load's 256 new flows on an idle tunnel) is no congestion: turned
  // away, each would have waited a second for its application to send again. A full
  // backlog alone does not turn new flows away either: it is the bulk flows' backlog,
  // and a new flow's first datagram does not queue behind it.
  bool congested() const;
  // Unsent bytes the kernel may hold now (0: no limit applies).
  std::size_t send_limit() const { return limit_ ? limit_->limit() : 0; }
  double send_rate() const { return limit_ ? limit_->rate() : 0; }

  static constexpr std::size_t kExpressBytes = 32 * 1024;
  // Each buffer keeps up to this much between bursts (see ConnectionOptions::trim_after).
  static constexpr std::size_t kKeepBytes = 16 * 1024;
  // What one flow may have waiting in the express queue beyond its first frame.
  static constexpr std::uint32_t kExpressRunBytes = mpudp::kExpressRunBytes;
  // Options for a live connection (reload): the queue bound and send limit apply at once,
  // the keepalive period from the next tick, an express connection's marks at once.
  void set_options(const ConnectionOptions& opts);
  const ConnectionOptions& options() const { return opts_; }

  // The express connection of a multiplexed session (light flows only); for status.
  bool express = false;
  // A copy carrier (tunnel.copies): the interface it is bound to on the CPE ("" on the
  // concentrator, which knows it by its peer address), and the sequenced datagrams whose
  // first copy came on it: which uplink carries the calls.
  bool carrier = false;
  std::string carrier_interface;
  std::uint64_t first_arrivals = 0;
  // A spare carrier (tunnel.copy_spares): one of its uplink's extra ones, for the data
  // path to choose among (core/copy_plan.h) and to carry more copies while an uplink is
  // dark.
  bool spare = false;
  // A carrier stalled, as carrier_stalled() (tunnel/socket_setup.h) reads its TCP_INFO,
  // or pathless(); read at most every 10 ms, so the data path may ask per datagram.
  bool stalled() const;
  // An open MPTCP connection with no subflow left: it delivers nothing until one joins,
  // so light flows take the main connection meanwhile. Cached as stalled().
  bool pathless() const;
  // Was stalled() within the last second and is not now: it delivers again, but from a
  // window of one segment. Cached as stalled().
  bool recovering() const;
  // carrier_exposure() (tunnel/socket_setup.h) of its last probe, plus a segment for each
  // frame given to it since (frames queued in this loop turn are flushed at its end; a
  // window that holds them back shows as a full window at the next probe):
  // the data path's choice of carrier for a copy, lower is better.
  std::uint32_t exposure() const;
  // Makes this a copy carrier and marks its packets as an express connection's.
  void make_carrier(std::string interface);
  // An accepted connection whose handshake said what it is: a fallback to plain TCP is
  // counted (tunnel_fallbacks) and logged now, unless it is a copy carrier.
  void report_fallback();
  // Makes this the express connection and marks its packets (options' express_priority
  // and express_dscp), for every subflow: MPTCP copies both to the subflows it has and
  // the ones it opens later.
  void make_express();

  void flush();  // Flusher's entry; writes queued bytes once

 private:
  Connection(const ConnectionContext& ctx, Fd fd, const Endpoint& peer,
             const ConnectionOptions& opts, ConnectionHandler& handler, bool connecting,
             std::unique_ptr<Transport> transport);
  std::uint8_t* reserve(std::size_t n, std::size_t headroom, QueueMark* mark);
  void commit(std::size_t n, QueueMark* mark);
  // Bytes the send limit still allows the kernel (negative: over it), or kNoLimit.
  std::int64_t kernel_room(std::size_t want);
  // The backlog bytes that may leave now: up to the held slot while there is one.
  LaneState sendable_backlog() const {
    return backlog_lane(backlog_.size(), backlog_.cut(), backlog_.head_pos(), held_, held_at_);
  }
  // Writes what plan_write allows within `room` (kernel_room), through transport_.
  void write_out(std::int64_t room);
  // Drops what waited too long at the heads of the queues (SojournDropper), counted.
  void drop_stale(TimePoint now);
  TimePoint now() const { return ctx_.clock != nullptr ? ctx_.clock->now() : SteadyClock::now(); }
  void on_retry_timer();
  void on_io(int revents);
  void on_connect_done();
  void read_frames();
  void on_keepalive_timer();
  // Starts the trim timer when a buffer has grown past kKeepBytes (called when one grew).
  void arm_trim() {
    if (!trim_timer_.active() &&
        (backlog_.allocated() > kKeepBytes || express_queue_.allocated() > kKeepBytes ||
         in_.size() > kKeepBytes))
      trim_timer_.start(std::chrono::duration<double>(opts_.trim_after).count());
  }
  void on_trim_timer();
  // Whether MPTCP fell back to TCP; counted and logged now, or with `report` false (an
  // accepted connection) at report_fallback().
  void check_fallback(bool report = true);
  bool fallback_unreported_ = false;
  void shut();
  void update_watch();

  ConnectionContext ctx_;
  ConnectionOptions opts_;
  ConnectionHandler& handler_;
  Fd fd_;
  // Every byte to and from fd_ passes here (plain today; the TLS record layer later).
  std::unique_ptr<Transport> transport_;
  Endpoint peer_;
  std::string identity_;
  std::uint32_t id_;
  State state_;
  bool mptcp_ = true;
  bool flush_scheduled_ = false;
  bool secured_ = false;  // on_secured has been called
  // Checks whether the transport has just become ready, and tells the handler.
  void check_secured();
  // Fails the connection for what the transport reported (EPROTO), counted by kind.
  void transport_failed(std::string_view during);
  IoWatcher io_;
  Timer keepalive_timer_;
  Timer handshake_timer_;
  // Wakes flush() while the send limit, not the socket, holds bytes back: the socket
  // stays writable then, so EV_WRITE would spin.
  Timer retry_timer_;
  Timer trim_timer_;  // gives grown buffers back (ConnectionOptions::trim_after)
  std::unique_ptr<SendLimit> limit_;  // null: target_delay 0, or the kernel cannot tell
  std::uint64_t written_ = 0;         // bytes ever handed to the kernel
  std::uint64_t written_seen_ = 0;    // written_ at the last look at the kernel
  std::uint64_t unsent_seen_ = 0;     // unsent bytes in the kernel then
  bool sampled_ = false;              // the kernel has answered at least once
  bool limited_ = false;              // the last flush left bytes for lack of room
  // The held slot, as a position in the stream (bytes ever queued), so that compacting
  // the buffer does not move it. Everything from held_at_ on waits while held_.
  bool held_ = false;
  std::uint64_t held_at_ = 0;
  std::size_t held_len_ = 0;
  double last_rx_ = 0;
  // stalled()'s and pathless()'s cache, refreshed by probe_paths() every 10 ms.
  void probe_paths() const;
  mutable double paths_checked_ = -1.0;
  mutable bool stalled_ = false;
  mutable bool pathless_ = false;
  mutable double all_acked_at_ = 0;  // the last probe that saw nothing in flight
  mutable double stalled_at_ = -1e9;  // the last probe that found it stalled
  mutable std::uint32_t exposure_ = 0;
  mutable std::uint32_t frames_since_probe_ = 0;
  int keepalives_unanswered_ = 0;

  std::vector<std::uint8_t> in_;
  std::size_t in_len_ = 0;
  static constexpr std::size_t kFirstReadChunk = 2 * 1024;
  std::size_t read_chunk_ = kFirstReadChunk;  // grows while reads fill the buffer (up to kReadChunk)
  FrameQueue backlog_;
  FrameQueue express_queue_;
  SojournDropper backlog_sojourn_;
  SojournDropper express_sojourn_;
  // Only one of the two can hold a frame a partial write cut: that queue goes on until
  // the frame is whole.
  bool reserved_express_ = false;
  bool handshake_done_ = false;
  std::uint64_t express_from_ = 0;  // backlog position that must have left first
  bool kernel_full_ = false;        // the socket refused bytes: wait for EV_WRITE

  // The express marks: SO_PRIORITY, and the DSCP if `with_tos`; a zero (unset) value is
  // written only when `reset` (a reload took a mark away).
  void mark(bool with_tos, bool reset = false);

  friend class Flusher;
};

}  // namespace mpudp

// The concentrator's UDP side: each binding sends from one socket, so every remote that
// client endpoint talks to sees the same external address:port (endpoint-independent
// mapping, RFC 4787 REQ-1), and replies come back on it.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "binding/binding_table.h"
#include "ctl/stats.h"
#include "io/fd.h"
#include "io/loop.h"
#include "io/recv_batch.h"
#include "io/send_batch.h"
#include "net/endpoint.h"
#include "wire/frame.h"

namespace mpudp {

// Each relay socket's receive buffer (why: relay_socket.cc). Above net.core.rmem_max it
// takes SO_RCVBUFFORCE, and with it CAP_NET_ADMIN (core/privileges.cc).
inline constexpr int kRelayRcvbuf = 1 << 20;

class RemoteSink {
 public:
  virtual ~RemoteSink() = default;
  virtual void on_remote_datagram(Binding& b, const Endpoint& from,
                                  std::span<const std::uint8_t> payload) = 0;
  // An ICMP(v6) error said a datagram of `b` to `remote` did not arrive (already within
  // the binding's rate); `length`: its UDP payload bytes, as far as the error quoted them.
  virtual void on_remote_error(Binding& b, const Endpoint& remote, wire::IcmpKind kind,
                               std::uint16_t mtu, std::size_t length) = 0;
};

// Errors passed on per binding: a bucket of kIcmpBurst, refilled at kIcmpRate a second.
// A server answering a flood with port unreachables must not become a flood of frames.
inline constexpr double kIcmpRate = 10;
inline constexpr double kIcmpBurst = 10;

class RelaySocket final : public BindingEdge {
 public:
  // An unconnected UDP socket of `family` on an ephemeral port, reading into `batch`,
  // sending through `sends`.
  static std::unique_ptr<RelaySocket> open(Loop* loop, Family family, Binding& owner,
                                           RecvBatch& batch, SendBatch& sends, RemoteSink& sink,
                                           Stats& stats, std::string* err);
  // Queues a datagram to a remote in the send batch, which counts it, and the binding's
  // upstream traffic, once sent (see SendBatch for how long `payload` must live).
  void send_to(const Endpoint& remote, std::span<const std::uint8_t> payload);
  Endpoint local() const;
  // The port it is bound to (taken once, at open): the binding's public port.
  std::uint16_t port() const { return port_; }
  // The address:port the remotes see, as the binding log recorded it at creation (the
  // socket is bound to the wildcard address, so the kernel's route supplies the address).
  const Endpoint& external() const { return external_; }
  void set_external(const Endpoint& e) { external_ = e; }
  // Stops reading and closes the socket; the object itself may be freed later.
  void close();
  // Stops reading but keeps the port: see ConcentratorProxy's quarantine.
  void quiesce();

 private:
  RelaySocket(Loop* loop, Fd fd, Binding& owner, RecvBatch& batch, SendBatch& sends,
              RemoteSink& sink, Stats& stats);
  void on_readable();
  // Reads the socket's error queue (IP_RECVERR): each ICMP error about a datagram this
  // socket sent goes to the sink, within the rate.
  void drain_errors();
  bool icmp_allowed();

  Loop* loop_;
  Fd fd_;
  Binding& owner_;
  RecvBatch& batch_;
  SendBatch& sends_;
  RemoteSink& sink_;
  Stats& stats_;
  OverflowCount overflow_;
  IoWatcher io_;
  Endpoint external_;
  double icmp_tokens_ = kIcmpBurst;
  double icmp_at_ = 0;
  double errors_read_at_ = 0;  // ev_now() of the last drain_errors()
  std::uint16_t port_ = 0;
};

}  // namespace mpudp

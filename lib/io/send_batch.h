// Outgoing UDP datagrams gathered while one tunnel read is decoded, sent with one
// sendmmsg() per socket instead of a sendto() each: a 64 KiB read carries ~50 datagrams,
// and the syscall per datagram was the largest cost left on the reply path. One per event
// loop, shared by every socket the loop sends from.
//
// The batch holds pointers, not copies: the payloads (in the tunnel connection's read
// buffer), the sockets and the per-binding counters must outlive the next flush(). The
// owner therefore flushes before the read buffer moves (end of each decoded read), before
// a binding (its socket, its counters) goes away, and before a cached socket is closed.
// A full batch flushes itself.
//
// Order is kept per socket (a flow's datagrams leave one socket); datagrams of different
// sockets may leave in a different order than they were added.
#pragma once

#include <sys/socket.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "net/endpoint.h"

namespace mpudp {

// What a datagram is counted as when it leaves (Report::on_sent's `kind`).
enum SendKind : int { kSendLan = 0, kSendWan = 1 };

class SendBatch {
 public:
  // Told the outcome of each datagram at flush, with the `kind` it was added with.
  class Report {
   public:
    virtual ~Report() = default;
    virtual void on_sent(int kind, std::size_t bytes) = 0;
    virtual void on_send_failed(int kind, int err, const sockaddr* to, socklen_t to_len) = 0;
  };

  static constexpr std::size_t kSlots = 64;

  explicit SendBatch(Report& report) : report_(report) {}
  SendBatch(const SendBatch&) = delete;
  SendBatch& operator=(const SendBatch&) = delete;

  // Queues `payload` for `fd` to `to`. On success `datagrams` and `bytes` (when not null)
  // are incremented at flush.
  void add(int fd, const Endpoint& to, int kind,
           std::span<const std::uint8_t> payload, std::uint64_t* datagrams = nullptr,
           std::uint64_t* bytes = nullptr);
  void flush();
  bool empty() const { return n_ == 0; }

 private:
  struct Item {
    int fd;
    int kind;
    socklen_t to_len;
    const std::uint8_t* data;
    std::size_t len;
    std::uint64_t* datagrams;
    std::uint64_t* bytes;
    sockaddr_storage to;
  };
  void send_run(std::size_t count);

  Report& report_;
  std::size_t n_ = 0;
  std::array<Item, kSlots> items_{};
  std::array<std::uint16_t, kSlots> run_{};  // indices into items_ of one socket's run
  std::array<mmsghdr, kSlots> msgs_{};
  std::array<iovec, kSlots> iov_{};
};

}  // namespace mpudp

// Where LAN datagrams arrive on the CPE and replies leave: the TPROXY listening sockets
// (one per address family) and the cache of transparent sockets that answer clients from
// the original destination address:port.
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>

#include "ctl/stats.h"
#include "io/fd.h"
#include "io/loop.h"
#include "io/recv_batch.h"
#include "io/send_batch.h"
#include "net/endpoint.h"

namespace mpudp {

class LanSink {
 public:
  virtual ~LanSink() = default;
  // `dscp`: the datagram's DSCP as the client marked it (0: unmarked).
  virtual void on_lan_datagram(const Endpoint& client, const Endpoint& orig_dst,
                               std::span<const std::uint8_t> payload, std::uint8_t dscp) = 0;
};

class TproxySocket {
 public:
  // Binds a transparent UDP socket to the wildcard address of `family` on `port`.
  static std::unique_ptr<TproxySocket> open(Loop* loop, Family family, std::uint16_t port,
                                            RecvBatch& batch, LanSink& sink, Stats& stats,
                                            std::string* err);
  TproxySocket(const TproxySocket&) = delete;
  TproxySocket& operator=(const TproxySocket&) = delete;

 private:
  TproxySocket(Loop* loop, Fd fd, RecvBatch& batch, LanSink& sink, Stats& stats);
  void on_readable();

  Fd fd_;
  RecvBatch& batch_;
  LanSink& sink_;
  Stats& stats_;
  OverflowCount overflow_;
  IoWatcher io_;
};

// Transparent sockets bound to original destinations, least recently used closed first
// beyond `max`. One socket answers every client of that destination.
class ReplySockets {
 public:
  ReplySockets(std::size_t max, SendBatch& sends, Stats& stats)
      : max_(max), sends_(sends), stats_(stats) {}
  // Queues `payload` to `client` from `from` in the send batch, which counts it (and
  // bumps `datagrams` and `bytes`) once sent; false (counted) when no socket could be
  // had for `from`.
  bool send(const Endpoint& from, const Endpoint& client, std::span<const std::uint8_t> payload,
            std::uint64_t* datagrams, std::uint64_t* bytes);
  std::size_t size() const { return map_.size(); }

 private:
  struct Entry {
    Endpoint from;
    Fd fd;
  };
  int get(const Endpoint& from);

  std::size_t max_;
  SendBatch& sends_;
  Stats& stats_;
  std::list<Entry> lru_;  // front = most recently used
  std::unordered_map<Endpoint, std::list<Entry>::iterator, EndpointHash> map_;
};

}  // namespace mpudp

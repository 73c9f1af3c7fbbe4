// Connection's held slot: bytes queued behind a reserved AUTH slot do not leave until the
// slot is filled, and the slot is written in place even after the queue was compacted.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cstdint>
#include <vector>

#include "io/fd.h"
#include "io/loop.h"
#include "tunnel/connection.h"
#include "wire/frame.h"

using namespace mpudp;

namespace {

struct NullHandler final : ConnectionHandler {
  void on_frame(Connection&, const wire::Frame&) override {}
  void on_closed(Connection&, std::string_view) override {}
};

std::vector<std::uint8_t> drain(int fd) {
  std::vector<std::uint8_t> out;
  std::uint8_t buf[65536];
  for (;;) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n <= 0) break;
    out.insert(out.end(), buf, buf + n);
  }
  return out;
}

// Declared first in Rig, so the loop outlives the watchers of every other member.
struct LoopOwner {
  Loop* loop = ev_loop_new(EVFLAG_AUTO);
  ~LoopOwner() { ev_loop_destroy(loop); }
};

struct Rig {
  LoopOwner owner;
  Loop* loop = owner.loop;
  Deferred deferred{loop};
  Flusher flusher{deferred};
  Stats stats;
  NullHandler handler;
  int peer = -1;
  std::unique_ptr<Connection> conn;
  Rig() {
    int sv[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == 0);
    peer = sv[1];
    conn = Connection::adopt({loop, deferred, flusher, stats}, Fd(sv[0]), Endpoint{},
                             ConnectionOptions{}, handler);
  }
  ~Rig() {
    conn.reset();
    ::close(peer);
  }
  void spin() {
    for (int i = 0; i < 4; ++i) ev_run(loop, EVRUN_NOWAIT);
  }
};

std::vector<std::uint8_t> bytes_of(const wire::Frame& f) {
  std::vector<std::uint8_t> b(wire::encoded_size(f));
  wire::encode(f, b);
  return b;
}

}  // namespace

TEST_CASE("frames behind a held slot wait for it", "[connection][auth]") {
  Rig r;
  const wire::Hello hello{wire::kVersion, wire::Role::Cpe, wire::SessionMode::PerBinding,
                          wire::kCapAuth, {}};
  REQUIRE(r.conn->send(hello));
  REQUIRE(r.conn->reserve_held_slot(wire::Auth{}));
  CHECK(!r.conn->reserve_held_slot(wire::Auth{}));  // one slot at a time
  const std::array<std::uint8_t, 3> payload{1, 2, 3};
  REQUIRE(r.conn->send_data(7, payload));
  r.spin();
  CHECK(drain(r.peer) == bytes_of(hello));  // the HELLO leaves, nothing after it

  wire::Auth proof;
  proof.mac.fill(0xee);
  CHECK(!r.conn->fill_held_slot(wire::Keepalive{}));  // another size: refused
  REQUIRE(r.conn->fill_held_slot(proof));
  CHECK(!r.conn->holding());
  r.spin();
  std::vector<std::uint8_t> want = bytes_of(proof);
  const auto data = bytes_of(wire::Data{7, payload});
  want.insert(want.end(), data.begin(), data.end());
  CHECK(drain(r.peer) == want);
}

TEST_CASE("held frames count against the queue bound", "[connection][auth]") {
  Rig r;
  REQUIRE(r.conn->reserve_held_slot(wire::Auth{}));
  std::vector<std::uint8_t> big(60000, 0xab);
  int queued = 0;
  while (r.conn->send_data(1, big) && queued < 100) ++queued;
  CHECK(queued >= 3);   // 256 KiB default
  CHECK(queued < 100);  // but not without bound
  r.spin();
  CHECK(drain(r.peer).empty());
  // Filling the slot releases everything, in order, slot first.
  wire::Auth proof;
  proof.mac.fill(0x11);
  REQUIRE(r.conn->fill_held_slot(proof));
  std::vector<std::uint8_t> got;
  for (int i = 0; i < 200 && got.size() < 36 + static_cast<std::size_t>(queued) * 60008; ++i) {
    r.spin();
    auto more = drain(r.peer);
    got.insert(got.end(), more.begin(), more.end());
  }
  REQUIRE(got.size() == 36 + static_cast<std::size_t>(queued) * 60008);
  CHECK(std::vector<std::uint8_t>(got.begin(), got.begin() + 36) == bytes_of(proof));
}

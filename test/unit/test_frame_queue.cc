// FrameQueue: stream positions survive compaction, a cut frame is tracked across partial
// writes, datagrams are counted whole once, the bound holds, and idle memory goes back.
#include <catch2/catch.hpp>

#include <array>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <vector>

#include "tunnel/frame_queue.h"
#include "wire/frame.h"

using namespace mpudp;

namespace {

constexpr std::size_t kCap = 64 * 1024;

// Queues one DATA frame of `len` payload bytes, each `fill`; returns its size.
std::size_t push_data(FrameQueue& q, std::uint32_t flow, std::size_t len, std::uint8_t fill,
                      std::size_t cap = kCap) {
  const std::size_t n = wire::kDataOverhead + len;
  std::uint8_t* p = q.reserve(n, cap, nullptr);
  if (p == nullptr) return 0;
  const std::size_t h = wire::encode_data_header(flow, len, p);
  std::memset(p + h, fill, len);
  q.commit(n);
  return n;
}

std::size_t push(FrameQueue& q, const wire::Frame& f) {
  const std::size_t n = wire::encoded_size(f);
  std::uint8_t* p = q.reserve(n, kCap, nullptr);
  REQUIRE(p != nullptr);
  REQUIRE(wire::encode(f, {p, n}) == n);
  q.commit(n);
  return n;
}

// The frames a reader of the written bytes would decode, by flow and first payload byte.
std::vector<std::pair<std::uint32_t, std::uint8_t>> decode(const std::vector<std::uint8_t>& in) {
  std::vector<std::pair<std::uint32_t, std::uint8_t>> out;
  std::size_t off = 0;
  for (;;) {
    auto d = wire::decode({in.data() + off, in.size() - off});
    if (d.status != wire::DecodeStatus::Ok) break;
    off += d.consumed;
    const auto& data = std::get<wire::Data>(d.frame);
    out.emplace_back(data.flow_id, data.payload.empty() ? 0 : data.payload[0]);
  }
  return out;
}

// Takes up to `n` bytes from the head as a write would.
std::uint64_t write_some(FrameQueue& q, std::size_t n, std::vector<std::uint8_t>& sink) {
  n = std::min(n, q.size());
  sink.insert(sink.end(), q.data(), q.data() + n);
  return q.advance(n);
}

}  // namespace

TEST_CASE("a frame queue starts small and counts stream positions", "[frame_queue]") {
  FrameQueue q;
  CHECK(q.empty());
  CHECK(q.allocated() == 0);
  const std::size_t a = push_data(q, 1, 10, 0xa1);
  CHECK(q.allocated() == FrameQueue::kMinAlloc);
  CHECK(q.size() == a);
  CHECK(q.head_pos() == 0);
  CHECK(q.tail_pos() == a);
  const std::size_t b = push_data(q, 2, 20, 0xb2);
  CHECK(q.tail_pos() == a + b);
  std::vector<std::uint8_t> sink;
  CHECK(write_some(q, a, sink) == 1);
  CHECK(q.head_pos() == a);
  CHECK(q.tail_pos() == a + b);
  CHECK(q.cut() == 0);
}

TEST_CASE("a frame cut by a partial write is tracked until whole", "[frame_queue]") {
  FrameQueue q;
  const std::size_t a = push_data(q, 1, 100, 1);
  push_data(q, 2, 100, 2);
  std::vector<std::uint8_t> sink;
  CHECK(write_some(q, 30, sink) == 0);
  CHECK(q.cut() == a - 30);
  CHECK(q.datagrams() == 2);  // the rest of the cut one, and the whole one
  CHECK(write_some(q, a - 30 - 1, sink) == 0);
  CHECK(q.cut() == 1);
  // The last byte of the first frame and most of the second, in one write.
  CHECK(write_some(q, 50, sink) == 1);
  CHECK(q.cut() == a - 49);
  CHECK(write_some(q, 1000, sink) == 1);
  CHECK(q.empty());
  CHECK(q.cut() == 0);
  CHECK(q.datagrams() == 0);
  CHECK(decode(sink) == std::vector<std::pair<std::uint32_t, std::uint8_t>>{{1, 1}, {2, 2}});
}

TEST_CASE("only frames that carry datagrams count as datagrams", "[frame_queue]") {
  FrameQueue q;
  const Endpoint client = *Endpoint::parse("198.18.0.2:40000");
  const Endpoint remote = *Endpoint::parse("198.18.4.2:7");
  const std::vector<std::uint8_t> payload(5, 7);
  push(q, wire::Open{9, client, remote, true, payload});
  push(q, wire::Open{10, client, remote, false, {}});
  push(q, wire::Close{client, wire::CloseReason::Idle});
  push(q, wire::Keepalive{true});
  push_data(q, 9, 0, 0);  // an empty datagram is a datagram
  CHECK(q.datagrams() == 2);
  std::vector<std::uint8_t> sink;
  CHECK(write_some(q, q.size(), sink) == 2);
  CHECK(q.datagrams() == 0);
}

TEST_CASE("positions keep their meaning when the buffer is compacted", "[frame_queue]") {
  FrameQueue q;
  std::vector<std::uint8_t> sink;
  // Fill most of a small bound, write the front, then queue more: reserve compacts.
  constexpr std::size_t kSmall = 4096;
  std::size_t first = 0;
  while (std::size_t n = push_data(q, 1, 500, 1, kSmall)) first += n;
  CHECK(q.size() == first);
  CHECK(q.size() <= kSmall);
  const std::size_t frame = wire::kDataOverhead + 500;
  write_some(q, 2 * frame + 10, sink);  // two frames and a cut one
  // A place in the queue, as the held AUTH slot is kept: its stream position.
  const std::uint64_t slot = q.tail_pos();
  REQUIRE(push_data(q, 7, 20, 0x77, kSmall) > 0);
  REQUIRE(push_data(q, 8, 20, 0x88, kSmall) > 0);  // needs the room compaction gives
  CHECK(q.allocated() <= kSmall);
  CHECK(q.at(slot)[wire::kDataOverhead] == 0x77);
  // Rewrite it in place (as fill_held_slot does) and check what leaves.
  wire::encode_data_header(6, 20, q.at(slot));
  write_some(q, q.size(), sink);
  const auto got = decode(sink);
  REQUIRE(got.size() >= 3);
  CHECK(got[got.size() - 2] == std::pair<std::uint32_t, std::uint8_t>{6, 0x77});
  CHECK(got.back() == std::pair<std::uint32_t, std::uint8_t>{8, 0x88});
}

TEST_CASE("a frame queue never holds more than its bound", "[frame_queue]") {
  FrameQueue q;
  bool grew = false;
  CHECK(q.reserve(kCap + 1, kCap, &grew) == nullptr);
  CHECK_FALSE(grew);
  REQUIRE(q.reserve(kCap, kCap, &grew) != nullptr);
  CHECK(grew);
  CHECK(q.allocated() == kCap);
  q.commit(kCap - 8);
  CHECK(q.reserve(9, kCap, nullptr) == nullptr);
  grew = false;
  CHECK(q.reserve(8, kCap, &grew) != nullptr);
  CHECK_FALSE(grew);
}

TEST_CASE("a frame queue gives its memory back only when empty", "[frame_queue]") {
  FrameQueue q;
  std::vector<std::uint8_t> sink;
  for (int i = 0; i < 40; ++i) REQUIRE(push_data(q, 1, 1000, 1) > 0);
  const std::size_t big = q.capacity();
  REQUIRE(big > 16 * 1024);
  q.trim(16 * 1024);
  CHECK(q.capacity() == big);  // in use: kept
  write_some(q, q.size() - 1, sink);
  q.trim(16 * 1024);
  CHECK(q.capacity() == big);
  write_some(q, 1, sink);
  q.trim(16 * 1024);
  CHECK(q.capacity() == 0);
  CHECK(q.head_pos() == q.tail_pos());
  // Still usable, and positions go on from where they were.
  const std::uint64_t at = q.tail_pos();
  REQUIRE(push_data(q, 2, 10, 2) > 0);
  CHECK(q.head_pos() == at);
}

TEST_CASE("clearing a frame queue forgets its frames and a cut", "[frame_queue]") {
  FrameQueue q;
  std::vector<std::uint8_t> sink;
  push_data(q, 1, 100, 1);
  push_data(q, 2, 100, 2);
  write_some(q, 10, sink);
  REQUIRE(q.cut() > 0);
  const std::uint64_t end = q.tail_pos();
  q.clear();
  CHECK(q.empty());
  CHECK(q.cut() == 0);
  CHECK(q.datagrams() == 0);
  CHECK(q.head_pos() == end);
}

TEST_CASE("frames carry their enqueue time, in runs", "[frame_queue][sojourn]") {
  using namespace std::chrono_literals;
  FakeClock clock;
  FrameQueue q;
  const auto stamped = [&](std::size_t len) {
    const std::size_t n = wire::kDataOverhead + len;
    std::uint8_t* p = q.reserve(n, kCap, nullptr);
    REQUIRE(p != nullptr);
    wire::encode_data_header(1, len, p);
    q.commit(n, clock.now());
    return n;
  };
  const TimePoint t0 = clock.now();
  const std::size_t a = stamped(100);
  clock.advance(FrameQueue::kStampGranularity / 2);
  const std::size_t b = stamped(100);  // same run as a
  clock.advance(FrameQueue::kStampGranularity);
  const TimePoint t2 = clock.now();
  stamped(100);
  CHECK(q.head_time() == t0);
  q.advance(a);
  CHECK(q.head_time() == t0);  // b joined a's run
  q.advance(b - 10);           // a write cut b: what is judged is the next whole frame
  CHECK(q.head_time() == t2);
  q.advance(10);
  CHECK(q.head_time() == t2);
  q.advance(q.size());
  CHECK(q.empty());
  clock.advance(1s);
  stamped(10);
  CHECK(q.head_time() == clock.now());  // an emptied queue starts afresh

  // Restamping: everything queued counts from now.
  clock.advance(2s);
  stamped(10);
  clock.advance(3s);
  q.restamp(clock.now());
  CHECK(q.head_time() == clock.now());
  q.advance(q.size());

  // Many runs: the ring grows and keeps each run's time.
  std::vector<TimePoint> times;
  std::vector<std::size_t> sizes;
  for (int i = 0; i < 100; ++i) {
    clock.advance(2ms);
    times.push_back(clock.now());
    sizes.push_back(stamped(20));
  }
  for (int i = 0; i < 100; ++i) {
    CHECK(q.head_time() == times[static_cast<std::size_t>(i)]);
    q.advance(sizes[static_cast<std::size_t>(i)]);
  }
  CHECK(q.empty());
}

TEST_CASE("only whole DATA frames are dropped, as if written; a cut frame's rest stays",
          "[frame_queue][sojourn]") {
  FrameQueue q;
  const Endpoint c = *Endpoint::parse("198.18.0.2:40000");
  const Endpoint r = *Endpoint::parse("198.18.4.2:53");
  const std::array<std::uint8_t, 4> pl{1, 2, 3, 4};
  const std::size_t open = push(q, wire::Open{5, c, r, true, pl});
  const std::size_t d1 = push_data(q, 5, 100, 0xa1);
  push_data(q, 5, 100, 0xa2);
  push_data(q, 6, 50, 0xa3);
  const std::size_t close = push(q, wire::Close{c, wire::CloseReason::Idle});
  CHECK(q.droppable_head() == 0);  // OPEN announces the flow: never dropped
  std::vector<std::uint8_t> opened;
  write_some(q, open, opened);
  std::vector<std::uint8_t> sink;
  REQUIRE(q.droppable_head() == d1);
  const std::uint64_t pos = q.head_pos();
  q.drop_head();
  CHECK(q.head_pos() == pos + d1);
  CHECK(q.datagrams() == 2);
  write_some(q, 10, sink);  // a write cut the 0xa2 frame: the 0xa3 one may go, not its rest
  REQUIRE(q.droppable_head() == wire::kDataOverhead + 50);
  const std::uint64_t tail = q.tail_pos();
  q.drop_head();
  CHECK(q.tail_pos() == tail);  // what follows keeps its place in the stream
  CHECK(q.datagrams() == 1);
  CHECK(q.droppable_head() == 0);  // CLOSE
  CHECK(write_some(q, q.size() - close, sink) == 1);
  CHECK(q.size() == close);
  q.advance(close);
  // The reader gets the 0xa2 frame whole (after the OPEN; the CLOSE follows).
  const auto frames = decode(sink);
  REQUIRE(frames.size() == 1);
  CHECK(frames[0] == std::pair<std::uint32_t, std::uint8_t>{5, 0xa2});
  // The last DATA frame dropped empties the queue.
  push_data(q, 1, 10, 0);
  q.drop_head();
  CHECK(q.empty());
  CHECK(q.droppable_head() == 0);
}

// One outgoing byte queue of encoded frames: a connection has two (the backlog and the
// express queue, see connection.h), written from the head by partial writes.
//
// Positions: besides buffer offsets, the queue counts bytes ever queued (its stream
// position), so that a place in it (a flow's last frame, see QueueMark; the held AUTH
// slot) keeps its meaning when the buffer is compacted. A write may end inside a frame:
// the queue remembers how much of that frame is left (`cut`), because nothing from
// another queue may go between its two parts.
//
// Enqueue times: frames are stamped in runs (a stamp is a stream position and the time of
// the commit that started the run), a new run when the time moved kStampGranularity on,
// so a queue costs a stamp per millisecond of arrivals, not one per frame; the head
// frame's time is its run's, early by less than kStampGranularity. Sojourn drops
// (tunnel/sojourn.h) read it.
//
// No IO: the caller writes from data() and reports what the kernel took with advance().
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "binding/clock.h"

namespace mpudp {

class FrameQueue {
 public:
  // Room for `n` more bytes at the tail while at most `cap` bytes are queued: compacts,
  // then grows (doubling, at least kMinAlloc, never past `cap`). nullptr when it does not
  // fit. `*grew` is set when the buffer grew (the owner may want the memory back later,
  // trim()). The bytes count once commit() says so.
  std::uint8_t* reserve(std::size_t n, std::size_t cap, bool* grew);
  void commit(std::size_t n) { tail_ += n; }
  // The same, stamping the bytes as queued at `now` (monotonic, never going back).
  void commit(std::size_t n, TimePoint now);

  std::size_t size() const { return tail_ - head_; }
  bool empty() const { return tail_ == head_; }
  // The first unwritten byte; valid until the next reserve() or trim().
  std::uint8_t* data() { return buf_.data() + head_; }
  // Stream positions of the head (bytes ever written) and of the tail (ever queued).
  std::uint64_t head_pos() const { return stream_head_; }
  std::uint64_t tail_pos() const { return stream_head_ + size(); }
  // The byte at stream position `pos`, which must be in [head_pos(), tail_pos()).
  std::uint8_t* at(std::uint64_t pos) {
    return buf_.data() + head_ + static_cast<std::size_t>(pos - stream_head_);
  }
  // Bytes left of the frame at the head that a partial write cut (0: at a boundary).
  std::size_t cut() const { return cut_; }

  // `n` bytes from the head were written. Returns how many datagrams (DATA, OPEN with
  // payload) thereby became whole in the kernel.
  std::uint64_t advance(std::size_t n);
  // Datagrams queued and not yet whole in the kernel (the rest of a cut frame counts).
  std::uint64_t datagrams() const;
  // The head frame as sojourn drops see it: the first whole one, after the rest of a
  // frame a write cut (under load most writes end inside a frame; that rest must go).
  // When it was queued (the queue must hold it; the epoch for frames committed without
  // a time).
  TimePoint head_time() const;
  // Its size if it may be dropped unwritten: a DATA frame. 0 otherwise (none, OPEN,
  // control frames).
  std::size_t droppable_head() const;
  // Removes it (droppable_head() bytes) unwritten; stream positions move on as if it had
  // been written.
  void drop_head();
  // Every queued frame counts as queued at `now`: for frames that could not leave before
  // (a handshake in progress), whose wait starts when they can.
  void restamp(TimePoint now);

  // Forgets everything queued (the connection is gone); the stream position stays.
  void clear();
  // Gives the buffer back if it is empty and holds more than `keep` bytes.
  void trim(std::size_t keep);

  // Bytes allocated: what reserve() grew the buffer to, and what the vector holds.
  std::size_t allocated() const { return buf_.size(); }
  std::size_t capacity() const { return buf_.capacity(); }

  // A queue starts small: a per-binding connection carrying a call never needs more than
  // a page or so, while a bulk one doubles up to its bound within a few bursts.
  static constexpr std::size_t kMinAlloc = 1024;
  // How far apart runs of stamps are, and how many a queue keeps: past that (a queue
  // holding a second of arrivals), new frames join the newest run and look older than
  // they are, which errs on the side of a short queue.
  static constexpr std::chrono::milliseconds kStampGranularity{1};
  static constexpr std::size_t kMaxStamps = 1024;

 private:
  std::vector<std::uint8_t> buf_;
  std::size_t head_ = 0;
  std::size_t tail_ = 0;
  std::uint64_t stream_head_ = 0;  // stream position of head_
  std::size_t cut_ = 0;
  bool cut_datagram_ = false;  // the cut frame carries a datagram

  struct Stamp {
    std::uint64_t pos;  // stream position of the run's first frame
    TimePoint at;
  };
  // A ring (grown by doubling up to kMaxStamps, like the buffer): stamps_[stamp_first_]
  // is the head frame's run.
  std::vector<Stamp> stamps_;
  std::size_t stamp_first_ = 0;
  std::size_t stamp_count_ = 0;
  // Drops the stamps of runs that have left entirely (the head moved past them).
  void pop_stamps();
  const Stamp& stamp(std::size_t i) const {
    return stamps_[(stamp_first_ + i) % stamps_.size()];
  }
};

}  // namespace mpudp

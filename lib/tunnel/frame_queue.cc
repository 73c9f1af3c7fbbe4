#include "tunnel/frame_queue.h"

#include <algorithm>
#include <cstring>

#include "wire/frame.h"

namespace mpudp {

std::uint8_t* FrameQueue::reserve(std::size_t n, std::size_t cap, bool* grew) {
  if (size() + n > cap) return nullptr;
  if (tail_ + n > buf_.size()) {
    if (head_ > 0) {
      std::memmove(buf_.data(), buf_.data() + head_, size());
      tail_ -= head_;
      head_ = 0;
    }
    if (tail_ + n > buf_.size()) {
      buf_.resize(std::min(cap, std::max({buf_.size() * 2, tail_ + n, kMinAlloc})));
      if (grew != nullptr) *grew = true;
    }
  }
  return buf_.data() + tail_;
}

void FrameQueue::commit(std::size_t n, TimePoint now) {
  const std::uint64_t pos = tail_pos();
  tail_ += n;
  if (stamp_count_ > 0 && (now - stamp(stamp_count_ - 1).at < kStampGranularity ||
                           stamp_count_ == kMaxStamps))
    return;
  if (stamp_count_ == stamps_.size()) {
    // Grows the ring: unrolled into a new vector with the first stamp at index 0.
    std::vector<Stamp> grown;
    grown.reserve(std::max<std::size_t>(8, stamps_.size() * 2));
    for (std::size_t i = 0; i < stamp_count_; ++i) grown.push_back(stamp(i));
    grown.resize(grown.capacity());
    stamps_.swap(grown);
    stamp_first_ = 0;
  }
  stamps_[(stamp_first_ + stamp_count_) % stamps_.size()] = {pos, now};
  ++stamp_count_;
}

void FrameQueue::pop_stamps() {
  if (empty()) {
    stamp_first_ = stamp_count_ = 0;
    return;
  }
  const std::uint64_t head = head_pos();
  while (stamp_count_ > 1 && stamp(1).pos <= head) {
    stamp_first_ = (stamp_first_ + 1) % stamps_.size();
    --stamp_count_;
  }
}

TimePoint FrameQueue::head_time() const {
  const std::uint64_t pos = head_pos() + cut_;
  std::size_t i = 0;
  while (i + 1 < stamp_count_ && stamp(i + 1).pos <= pos) ++i;
  return stamp_count_ > 0 ? stamp(i).at : TimePoint{};
}

std::size_t FrameQueue::droppable_head() const {
  const std::size_t at = head_ + cut_;
  if (at >= tail_) return 0;
  const std::uint8_t* p = buf_.data() + at;
  return p[0] == static_cast<std::uint8_t>(wire::Type::Data) ? wire::frame_size(p) : 0;
}

void FrameQueue::drop_head() {
  const std::size_t n = droppable_head();
  // The rest of a cut frame moves up over the dropped one (it is at most a frame, and
  // usually a part of one): nothing else moves, and the stream positions of what follows
  // stay. The cut frame's own position moves on by n, which only makes it look written
  // sooner to a QueueMark; it still leaves first (plan_write).
  if (cut_ > 0) std::memmove(buf_.data() + head_ + n, buf_.data() + head_, cut_);
  head_ += n;
  stream_head_ += n;
  if (head_ == tail_) head_ = tail_ = 0;
  pop_stamps();
}

void FrameQueue::restamp(TimePoint now) {
  stamp_first_ = stamp_count_ = 0;
  if (empty()) return;
  if (stamps_.empty()) stamps_.resize(8);
  stamps_[0] = {head_pos(), now};
  stamp_count_ = 1;
}

std::uint64_t FrameQueue::advance(std::size_t n) {
  std::uint64_t datagrams = 0;
  stream_head_ += n;
  while (n > 0) {
    if (cut_ == 0) {
      cut_ = wire::frame_size(buf_.data() + head_);
      cut_datagram_ = wire::carries_datagram(buf_.data() + head_);
    }
    const std::size_t take = std::min(n, cut_);
    head_ += take;
    cut_ -= take;
    n -= take;
    if (cut_ == 0 && cut_datagram_) ++datagrams;
  }
  // Empty: the next frames go to the start of the buffer, no compaction needed.
  if (head_ == tail_) head_ = tail_ = 0;
  pop_stamps();
  return datagrams;
}

std::uint64_t FrameQueue::datagrams() const {
  std::uint64_t n = cut_ > 0 && cut_datagram_ ? 1 : 0;
  for (std::size_t at = head_ + cut_; at < tail_; at += wire::frame_size(buf_.data() + at))
    if (wire::carries_datagram(buf_.data() + at)) ++n;
  return n;
}

void FrameQueue::clear() {
  stream_head_ += size();
  head_ = tail_ = 0;
  cut_ = 0;
  cut_datagram_ = false;
  stamp_first_ = stamp_count_ = 0;
}

void FrameQueue::trim(std::size_t keep) {
  // Only an empty buffer is given back: one in use keeps its memory until a later look.
  if (!empty()) return;
  head_ = tail_ = 0;
  if (buf_.capacity() > keep) std::vector<std::uint8_t>().swap(buf_);
  stamp_first_ = stamp_count_ = 0;
  // A queue that once held many milliseconds of arrivals gives its stamps back too; a
  // call's queue keeps its few.
  if (stamps_.size() * sizeof(Stamp) > kMinAlloc) std::vector<Stamp>().swap(stamps_);
}

}  // namespace mpudp

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
}

void FrameQueue::trim(std::size_t keep) {
  // Only an empty buffer is given back: one in use keeps its memory until a later look.
  if (!empty()) return;
  head_ = tail_ = 0;
  if (buf_.capacity() > keep) std::vector<std::uint8_t>().swap(buf_);
}

}  // namespace mpudp

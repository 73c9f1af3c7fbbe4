// Which copies of a flow's datagrams were already delivered (issue 20, redundant delivery):
// a light flow's datagrams go on every uplink's carrier at once, each copy with the same
// per-flow sequence number, and the receiver delivers the first copy to arrive and drops
// the others. Carriers are independent connections, so copies arrive in any order and
// some never do; the window remembers the last kBits sequence numbers below the highest
// one seen, a bit each. Older than that reads as a duplicate: a copy that late (at 50
// datagrams/s, 64 of them are 1.3 s) is of no use to a call, and delivering it could
// repeat one delivered before the window moved.
//
// Sequence numbers are 32 bits and wrap; "newer" is serial-number arithmetic (RFC 1982):
// b is newer than a when (b - a) mod 2^32 is in 1 .. 2^31 - 1.
//
// Pure logic: 16 bytes per flow, no allocation.
#pragma once

#include <cstdint>

namespace mpudp {

class DedupWindow {
 public:
  static constexpr std::uint32_t kBits = 64;

  enum class Verdict : std::uint8_t {
    Deliver,    // first copy: deliver it
    Duplicate,  // a copy of one delivered before (or one too old to tell): drop it
  };

  // Records `seq` and says whether it is new.
  Verdict accept(std::uint32_t seq);
  bool started() const { return started_; }
  std::uint32_t highest() const { return highest_; }

 private:
  bool started_ = false;
  std::uint32_t highest_ = 0;
  // Bit i: highest_ - i was delivered (bit 0 is highest_ itself).
  std::uint64_t seen_ = 0;
};

}  // namespace mpudp

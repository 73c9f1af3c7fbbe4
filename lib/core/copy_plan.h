// Which copy carriers take a light datagram, and in what order they are tried: pure, so
// the choice is unit-tested without connections.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

namespace mpudp {

class Connection;
class ExpressMeter;

// One copy carrier as the data path sees it: an open connection whose handshake is
// done, its budget (tunnel.copy_rate) and its slot, the bit of Flow::copy_known that
// says the flow was announced on it.
struct CopyLane {
  Connection* conn = nullptr;
  ExpressMeter* budget = nullptr;
  unsigned slot = 0;
  // One of its uplink's spares (tunnel.copy_spares): a further carrier on that uplink,
  // which gives the choice below something to choose from. Not counted in how many
  // copies a datagram gets.
  bool spare = false;
  bool stalled = false;  // Connection::stalled(): its path dark, not used
  // Which uplink it runs over, as far as this side can tell: the CPE knows (its paths'
  // order); the concentrator goes by the carriers' addresses (one per uplink, unless a
  // NAT hides them behind one: then it cannot spread copies over uplinks, only pick the
  // carriers least likely to wait).
  std::uint8_t path = 0;
  // Connection::recovering(): delivering again after a stall, but from a window of one
  // segment and behind a backlog to repeat: chosen only when nothing better is left.
  bool recovering = false;
  // Connection::exposure(): how many segments a copy would wait behind; lower is better.
  std::uint32_t exposure = 0;
};
// At most this many carriers per session (a bit each in Flow::copy_known).
inline constexpr std::size_t kMaxCopyCarriers = 8;
using CopyLanes = std::array<CopyLane, kMaxCopyCarriers>;

// While every uplink works, a datagram gets as many copies as there are uplinks (at
// least one per primary carrier, so a concentrator that sees every carrier behind one
// NAT address still sends as many): what redundancy costs stays the call's own rate
// times (uplinks - 1), whatever tunnel.copy_spares. While an uplink is dark, every
// carrier of the others takes one: with copy_spares spares per uplink the survivor
// sends each datagram 1 + copy_spares times, so a loss on it rarely holds every copy
// (the operator's trade, CONFIG.md: more copies for the outage's seconds).
// Which carriers take them:
//  - never a stalled one (its path is dark: a copy would only queue);
//  - first each working uplink's best carrier, so a copy goes over every uplink while
//    they all work (the better path's delay holds while the other is lossy);
//  - an uplink with half its carriers or more stalled is taken as dark, its other
//    carriers too (an idle spare looks clean but goes into the same outage); they are
//    tried only if no other carrier can take a copy. One stall among several carriers
//    is a loss that the others show the path survives; every uplink dark is as good as
//    none;
//  - best: not recovering, then the fewest segments to wait behind (exposure), so the
//    copies spread over an uplink's carriers and each has few in flight when a loss
//    holds it; a recovering carrier (a window of one segment, a backlog to repeat) is
//    taken only when nothing better is left, as a dark uplink's cost stays bounded once
//    it delivers again.
struct CopyPlan {
  std::array<std::uint8_t, kMaxCopyCarriers> order{};  // indexes into the lanes
  std::size_t tries = 0;          // order[0, tries): every carrier not stalled
  std::size_t dark_from = 0;      // order[dark_from, tries): only while no copy is sent
  std::size_t wanted = 0;         // copies to send
};
CopyPlan plan_copies(std::span<const CopyLane> lanes);

}  // namespace mpudp

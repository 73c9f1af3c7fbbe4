// DedupWindow: the first copy of each sequence number is delivered, every later one and
// anything older than the window is not, across the 32-bit wrap too.
#include <catch2/catch.hpp>

#include "binding/dedup_window.h"

using namespace mpudp;
using V = DedupWindow::Verdict;

TEST_CASE("two carriers' copies in step: each delivered once", "[dedup]") {
  DedupWindow w;
  for (std::uint32_t s = 100; s < 200; ++s) {
    CHECK(w.accept(s) == V::Deliver);
    CHECK(w.accept(s) == V::Duplicate);
  }
  CHECK(w.highest() == 199);
}

TEST_CASE("one carrier late by up to the window: its copies are dropped, gaps filled",
          "[dedup]") {
  DedupWindow w;
  // Carrier A delivers 0..9 except 4 (lost on its path); carrier B lags 5 behind.
  for (std::uint32_t s = 0; s < 10; ++s)
    if (s != 4) CHECK(w.accept(s) == V::Deliver);
  for (std::uint32_t s = 0; s < 10; ++s) CHECK(w.accept(s) == (s == 4 ? V::Deliver : V::Duplicate));
}

TEST_CASE("the first datagram seen may be any number, even one near the wrap", "[dedup]") {
  DedupWindow w;
  CHECK_FALSE(w.started());
  CHECK(w.accept(0xfffffffeu) == V::Deliver);
  CHECK(w.started());
  CHECK(w.accept(0xffffffffu) == V::Deliver);
  CHECK(w.accept(0) == V::Deliver);  // newer across the wrap
  CHECK(w.accept(1) == V::Deliver);
  CHECK(w.highest() == 1);
  CHECK(w.accept(0xffffffffu) == V::Duplicate);
  CHECK(w.accept(0xfffffffdu) == V::Deliver);  // older, within the window, not seen
  CHECK(w.accept(0xfffffffdu) == V::Duplicate);
}

TEST_CASE("older than the window: dropped, seen or not", "[dedup]") {
  DedupWindow w;
  CHECK(w.accept(1000) == V::Deliver);
  CHECK(w.accept(1000 - 63) == V::Deliver);  // the window's oldest slot
  CHECK(w.accept(1000 - 64) == V::Duplicate);
  CHECK(w.accept(1000 - 5000) == V::Duplicate);
  // A jump of more than the window forgets everything below it.
  CHECK(w.accept(2000) == V::Deliver);
  CHECK(w.accept(1999) == V::Deliver);
  CHECK(w.accept(2000 - 64) == V::Duplicate);
}

TEST_CASE("half the number space away reads as old, not new", "[dedup]") {
  DedupWindow w;
  CHECK(w.accept(10) == V::Deliver);
  CHECK(w.accept(10 + 0x80000000u) == V::Duplicate);  // neither newer nor within the window
  CHECK(w.highest() == 10);
  CHECK(w.accept(10 + 0x7fffffffu) == V::Deliver);  // the farthest that is newer
  CHECK(w.highest() == 10 + 0x7fffffffu);
}

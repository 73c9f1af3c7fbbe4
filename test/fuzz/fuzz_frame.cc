// Feeds arbitrary bytes to the frame decoder the way a connection's reader would: decode,
// advance by `consumed`, repeat until the decoder wants more or rejects the stream. Every
// frame that decodes must survive encode -> decode unchanged, and (HELLO aside, whose
// reserved byte and trailing extension bytes are not kept) re-encode to the very bytes
// it came from, so the format has exactly one spelling for each frame.
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <variant>

#include "wire/frame.h"
#include "../common/same_frame.h"

using namespace mpudp;
using namespace mpudp::wire;

namespace {

bool same(const Frame& a, const Frame& b) { return testing::same_frame(a, b); }
using testing::same_bytes;

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "fuzz_frame: %s\n", what);
  std::abort();
}

// Static so a maximal frame does not cost a 64 KiB allocation per input.
std::array<std::uint8_t, kMaxFrame> g_out;

void check_frame(const Frame& f, std::span<const std::uint8_t> original) {
  const std::size_t n = encoded_size(f);
  if (n == 0) fail("a decoded frame cannot be encoded");
  if (n > kMaxFrame) fail("encoded_size over kMaxFrame");
  if (encode(f, std::span<std::uint8_t>(g_out.data(), n - 1)) != 0)
    fail("encode succeeded into a buffer one byte short");
  if (encode(f, std::span<std::uint8_t>(g_out.data(), n)) != n)
    fail("encode disagrees with encoded_size");
  const std::span<const std::uint8_t> wire(g_out.data(), n);
  const Decoded again = decode(wire);
  if (again.status != DecodeStatus::Ok) fail("re-encoded frame does not decode");
  if (again.consumed != n) fail("re-encoded frame decodes to a different length");
  if (!same(again.frame, f)) fail("decode(encode(f)) != f");
  if (!std::holds_alternative<Hello>(f) && !same_bytes(wire, original))
    fail("re-encoding changed the bytes");
  // The hot path's encoder writes plain DATA only; sequenced DATA (copies) takes encode().
  if (auto* d = std::get_if<Data>(&f); d != nullptr && !d->sequenced) {
    std::array<std::uint8_t, kDataOverhead> hdr{};
    if (encode_data_header(d->flow_id, d->payload.size(), hdr.data()) != kDataOverhead)
      fail("encode_data_header refused a decoded DATA frame");
    if (!same_bytes(hdr, wire.first(kDataOverhead))) fail("encode_data_header differs");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::span<const std::uint8_t> rest(data, size);
  for (;;) {
    const Decoded d = decode(rest);
    if (d.status == DecodeStatus::NeedMore) {
      if (d.consumed != 0) fail("NeedMore with consumed != 0");
      break;
    }
    if (d.status != DecodeStatus::Ok) {
      // A real reader closes the connection here; just make sure the status has a name.
      if (to_string(d.status) == nullptr) fail("status without a name");
      break;
    }
    if (d.consumed < kHeaderSize || d.consumed > rest.size()) fail("consumed out of range");
    check_frame(d.frame, rest.first(d.consumed));
    rest = rest.subspan(d.consumed);
  }
  return 0;
}

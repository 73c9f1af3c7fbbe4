#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "wire/frame.h"
#include "../common/same_frame.h"

using namespace mpudp;
using namespace mpudp::wire;

namespace {

using Bytes = std::vector<std::uint8_t>;

Endpoint ep(const char* text) {
  auto e = Endpoint::parse(text);
  REQUIRE(e.has_value());
  return *e;
}

bool same(const Frame& a, const Frame& b) { return testing::same_frame(a, b); }

Bytes encode_vec(const Frame& f) {
  const std::size_t n = encoded_size(f);
  REQUIRE(n != 0);
  Bytes out(n);
  REQUIRE(encode(f, out) == n);
  return out;
}

void check_round_trip(const Frame& f) {
  const Bytes wire = encode_vec(f);
  const Decoded d = decode(wire);
  REQUIRE(d.status == DecodeStatus::Ok);
  CHECK(d.consumed == wire.size());
  CHECK(same(d.frame, f));
}

DecodeStatus status_of(const Bytes& b) { return decode(b).status; }

const Bytes kPayload{0xde, 0xad, 0xbe, 0xef};

// Golden frames: the same bytes appear in docs/PROTOCOL.md, keep them in step.
const Bytes kHelloBytes{0x01, 0x00, 0x00, 0x0a, 0x4d, 0x50, 0x55, 0x44,
                        0x01, 0x01, 0x00, 0x00, 0x00, 0x00};
const Bytes kOpenV4Bytes{0x02, 0x01, 0x00, 0x16,                          // header
                         0x00, 0x00, 0x00, 0x01,                          // flow id 1
                         0x04, 0xc0, 0xa8, 0x01, 0x0a, 0x9c, 0x40,        // 192.168.1.10:40000
                         0x04, 0xc6, 0x33, 0x64, 0x07, 0x00, 0x35,        // 198.51.100.7:53
                         0xde, 0xad, 0xbe, 0xef};                         // payload
const Bytes kOpenV6Bytes{
    0x02, 0x00, 0x00, 0x2a,                                                  // header
    0x80, 0x00, 0x00, 0x02,                                                  // flow id
    0x06, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // client
    0x00, 0x00, 0x00, 0x00, 0x10, 0x9c, 0x40,                                //
    0x06, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00,  // remote
    0x00, 0x00, 0x00, 0x00, 0x07, 0x00, 0x35};
const Bytes kDataBytes{0x03, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x01,
                       0xde, 0xad, 0xbe, 0xef};
const Bytes kDataSeqBytes{0x03, 0x01, 0x00, 0x0c, 0x00, 0x00, 0x00, 0x01,
                          0x00, 0x01, 0x00, 0x02, 0xde, 0xad, 0xbe, 0xef};
// The same with 0x02, copy back (a flow in one of the CPE's copy classes).
const Bytes kDataCopyBackBytes{0x03, 0x03, 0x00, 0x0c, 0x00, 0x00, 0x00, 0x01,
                               0x00, 0x01, 0x00, 0x02, 0xde, 0xad, 0xbe, 0xef};
const Bytes kCloseBytes{0x04, 0x00, 0x00, 0x08, 0x04, 0xc0,
                        0xa8, 0x01, 0x0a, 0x9c, 0x40, 0x01};
const Bytes kResetBytes{0x05, 0x00, 0x00, 0x05, 0x80, 0x00, 0x00, 0x01, 0x01};
const Bytes kKeepaliveBytes{0x06, 0x01, 0x00, 0x00};
const Bytes kIcmpBytes{0x08, 0x00, 0x00, 0x0a,   // ICMP, body 10 bytes
                       0x00, 0x00, 0x00, 0x01,   // flow id 1
                       0x05, 0x00,               // too big, reserved
                       0x05, 0x00, 0x05, 0x5c};  // MTU 1280, length 1372

Frame golden_hello() { return Hello{kVersion, Role::Cpe, SessionMode::Multiplexed, 0}; }
Frame golden_open_v4() {
  return Open{1, ep("192.168.1.10:40000"), ep("198.51.100.7:53"), true, kPayload};
}
Frame golden_open_v6() {
  return Open{0x80000002u, ep("[2001:db8::10]:40000"), ep("[2001:db8:1::7]:53"), false, {}};
}
Frame golden_data() { return Data{1, kPayload}; }
Frame golden_data_seq() { return Data{1, kPayload, true, 0x00010002u}; }
Frame golden_data_copy_back() { return Data{1, kPayload, true, 0x00010002u, true}; }
Frame golden_close() { return Close{ep("192.168.1.10:40000"), CloseReason::Idle}; }
Frame golden_reset() { return Reset{0x80000001u, ResetReason::UnknownFlow}; }
Frame golden_keepalive() { return Keepalive{true}; }
Frame golden_icmp() { return Icmp{1, IcmpKind::TooBig, 1280, 1372}; }

struct Golden {
  const char* name;
  Frame frame;
  const Bytes& bytes;
};

std::vector<Golden> goldens() {
  return {{"HELLO", golden_hello(), kHelloBytes},
          {"OPEN v4", golden_open_v4(), kOpenV4Bytes},
          {"OPEN v6", golden_open_v6(), kOpenV6Bytes},
          {"DATA", golden_data(), kDataBytes},
          {"DATA sequenced", golden_data_seq(), kDataSeqBytes},
          {"DATA sequenced, copy back", golden_data_copy_back(), kDataCopyBackBytes},
          {"CLOSE", golden_close(), kCloseBytes},
          {"RESET", golden_reset(), kResetBytes},
          {"KEEPALIVE", golden_keepalive(), kKeepaliveBytes},
          {"ICMP", golden_icmp(), kIcmpBytes}};
}

}  // namespace

TEST_CASE("golden bytes match docs/PROTOCOL.md in both directions", "[wire]") {
  for (const auto& g : goldens()) {
    INFO(g.name);
    CHECK(encode_vec(g.frame) == g.bytes);
    const Decoded d = decode(g.bytes);
    REQUIRE(d.status == DecodeStatus::Ok);
    CHECK(d.consumed == g.bytes.size());
    CHECK(same(d.frame, g.frame));
  }
}

TEST_CASE("a direct endpoint stands in for the dialled one only when usable", "[wire]") {
  const Endpoint dialled = ep("198.18.100.1:7000");
  CHECK(direct_usable(ep("198.18.100.11:7000"), dialled));
  CHECK(direct_usable(ep("198.18.100.11:443"), dialled));
  CHECK_FALSE(direct_usable(ep("[2001:db8::11]:7000"), dialled));  // the other family
  CHECK_FALSE(direct_usable(ep("0.0.0.0:7000"), dialled));
  CHECK_FALSE(direct_usable(ep("224.0.0.1:7000"), dialled));
  CHECK_FALSE(direct_usable(ep("255.255.255.255:7000"), dialled));
  CHECK_FALSE(direct_usable(ep("198.18.100.11:0"), dialled));
  CHECK_FALSE(direct_usable(ep("[ff02::1]:7000"), ep("[2001:db8::1]:7000")));
  CHECK(direct_usable(ep("[2001:db8::11]:7000"), ep("[2001:db8::1]:7000")));
}

TEST_CASE("every frame type round-trips", "[wire]") {
  const Bytes big(1000, 0x5a);
  SECTION("HELLO") {
    check_round_trip(Hello{kVersion, Role::Cpe, SessionMode::Multiplexed, 0});
    check_round_trip(Hello{kVersion, Role::Concentrator, SessionMode::PerBinding, 0xbee7});  // no kCapDirect: no endpoint
    Hello x{kVersion, Role::Cpe, SessionMode::Multiplexed, kCapExpress};
    x.express_token = 0x0123456789abcdefull;
    check_round_trip(x);
    x.capabilities = kCapExpress | kCapAuth;
    x.nonce.fill(0x77);
    check_round_trip(x);
    x.capabilities = kCapExpress | kCapAuth | kCapDirect;
    x.direct = ep("198.18.100.11:7000");
    check_round_trip(x);
    x.capabilities = kCapDirect;
    x.direct = ep("[2001:db8:100::11]:443");
    check_round_trip(x);
  }
  SECTION("HELLO with the direct endpoint, byte by byte (docs/PROTOCOL.md)") {
    Hello h{kVersion, Role::Concentrator, SessionMode::Multiplexed, kCapExpress | kCapDirect};
    h.express_token = 0x0102030405060708ull;
    h.direct = ep("198.18.100.11:7000");
    const Bytes want{0x01, 0x00, 0x00, 0x19, 0x4d, 0x50, 0x55, 0x44, 0x01, 0x02, 0x00,
                     0x00, 0x00, 0x0a, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
                     0x04, 0xc6, 0x12, 0x64, 0x0b, 0x1b, 0x58};
    CHECK(encode_vec(h) == want);
    // An older decoder's view: the bit unknown, the endpoint trailing bytes; both ignored.
    Bytes old = want;
    old[13] = 0x02;
    const Decoded d = decode(old);
    REQUIRE(d.status == DecodeStatus::Ok);
    CHECK(std::get<Hello>(d.frame).express_token == 0x0102030405060708ull);
    CHECK(!std::get<Hello>(d.frame).direct.valid());
    // Without the endpoint the frame cannot be encoded.
    h.direct = Endpoint{};
    CHECK(encoded_size(h) == 0);
  }
  SECTION("HELLO with the express token, byte by byte (docs/PROTOCOL.md)") {
    Hello h{kVersion, Role::Concentrator, SessionMode::Multiplexed, kCapExpress};
    h.express_token = 0x0102030405060708ull;
    const Bytes want{0x01, 0x00, 0x00, 0x12, 0x4d, 0x50, 0x55, 0x44, 0x01, 0x02, 0x00,
                     0x00, 0x00, 0x02, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08};
    CHECK(encode_vec(h) == want);
    h.capabilities = kCapExpress | kCapAuth;
    const Bytes with_nonce = encode_vec(h);
    REQUIRE(with_nonce.size() == 4 + 10 + 32 + 8);
    CHECK(std::equal(with_nonce.end() - 8, with_nonce.end(), want.end() - 8));
  }
  SECTION("OPEN") {
    check_round_trip(Open{7, ep("10.0.0.1:1"), ep("192.0.2.1:65535"), false, {}});
    check_round_trip(Open{7, ep("10.0.0.1:1"), ep("192.0.2.1:65535"), true, {}});
    check_round_trip(Open{7, ep("10.0.0.1:1"), ep("192.0.2.1:65535"), true, big});
    check_round_trip(Open{0xffffffffu, ep("[::1]:9"), ep("[2001:db8::1]:53"), false, {}});
    check_round_trip(Open{0x80000000u, ep("[fe80::1]:0"), ep("[2001:db8::1]:53"), true, big});
  }
  SECTION("DATA") {
    check_round_trip(Data{0, {}});
    check_round_trip(Data{0xffffffffu, kPayload});
    check_round_trip(Data{42, big});
    check_round_trip(Data{0, {}, true, 0});
    check_round_trip(Data{7, kPayload, true, 0xffffffffu});
  }
  SECTION("CLOSE") {
    for (auto r : {CloseReason::Unspecified, CloseReason::Idle, CloseReason::Evicted,
                   CloseReason::Shutdown}) {
      check_round_trip(Close{ep("192.168.1.10:40000"), r});
      check_round_trip(Close{ep("[2001:db8::10]:40000"), r});
    }
  }
  SECTION("RESET") {
    for (auto r : {ResetReason::Unspecified, ResetReason::UnknownFlow, ResetReason::Refused,
                   ResetReason::FlowIdInUse})
      check_round_trip(Reset{0x12345678u, r});
  }
  SECTION("KEEPALIVE") {
    check_round_trip(Keepalive{false});
    check_round_trip(Keepalive{true});
  }
}

TEST_CASE("size limits", "[wire]") {
  SECTION("DATA costs exactly 8 bytes on top of the payload") {
    CHECK(kDataOverhead == 8);
    CHECK(encoded_size(Data{1, {}}) == 8);
    CHECK(encoded_size(Data{1, kPayload}) == 8 + kPayload.size());
  }
  SECTION("DATA with the largest payload fills a maximal frame") {
    const Bytes payload(kMaxDataPayload, 0x33);
    CHECK(encoded_size(Data{9, payload}) == kMaxFrame);
    check_round_trip(Data{9, payload});
    const Bytes over(kMaxDataPayload + 1, 0x33);
    CHECK(encoded_size(Data{9, over}) == 0);
    Bytes out(kMaxFrame + 16);
    CHECK(encode(Data{9, over}, out) == 0);
    // The sequence number takes 4 of those bytes.
    const Bytes seq_max(kMaxDataPayload - kSeqSize, 0x33);
    CHECK(encoded_size(Data{9, seq_max, true, 1}) == kMaxFrame);
    CHECK(encoded_size(Data{9, payload, true, 1}) == 0);
    // A plain DATA with copy back would be refused by the receiver: never written.
    CHECK(encoded_size(Data{9, seq_max, false, 0, true}) == 0);
  }
  SECTION("a sequenced DATA too short for its sequence number is refused") {
    const Bytes b{0x03, 0x01, 0x00, 0x07, 0, 0, 0, 1, 0, 0, 0};
    CHECK(decode(b).status == DecodeStatus::BadLength);
    const Bytes ok_empty{0x03, 0x01, 0x00, 0x08, 0, 0, 0, 1, 0, 0, 0, 9};
    const Decoded d = decode(ok_empty);
    REQUIRE(d.status == DecodeStatus::Ok);
    const auto& data = std::get<Data>(d.frame);
    CHECK(data.sequenced);
    CHECK(data.seq == 9);
    CHECK(data.payload.empty());
  }
  SECTION("OPEN with the largest payload, IPv6 and IPv4") {
    const Endpoint c6 = ep("[2001:db8::10]:40000");
    const Endpoint r6 = ep("[2001:db8:1::7]:53");
    const Bytes max6(kMaxBody - 4 - 2 * 19, 0x44);
    CHECK(encoded_size(Open{1, c6, r6, true, max6}) == kMaxFrame);
    check_round_trip(Open{1, c6, r6, true, max6});
    const Bytes over6(max6.size() + 1, 0x44);
    CHECK(encoded_size(Open{1, c6, r6, true, over6}) == 0);

    const Endpoint c4 = ep("192.168.1.10:40000");
    const Endpoint r4 = ep("198.51.100.7:53");
    const Bytes max4(kMaxBody - 4 - 2 * 7, 0x44);
    CHECK(encoded_size(Open{1, c4, r4, true, max4}) == kMaxFrame);
    check_round_trip(Open{1, c4, r4, true, max4});
    const Bytes over4(max4.size() + 1, 0x44);
    CHECK(encoded_size(Open{1, c4, r4, true, over4}) == 0);
    // A datagram that fits DATA may not fit OPEN: the sender must split it.
    const Bytes dgram(kMaxDataPayload, 0x44);
    CHECK(encoded_size(Open{1, c4, r4, true, dgram}) == 0);
    CHECK(encoded_size(Data{1, dgram}) == kMaxFrame);
  }
}

TEST_CASE("frames that cannot be encoded", "[wire]") {
  Bytes out(128, 0xaa);
  const Endpoint none;
  const Endpoint v4 = ep("192.0.2.1:1");
  const Endpoint v6 = ep("[2001:db8::1]:1");
  const Frame bad[] = {
      Open{1, none, none, false, {}},
      Open{1, v4, none, false, {}},
      Open{1, none, v4, false, {}},
      Open{1, v4, v6, false, {}},  // families must match
      Open{1, v6, v4, false, {}},
      Open{1, v4, v4, false, kPayload},  // payload without the flag would be dropped
      Close{none, CloseReason::Idle},
  };
  for (const auto& f : bad) {
    CHECK(encoded_size(f) == 0);
    CHECK(encode(f, out) == 0);
  }
  CHECK(std::all_of(out.begin(), out.end(), [](std::uint8_t b) { return b == 0xaa; }));
}

TEST_CASE("encode into a buffer that is too small writes nothing", "[wire]") {
  for (const auto& g : goldens()) {
    INFO(g.name);
    for (std::size_t n = 0; n < g.bytes.size(); ++n) {
      Bytes buf(g.bytes.size() + 8, 0xaa);
      CHECK(encode(g.frame, std::span<std::uint8_t>(buf.data(), n)) == 0);
      CHECK(std::all_of(buf.begin(), buf.end(), [](std::uint8_t b) { return b == 0xaa; }));
    }
    Bytes buf(g.bytes.size() + 8, 0xaa);
    CHECK(encode(g.frame, buf) == g.bytes.size());
    CHECK(std::all_of(buf.begin() + static_cast<std::ptrdiff_t>(g.bytes.size()), buf.end(),
                      [](std::uint8_t b) { return b == 0xaa; }));
  }
}

TEST_CASE("encode_data_header matches encode", "[wire]") {
  for (std::size_t len : {std::size_t{0}, std::size_t{4}, std::size_t{1400}, kMaxDataPayload}) {
    const Bytes payload(len, 0x77);
    Bytes hot(kDataOverhead + len, 0);
    REQUIRE(encode_data_header(0xcafef00du, len, hot.data()) == kDataOverhead);
    std::copy(payload.begin(), payload.end(), hot.begin() + kDataOverhead);
    CHECK(hot == encode_vec(Data{0xcafef00du, payload}));
  }
  Bytes out(kDataOverhead, 0xaa);
  CHECK(encode_data_header(1, kMaxDataPayload + 1, out.data()) == 0);
  CHECK(out == Bytes(kDataOverhead, 0xaa));
}

TEST_CASE("every truncation of a valid frame needs more", "[wire]") {
  auto all = goldens();
  const Bytes big(kMaxDataPayload, 0x11);
  const Bytes max_data = encode_vec(Data{3, big});
  for (const auto& g : all) {
    INFO(g.name);
    for (std::size_t n = 0; n < g.bytes.size(); ++n) {
      const Decoded d = decode(std::span<const std::uint8_t>(g.bytes.data(), n));
      CHECK(d.status == DecodeStatus::NeedMore);
      CHECK(d.consumed == 0);
    }
  }
  for (std::size_t n : {std::size_t{0}, std::size_t{3}, std::size_t{4}, std::size_t{8},
                        max_data.size() / 2, max_data.size() - 1}) {
    CHECK(decode(std::span<const std::uint8_t>(max_data.data(), n)).status ==
          DecodeStatus::NeedMore);
  }
}

TEST_CASE("a stream of concatenated frames decodes one after another", "[wire]") {
  const Frame frames[] = {golden_hello(), golden_open_v4(), golden_data(), Data{1, {}},
                          golden_keepalive(), golden_open_v6(), golden_reset(),
                          golden_close(), Keepalive{false}};
  Bytes stream;
  for (const auto& f : frames) {
    const Bytes b = encode_vec(f);
    stream.insert(stream.end(), b.begin(), b.end());
  }

  SECTION("all bytes at once") {
    std::span<const std::uint8_t> rest(stream);
    for (const auto& f : frames) {
      const Decoded d = decode(rest);
      REQUIRE(d.status == DecodeStatus::Ok);
      CHECK(same(d.frame, f));
      rest = rest.subspan(d.consumed);
    }
    CHECK(rest.empty());
    CHECK(decode(rest).status == DecodeStatus::NeedMore);
  }

  SECTION("one byte at a time, as a stream reader sees it") {
    Bytes buf;
    std::size_t next = 0;
    for (std::uint8_t byte : stream) {
      buf.push_back(byte);
      for (;;) {
        const Decoded d = decode(buf);
        if (d.status == DecodeStatus::NeedMore) break;
        REQUIRE(d.status == DecodeStatus::Ok);
        REQUIRE(next < std::size(frames));
        // Compare before erasing: the decoded spans point into buf.
        CHECK(same(d.frame, frames[next]));
        ++next;
        buf.erase(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(d.consumed));
      }
    }
    CHECK(next == std::size(frames));
    CHECK(buf.empty());
  }
}

TEST_CASE("body lengths the type does not allow", "[wire]") {
  SECTION("too short") {
    CHECK(status_of({0x01, 0x00, 0x00, 0x09, 0x4d, 0x50, 0x55, 0x44, 0x01, 0x01, 0x00, 0x00,
                     0x00}) == DecodeStatus::BadLength);
    Bytes open17(4 + 17, 0);
    open17[0] = 0x02;
    open17[3] = 17;
    open17[8] = 4;
    open17[15] = 4;
    CHECK(status_of(open17) == DecodeStatus::BadLength);
    CHECK(status_of({0x03, 0x00, 0x00, 0x03, 0x00, 0x00, 0x01}) == DecodeStatus::BadLength);
    CHECK(status_of({0x04, 0x00, 0x00, 0x07, 0x04, 0xc0, 0xa8, 0x01, 0x0a, 0x9c, 0x40}) ==
          DecodeStatus::BadLength);
    CHECK(status_of({0x05, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x01}) ==
          DecodeStatus::BadLength);
  }
  SECTION("too long") {
    Bytes close = kCloseBytes;
    close[3] = 9;
    close.push_back(0);
    CHECK(status_of(close) == DecodeStatus::BadLength);
    Bytes reset = kResetBytes;
    reset[3] = 6;
    reset.push_back(0);
    CHECK(status_of(reset) == DecodeStatus::BadLength);
    CHECK(status_of({0x06, 0x00, 0x00, 0x01, 0x00}) == DecodeStatus::BadLength);
    // OPEN without the payload flag must end right after the remote endpoint.
    Bytes open = kOpenV4Bytes;
    open[1] = 0x00;
    CHECK(status_of(open) == DecodeStatus::BadLength);
  }
  SECTION("length does not match the endpoint family") {
    // CLOSE with the IPv4 length but an IPv6 family byte, and the other way round.
    Bytes close = kCloseBytes;
    close[4] = 6;
    CHECK(status_of(close) == DecodeStatus::BadLength);
    Bytes close20(4 + 20, 0);
    close20[0] = 0x04;
    close20[3] = 20;
    close20[4] = 4;
    CHECK(status_of(close20) == DecodeStatus::BadLength);
    // OPEN whose IPv6 client leaves no room for the remote endpoint.
    Bytes open(4 + 30, 0);
    open[0] = 0x02;
    open[3] = 30;
    open[8] = 6;
    open[27] = 6;
    CHECK(status_of(open) == DecodeStatus::BadLength);
    Bytes open23(4 + 23, 0);
    open23[0] = 0x02;
    open23[3] = 23;
    open23[8] = 6;
    CHECK(status_of(open23) == DecodeStatus::BadLength);
  }
  SECTION("impossible lengths are rejected from the header alone") {
    CHECK(status_of({0x05, 0x00, 0x00, 0x06}) == DecodeStatus::BadLength);
    CHECK(status_of({0x06, 0x00, 0xff, 0xff}) == DecodeStatus::BadLength);
    CHECK(status_of({0x01, 0x00, 0x00, 0x00}) == DecodeStatus::BadLength);
  }
}

TEST_CASE("unknown frame types", "[wire]") {
  for (std::uint8_t t : {0x00, 0x09, 0x80, 0xff}) {
    CHECK(status_of({t, 0x00, 0x00, 0x00}) == DecodeStatus::UnknownType);
    // Rejected without waiting for a body that may never come.
    CHECK(status_of({t, 0x00, 0x10, 0x00}) == DecodeStatus::UnknownType);
  }
}

TEST_CASE("HELLO validation", "[wire]") {
  SECTION("bad magic") {
    Bytes b = kHelloBytes;
    b[7] = 0x45;
    CHECK(status_of(b) == DecodeStatus::BadMagic);
  }
  SECTION("bad version still reports what the peer sent") {
    Bytes b = kHelloBytes;
    b[8] = 3;  // 1 and 2 are known (2: inside TLS)
    b[9] = 2;  // role concentrator
    b[12] = 0x12;
    b[13] = 0x34;
    const Decoded d = decode(b);
    CHECK(d.status == DecodeStatus::BadVersion);
    REQUIRE(std::holds_alternative<Hello>(d.frame));
    const auto& h = std::get<Hello>(d.frame);
    CHECK(h.version == 3);
    CHECK(h.role == Role::Concentrator);
    CHECK(h.capabilities == 0x1234);
    b[8] = 0;
    CHECK(status_of(b) == DecodeStatus::BadVersion);
  }
  SECTION("unknown role or session mode") {
    for (std::uint8_t role : {0, 3, 255}) {
      Bytes b = kHelloBytes;
      b[9] = role;
      CHECK(status_of(b) == DecodeStatus::BadFlags);
    }
    for (std::uint8_t mode : {2, 255}) {
      Bytes b = kHelloBytes;
      b[10] = mode;
      CHECK(status_of(b) == DecodeStatus::BadFlags);
    }
  }
  SECTION("the express bit without its token is too short") {
    Bytes b = kHelloBytes;
    b[13] = 0x02;  // kCapExpress, and the body ends after the capabilities
    CHECK(status_of(b) == DecodeStatus::BadLength);
    b[3] = 17;
    b.insert(b.end(), {1, 2, 3, 4, 5, 6, 7});
    CHECK(status_of(b) == DecodeStatus::BadLength);
    b[3] = 18;
    b.push_back(8);
    const Decoded d = decode(b);
    REQUIRE(d.status == DecodeStatus::Ok);
    CHECK(std::get<Hello>(d.frame).express_token == 0x0102030405060708ull);
  }
  SECTION("the direct bit needs a whole endpoint of a known family") {
    Bytes b = kHelloBytes;
    b[13] = 0x08;  // kCapDirect, and the body ends after the capabilities
    CHECK(status_of(b) == DecodeStatus::BadLength);
    b[3] = 11;
    b.push_back(5);  // no such family
    CHECK(status_of(b) == DecodeStatus::BadEndpoint);
    b.back() = 4;
    CHECK(status_of(b) == DecodeStatus::BadLength);
    b[3] = 17;
    b.insert(b.end(), {198, 18, 100, 11, 0x1b, 0x58});
    const Decoded d = decode(b);
    REQUIRE(d.status == DecodeStatus::Ok);
    CHECK(std::get<Hello>(d.frame).direct == ep("198.18.100.11:7000"));
    b[3] = 28;  // an IPv6 family byte needs 19 bytes: one short
    b[14] = 6;
    b.insert(b.end(), 11, 0);
    CHECK(status_of(b) == DecodeStatus::BadLength);
  }
  SECTION("trailing bytes and the reserved byte are ignored") {
    Bytes b = kHelloBytes;
    b[3] = 13;
    b.insert(b.end(), {0x01, 0x02, 0x03});
    b.push_back(0x06);  // the start of the next frame stays put
    const Decoded d = decode(b);
    REQUIRE(d.status == DecodeStatus::Ok);
    CHECK(d.consumed == 17);
    CHECK(same(d.frame, golden_hello()));
    Bytes r = kHelloBytes;
    r[11] = 0x99;
    CHECK(status_of(r) == DecodeStatus::Ok);
  }
}

TEST_CASE("flag bits a type does not define", "[wire]") {
  auto with_flags = [](Bytes b, std::uint8_t flags) {
    b[1] = flags;
    return status_of(b);
  };
  CHECK(with_flags(kHelloBytes, 0x01) == DecodeStatus::BadFlags);
  CHECK(with_flags(kOpenV4Bytes, 0x03) == DecodeStatus::BadFlags);
  CHECK(with_flags(kOpenV4Bytes, 0x80) == DecodeStatus::BadFlags);
  CHECK(with_flags(kDataBytes, 0x02) == DecodeStatus::BadFlags);
  CHECK(with_flags(kDataSeqBytes, 0x05) == DecodeStatus::BadFlags);
  // Copy back is a property of copies: never on a plain DATA.
  CHECK(with_flags(kDataSeqBytes, 0x03) == DecodeStatus::Ok);
  CHECK(with_flags(kDataSeqBytes, 0x02) == DecodeStatus::BadFlags);
  CHECK(with_flags(kCloseBytes, 0x01) == DecodeStatus::BadFlags);
  CHECK(with_flags(kResetBytes, 0x80) == DecodeStatus::BadFlags);
  CHECK(with_flags(kKeepaliveBytes, 0x02) == DecodeStatus::BadFlags);
  CHECK(with_flags(kKeepaliveBytes, 0x00) == DecodeStatus::Ok);
}

TEST_CASE("endpoint families", "[wire]") {
  SECTION("OPEN client family") {
    for (std::uint8_t fam : {0, 5, 41, 255}) {
      Bytes b = kOpenV4Bytes;
      b[8] = fam;
      CHECK(status_of(b) == DecodeStatus::BadEndpoint);
    }
  }
  SECTION("OPEN remote family") {
    Bytes b = kOpenV4Bytes;
    b[15] = 0;
    CHECK(status_of(b) == DecodeStatus::BadEndpoint);
  }
  SECTION("OPEN client and remote families differ") {
    // IPv4 client, IPv6 remote: 4 + 7 + 19 bytes of body.
    Bytes b(4 + 30, 0);
    b[0] = 0x02;
    b[3] = 30;
    b[8] = 4;
    b[15] = 6;
    CHECK(status_of(b) == DecodeStatus::BadEndpoint);
    // IPv6 client, IPv4 remote.
    Bytes c(4 + 30, 0);
    c[0] = 0x02;
    c[3] = 30;
    c[8] = 6;
    c[27] = 4;
    CHECK(status_of(c) == DecodeStatus::BadEndpoint);
  }
  SECTION("CLOSE family") {
    Bytes b = kCloseBytes;
    b[4] = 5;
    CHECK(status_of(b) == DecodeStatus::BadEndpoint);
  }
  SECTION("decoded IPv4 endpoints compare equal to parsed ones") {
    const Decoded d = decode(kCloseBytes);
    REQUIRE(d.status == DecodeStatus::Ok);
    CHECK(std::get<Close>(d.frame).client == ep("192.168.1.10:40000"));
    CHECK(EndpointHash{}(std::get<Close>(d.frame).client) ==
          EndpointHash{}(ep("192.168.1.10:40000")));
  }
}

TEST_CASE("unknown CLOSE and RESET reasons decode as raw values", "[wire]") {
  Bytes c = kCloseBytes;
  c.back() = 200;
  Decoded d = decode(c);
  REQUIRE(d.status == DecodeStatus::Ok);
  CHECK(static_cast<int>(std::get<Close>(d.frame).reason) == 200);
  check_round_trip(d.frame);

  Bytes r = kResetBytes;
  r.back() = 77;
  d = decode(r);
  REQUIRE(d.status == DecodeStatus::Ok);
  CHECK(static_cast<int>(std::get<Reset>(d.frame).reason) == 77);
  check_round_trip(d.frame);
}

TEST_CASE("ICMP frames", "[wire]") {
  SECTION("port unreachable, as docs/PROTOCOL.md shows it") {
    const Bytes b{0x08, 0x00, 0x00, 0x0a, 0x00, 0x00, 0x00, 0x02,
                  0x01, 0x00, 0x00, 0x00, 0x00, 0x05};
    const Decoded d = decode(b);
    REQUIRE(d.status == DecodeStatus::Ok);
    const auto& m = std::get<Icmp>(d.frame);
    CHECK(m.flow_id == 2);
    CHECK(m.kind == IcmpKind::PortUnreachable);
    CHECK(m.mtu == 0);
    CHECK(m.length == 5);
    CHECK(encode_vec(m) == b);
  }
  SECTION("body length is exactly 10, judged from the header") {
    CHECK(status_of({0x08, 0x00, 0x00, 0x09}) == DecodeStatus::BadLength);
    CHECK(status_of({0x08, 0x00, 0x00, 0x0b}) == DecodeStatus::BadLength);
    CHECK(status_of({0x08, 0x00, 0x00, 0x00}) == DecodeStatus::BadLength);
  }
  SECTION("no flags") {
    Bytes b = kIcmpBytes;
    b[1] = 0x01;
    CHECK(status_of(b) == DecodeStatus::BadFlags);
  }
  SECTION("unknown kinds decode as raw values") {
    Bytes b = kIcmpBytes;
    b[8] = 0xee;
    const Decoded d = decode(b);
    REQUIRE(d.status == DecodeStatus::Ok);
    CHECK(static_cast<int>(std::get<Icmp>(d.frame).kind) == 0xee);
    CHECK(std::string(to_string(std::get<Icmp>(d.frame).kind)) == "unknown");
    CHECK(encode_vec(d.frame) == b);
  }
  SECTION("the reserved byte must be 0 (one spelling per frame)") {
    Bytes b = kIcmpBytes;
    b[9] = 0x05;
    CHECK(status_of(b) == DecodeStatus::BadFlags);
  }
  CHECK(std::string(to_string(Type::Icmp)) == "ICMP");
  CHECK(std::string(to_string(IcmpKind::TooBig)) == "too big");
}

TEST_CASE("payload spans point into the input", "[wire]") {
  Decoded d = decode(kDataBytes);
  REQUIRE(d.status == DecodeStatus::Ok);
  CHECK(std::get<Data>(d.frame).payload.data() == kDataBytes.data() + 8);
  d = decode(kOpenV4Bytes);
  REQUIRE(d.status == DecodeStatus::Ok);
  CHECK(std::get<Open>(d.frame).payload.data() == kOpenV4Bytes.data() + 22);
}

TEST_CASE("to_string names every status and type", "[wire]") {
  CHECK(std::string(to_string(DecodeStatus::Ok)) == "ok");
  CHECK(std::string(to_string(DecodeStatus::BadMagic)) == "bad magic");
  CHECK(std::string(to_string(static_cast<DecodeStatus>(99))) == "unknown decode status");
  CHECK(std::string(to_string(Type::Hello)) == "HELLO");
  CHECK(std::string(to_string(Type::Keepalive)) == "KEEPALIVE");
  CHECK(std::string(to_string(static_cast<Type>(0))) == "UNKNOWN");
  for (int s = 0; s <= static_cast<int>(DecodeStatus::BadFlags); ++s)
    CHECK(std::string(to_string(static_cast<DecodeStatus>(s))).find("unknown decode") ==
          std::string::npos);
}

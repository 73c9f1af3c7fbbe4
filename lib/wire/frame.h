// The tunnel protocol between CPE and concentrator: frames as values, pure bytes in and
// out. docs/PROTOCOL.md is the byte-by-byte description; keep the two in step.
//
// Every frame: type (u8) | flags (u8) | body length (u16, big endian) | body.
// A DATA frame's body is flow id (u32) + payload, so a datagram costs 8 bytes once its
// (client, remote) pair has been announced with OPEN.
#pragma once

#include <cstddef>
#include <array>
#include <cstdint>
#include <span>
#include <variant>

#include "net/endpoint.h"

namespace mpudp::wire {

inline constexpr std::uint32_t kMagic = 0x4d505544;  // "MPUD"
// Version 1: the frames in clear text (encryption: none), keyed by the HMAC handshake.
// Version 2: the same frames inside TLS 1.3 (docs/PROTOCOL.md, "TLS layer"); HELLO
// carries no AUTH capability. A HELLO says which one its sender speaks; the decoder
// takes both and the handshake checks it against the connection's transport.
inline constexpr std::uint8_t kVersion = 1;
inline constexpr std::uint8_t kVersionTls = 2;
inline constexpr std::size_t kHeaderSize = 4;
inline constexpr std::size_t kMaxBody = 65535;
inline constexpr std::size_t kMaxFrame = kHeaderSize + kMaxBody;
inline constexpr std::size_t kDataOverhead = kHeaderSize + 4;
inline constexpr std::size_t kMaxDataPayload = kMaxBody - 4;
// Size of the whole frame whose header starts at `p` (kHeaderSize bytes readable); no
// checks: for frames this side encoded, or to size a read buffer before decoding.
inline std::size_t frame_size(const std::uint8_t* p) {
  return kHeaderSize + ((std::size_t{p[2]} << 8) | p[3]);
}
// Flow ids the concentrator allocates (replies from a remote the client has not yet sent
// to) carry this bit; the CPE's never do, so the two sides never collide.
inline constexpr std::uint32_t kConcentratorFlowBit = 0x80000000u;

enum class Type : std::uint8_t {
  Hello = 1,
  Open = 2,
  Data = 3,
  Close = 4,
  Reset = 5,
  Keepalive = 6,
  Auth = 7,  // key proof, only with kCapAuth (see wire/auth.h)
  Icmp = 8,  // concentrator -> CPE, only to a CPE whose HELLO has kCapIcmp
};

enum class SessionMode : std::uint8_t { Multiplexed = 0, PerBinding = 1 };
enum class Role : std::uint8_t { Cpe = 1, Concentrator = 2 };

// Frame flags, by type.
inline constexpr std::uint8_t kOpenHasPayload = 0x01;
inline constexpr std::uint8_t kKeepaliveReplyRequested = 0x01;
// DATA with a per-flow sequence number (u32, after the flow id): one copy of a datagram
// sent on every uplink's carrier (kCapCopy); the receiver delivers the first copy of
// each number. Sent only to a peer that set kCapCopy: older decoders refuse the flag.
inline constexpr std::uint8_t kDataSequenced = 0x01;
// With kDataSequenced only, from the CPE: the flow is in one of its copy classes
// (cpe.copy_classes), so the concentrator copies its replies too, whatever their rate.
// The concentrator has no classes of its own: a LAN host or a DSCP means nothing there.
inline constexpr std::uint8_t kDataCopyBack = 0x02;
inline constexpr std::size_t kSeqSize = 4;

// Whether the frame whose header starts at `p` carries a datagram (DATA, or OPEN with its
// flow's first datagram); same conditions as frame_size.
inline bool carries_datagram(const std::uint8_t* p) {
  return p[0] == static_cast<std::uint8_t>(Type::Data) ||
         (p[0] == static_cast<std::uint8_t>(Type::Open) && (p[1] & kOpenHasPayload) != 0);
}

// HELLO capability bits. kCapAuth: the sender authenticates with the pre-shared key; its
// HELLO body carries a 32-byte nonce right after the capabilities, and an AUTH frame
// follows in the exchange (docs/PROTOCOL.md, "Authentication").
inline constexpr std::uint16_t kCapAuth = 0x0001;
// kCapExpress (multiplexed mode only): an 8-byte express token follows the nonce (or the
// capabilities, without kCapAuth). From the CPE, token 0 asks for a token on a main
// connection; a token names the session this connection joins as its express connection.
// From the concentrator: the token to join with (main), or the one joined (express).
inline constexpr std::uint16_t kCapExpress = 0x0002;
// kCapIcmp, from the CPE: it answers ICMP frames by sending the client the ICMP error
// direct routing would have given. Older decoders treat an unknown frame type as a
// protocol error, so the concentrator sends ICMP only to a CPE that set this bit.
inline constexpr std::uint16_t kCapIcmp = 0x0004;
// kCapDirect, from the concentrator: an endpoint (family, address, port, as in OPEN)
// follows the express token (or what comes before it): this concentrator's own address,
// unlike the balanced one the CPE dialled. The CPE sends its express connection there, so
// that it reaches the machine holding its session (docs/SCALE.md). Older CPEs ignore the
// bit and the bytes, as they ignore every unknown bit and trailing byte.
inline constexpr std::uint16_t kCapDirect = 0x0008;
// kCapCopy (multiplexed mode, with kCapExpress): redundant delivery. From the concentrator
// on a main connection: it takes copy carriers. From the CPE on a connection that joins
// with the express token: this is a copy carrier, one per uplink, bound to that path;
// the concentrator echoes the bit. Only carriers carry sequenced DATA (kDataSequenced),
// in both directions.
inline constexpr std::uint16_t kCapCopy = 0x0010;
// kCapCopySpare, from the CPE with kCapCopy: this carrier is its uplink's spare, a second
// TCP connection on the same path that carries copies only while another carrier is
// stalled (its path dark), so that the surviving path sends each datagram twice, on two
// connections whose losses are independent. Older concentrators ignore the bit and use
// the spare like any carrier.
inline constexpr std::uint16_t kCapCopySpare = 0x0020;
inline constexpr std::size_t kTokenSize = 8;
inline constexpr std::size_t kNonceSize = 32;
inline constexpr std::size_t kMacSize = 32;  // HMAC-SHA256
using Nonce = std::array<std::uint8_t, kNonceSize>;
using Mac = std::array<std::uint8_t, kMacSize>;

enum class CloseReason : std::uint8_t { Unspecified = 0, Idle = 1, Evicted = 2, Shutdown = 3 };
enum class ResetReason : std::uint8_t {
  Unspecified = 0,
  UnknownFlow = 1,   // the receiver holds no binding for this flow id
  Refused = 2,       // policy or resource limit refused the binding
  FlowIdInUse = 3,   // OPEN reused a flow id that names another pair
};

// What an ICMP frame reports (docs/PROTOCOL.md, "ICMP"). Unknown values pass the decoder
// as raw numbers; the CPE ignores (counts) kinds it does not know.
enum class IcmpKind : std::uint8_t {
  PortUnreachable = 1,
  HostUnreachable = 2,
  NetUnreachable = 3,
  AdminProhibited = 4,
  TooBig = 5,  // `mtu` is the path MTU the concentrator learned
};
const char* to_string(IcmpKind k);

struct Hello {
  std::uint8_t version = kVersion;
  Role role = Role::Cpe;
  SessionMode mode = SessionMode::Multiplexed;
  std::uint16_t capabilities = 0;  // kCapAuth | kCapExpress; unknown bits are ignored
  Nonce nonce{};  // meaningful only with kCapAuth (sent and decoded only then)
  std::uint64_t express_token = 0;  // meaningful only with kCapExpress
  Endpoint direct{};  // meaningful only with kCapDirect; the encoder refuses an invalid one
};

struct Open {
  std::uint32_t flow_id = 0;
  Endpoint client;  // the LAN client's source endpoint
  Endpoint remote;  // the destination the client sent to (the original destination)
  bool has_payload = false;
  std::span<const std::uint8_t> payload;  // points into the decoded buffer
};

struct Data {
  std::uint32_t flow_id = 0;
  std::span<const std::uint8_t> payload;  // points into the decoded buffer
  bool sequenced = false;  // kDataSequenced: `seq` is on the wire
  std::uint32_t seq = 0;
  bool copy_back = false;  // kDataCopyBack (sequenced only)
};

struct Close {
  Endpoint client;
  CloseReason reason = CloseReason::Unspecified;
};

struct Reset {
  std::uint32_t flow_id = 0;
  ResetReason reason = ResetReason::Unspecified;
};

struct Keepalive {
  bool reply_requested = false;
};

struct Auth {
  Mac mac{};  // HMAC-SHA256 proof of the key over both nonces
};

// The remote of flow `flow_id` told the concentrator that a datagram of this flow did not
// arrive (ICMP/ICMPv6 error): the CPE tells the client as the remote's network would have.
struct Icmp {
  std::uint32_t flow_id = 0;
  IcmpKind kind = IcmpKind::PortUnreachable;
  std::uint16_t mtu = 0;     // TooBig: the path MTU; 0 otherwise
  std::uint16_t length = 0;  // UDP payload bytes of the datagram, as far as the error told
};

using Frame = std::variant<Hello, Open, Data, Close, Reset, Keepalive, Auth, Icmp>;

enum class DecodeStatus : std::uint8_t {
  Ok,
  NeedMore,      // not a whole frame yet: read more bytes and call again
  UnknownType,
  BadLength,     // body length impossible for the type
  BadEndpoint,   // unknown address family in an endpoint
  BadMagic,
  BadVersion,
  BadFlags,      // flag bits set that the type does not define
};

const char* to_string(DecodeStatus s);
const char* to_string(Type t);

struct Decoded {
  DecodeStatus status = DecodeStatus::NeedMore;
  std::size_t consumed = 0;  // bytes of input the frame took (valid when status == Ok)
  Frame frame;
};

// Whether the direct endpoint a concentrator named (kCapDirect) may take the place of
// `dialled`, the address the CPE reached it at: a unicast address of the same family (a
// CPE that reached the concentrator over IPv4 may have no IPv6 route) and a port.
bool direct_usable(const Endpoint& direct, const Endpoint& dialled);

// Decodes the first frame of `in`. Spans in the result point into `in`.
Decoded decode(std::span<const std::uint8_t> in);

// Size the frame needs on the wire; 0 if it cannot be encoded (body over kMaxBody,
// invalid endpoint family).
std::size_t encoded_size(const Frame& f);

// Writes `f` at the start of `out`; returns the bytes written, or 0 when `out` is too
// small or the frame cannot be encoded. Never writes past out.size().
std::size_t encode(const Frame& f, std::span<std::uint8_t> out);

// The hot path: DATA frame header (8 bytes) written at `out`; the caller copies the
// payload right after it. Returns kDataOverhead. `payload_len` <= kMaxDataPayload.
std::size_t encode_data_header(std::uint32_t flow_id, std::size_t payload_len,
                               std::uint8_t* out);

}  // namespace mpudp::wire

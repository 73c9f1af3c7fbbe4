#include "wire/frame.h"

#include <cstring>
#include <type_traits>

namespace mpudp::wire {
namespace {

// Body sizes the format fixes. Named so the decoder, the encoder and docs/PROTOCOL.md
// can be checked against each other.
constexpr std::size_t kHelloBody = 10;  // magic, version, role, mode, reserved, capabilities
constexpr std::size_t kHelloAuthBody = kHelloBody + kNonceSize;  // ... then the nonce

// Where a HELLO's express token sits (after the nonce when there is one) and the body
// that holds every field `caps` announces.
std::size_t hello_token_at(std::uint16_t caps) {
  return (caps & kCapAuth) != 0 ? kHelloAuthBody : kHelloBody;
}
// Where the direct endpoint sits: after the token (or whatever comes before it).
std::size_t hello_direct_at(std::uint16_t caps) {
  return hello_token_at(caps) + ((caps & kCapExpress) != 0 ? kTokenSize : 0);
}
constexpr std::size_t kFlowIdSize = 4;
constexpr std::size_t kResetBody = kFlowIdSize + 1;
constexpr std::size_t kIcmpBody = kFlowIdSize + 1 + 1 + 2 + 2;  // kind, reserved, mtu, length
constexpr std::size_t kEndpointV4 = 1 + 4 + 2;
constexpr std::size_t kEndpointV6 = 1 + 16 + 2;
constexpr std::size_t kOpenMinBody = kFlowIdSize + 2 * kEndpointV4;

constexpr std::uint8_t kFamilyV4 = 4;
constexpr std::uint8_t kFamilyV6 = 6;

std::uint16_t get16(const std::uint8_t* p) {
  return static_cast<std::uint16_t>((p[0] << 8) | p[1]);
}

std::uint32_t get32(const std::uint8_t* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) |
         (std::uint32_t{p[2]} << 8) | std::uint32_t{p[3]};
}

void put16(std::uint8_t* p, std::uint16_t v) {
  p[0] = static_cast<std::uint8_t>(v >> 8);
  p[1] = static_cast<std::uint8_t>(v);
}

void put32(std::uint8_t* p, std::uint32_t v) {
  p[0] = static_cast<std::uint8_t>(v >> 24);
  p[1] = static_cast<std::uint8_t>(v >> 16);
  p[2] = static_cast<std::uint8_t>(v >> 8);
  p[3] = static_cast<std::uint8_t>(v);
}

std::uint64_t get64(const std::uint8_t* p) {
  return (std::uint64_t{get32(p)} << 32) | get32(p + 4);
}

void put64(std::uint8_t* p, std::uint64_t v) {
  put32(p, static_cast<std::uint32_t>(v >> 32));
  put32(p + 4, static_cast<std::uint32_t>(v));
}

// Encoded size of an endpoint whose family byte is `family`; 0 for an unknown family.
std::size_t endpoint_size_for(std::uint8_t family) {
  switch (family) {
    case kFamilyV4: return kEndpointV4;
    case kFamilyV6: return kEndpointV6;
    default: return 0;
  }
}

std::size_t endpoint_size(const Endpoint& e) {
  return e.is_v4() ? kEndpointV4 : e.is_v6() ? kEndpointV6 : 0;
}

// The caller has checked that endpoint_size_for(p[0]) bytes are readable.
Endpoint get_endpoint(const std::uint8_t* p) {
  Endpoint e;
  const std::size_t alen = p[0] == kFamilyV4 ? 4 : 16;
  e.family = p[0] == kFamilyV4 ? Family::V4 : Family::V6;
  std::memcpy(e.addr.data(), p + 1, alen);
  e.port = get16(p + 1 + alen);
  return e;
}

std::uint8_t* put_endpoint(std::uint8_t* p, const Endpoint& e) {
  const std::size_t alen = e.addr_len();
  *p++ = e.is_v4() ? kFamilyV4 : kFamilyV6;
  std::memcpy(p, e.addr.data(), alen);
  p += alen;
  put16(p, e.port);
  return p + 2;
}

Decoded fail(DecodeStatus s) {
  Decoded d;
  d.status = s;
  return d;
}

Decoded ok(Frame f, std::size_t consumed) {
  Decoded d;
  d.status = DecodeStatus::Ok;
  d.consumed = consumed;
  d.frame = f;
  return d;
}

// Everything that can be judged from the four header bytes is judged before the body
// arrives: a peer that sends garbage is dropped at once instead of after we have waited
// for up to 64 KiB that will never make sense.
DecodeStatus check_header(std::uint8_t type, std::uint8_t flags, std::size_t len) {
  switch (type) {
    case static_cast<std::uint8_t>(Type::Hello):
      if (flags != 0) return DecodeStatus::BadFlags;
      return len >= kHelloBody ? DecodeStatus::Ok : DecodeStatus::BadLength;
    case static_cast<std::uint8_t>(Type::Open):
      if ((flags & ~kOpenHasPayload) != 0) return DecodeStatus::BadFlags;
      return len >= kOpenMinBody ? DecodeStatus::Ok : DecodeStatus::BadLength;
    case static_cast<std::uint8_t>(Type::Data):
      if ((flags & ~(kDataSequenced | kDataCopyBack)) != 0) return DecodeStatus::BadFlags;
      // Copying back is a property of copies: a plain DATA with the bit is malformed.
      if ((flags & kDataCopyBack) != 0 && (flags & kDataSequenced) == 0)
        return DecodeStatus::BadFlags;
      return len >= kFlowIdSize + ((flags & kDataSequenced) != 0 ? kSeqSize : 0)
                 ? DecodeStatus::Ok
                 : DecodeStatus::BadLength;
    case static_cast<std::uint8_t>(Type::Close):
      if (flags != 0) return DecodeStatus::BadFlags;
      return len == kEndpointV4 + 1 || len == kEndpointV6 + 1 ? DecodeStatus::Ok
                                                              : DecodeStatus::BadLength;
    case static_cast<std::uint8_t>(Type::Reset):
      if (flags != 0) return DecodeStatus::BadFlags;
      return len == kResetBody ? DecodeStatus::Ok : DecodeStatus::BadLength;
    case static_cast<std::uint8_t>(Type::Keepalive):
      if ((flags & ~kKeepaliveReplyRequested) != 0) return DecodeStatus::BadFlags;
      return len == 0 ? DecodeStatus::Ok : DecodeStatus::BadLength;
    case static_cast<std::uint8_t>(Type::Auth):
      if (flags != 0) return DecodeStatus::BadFlags;
      return len == kMacSize ? DecodeStatus::Ok : DecodeStatus::BadLength;
    case static_cast<std::uint8_t>(Type::Icmp):
      if (flags != 0) return DecodeStatus::BadFlags;
      return len == kIcmpBody ? DecodeStatus::Ok : DecodeStatus::BadLength;
    default:
      return DecodeStatus::UnknownType;
  }
}

Decoded decode_hello(const std::uint8_t* b, std::size_t len, std::size_t total) {
  if (get32(b) != kMagic) return fail(DecodeStatus::BadMagic);
  Hello h;
  h.version = b[4];
  h.role = static_cast<Role>(b[5]);
  h.mode = static_cast<SessionMode>(b[6]);
  // b[7] is reserved: sent as 0, ignored on receipt so a later version can use it.
  h.capabilities = get16(b + 8);
  // Bytes past the tenth are ignored for the same reason.
  if (h.version != kVersion && h.version != kVersionTls) {
    // The frame rides along so the caller can log which version the peer speaks.
    Decoded d = fail(DecodeStatus::BadVersion);
    d.frame = h;
    return d;
  }
  if (b[5] != static_cast<std::uint8_t>(Role::Cpe) &&
      b[5] != static_cast<std::uint8_t>(Role::Concentrator))
    return fail(DecodeStatus::BadFlags);
  if (b[6] != static_cast<std::uint8_t>(SessionMode::Multiplexed) &&
      b[6] != static_cast<std::uint8_t>(SessionMode::PerBinding))
    return fail(DecodeStatus::BadFlags);
  if ((h.capabilities & kCapAuth) != 0) {
    // The nonce is part of the frame once the bit is set: a HELLO that claims it and is
    // too short is malformed, not a HELLO without authentication.
    if (len < kHelloAuthBody) return fail(DecodeStatus::BadLength);
    std::memcpy(h.nonce.data(), b + kHelloBody, kNonceSize);
  }
  if ((h.capabilities & kCapExpress) != 0) {
    if (len < hello_direct_at(h.capabilities)) return fail(DecodeStatus::BadLength);
    h.express_token = get64(b + hello_token_at(h.capabilities));
  }
  if ((h.capabilities & kCapDirect) != 0) {
    // Announced, so part of the frame: a short or unknown-family endpoint is malformed.
    const std::size_t at = hello_direct_at(h.capabilities);
    if (len <= at) return fail(DecodeStatus::BadLength);
    const std::size_t esize = endpoint_size_for(b[at]);
    if (esize == 0) return fail(DecodeStatus::BadEndpoint);
    if (len < at + esize) return fail(DecodeStatus::BadLength);
    h.direct = get_endpoint(b + at);
  }
  return ok(h, total);
}

Decoded decode_open(const std::uint8_t* b, std::size_t len, std::uint8_t flags,
                    std::size_t total) {
  // check_header guaranteed len >= kOpenMinBody, so both family bytes of the shortest
  // (IPv4) layout are in range; the IPv6 layout is checked once the family is known.
  const std::size_t esize = endpoint_size_for(b[kFlowIdSize]);
  if (esize == 0) return fail(DecodeStatus::BadEndpoint);
  if (len < kFlowIdSize + esize + 1) return fail(DecodeStatus::BadLength);
  const std::size_t rsize = endpoint_size_for(b[kFlowIdSize + esize]);
  if (rsize == 0) return fail(DecodeStatus::BadEndpoint);
  if (rsize != esize) return fail(DecodeStatus::BadEndpoint);  // families differ
  const std::size_t fixed = kFlowIdSize + 2 * esize;
  if (len < fixed) return fail(DecodeStatus::BadLength);
  Open o;
  o.has_payload = (flags & kOpenHasPayload) != 0;
  if (!o.has_payload && len != fixed) return fail(DecodeStatus::BadLength);
  o.flow_id = get32(b);
  o.client = get_endpoint(b + kFlowIdSize);
  o.remote = get_endpoint(b + kFlowIdSize + esize);
  o.payload = std::span<const std::uint8_t>(b + fixed, len - fixed);
  return ok(o, total);
}

Decoded decode_close(const std::uint8_t* b, std::size_t len, std::size_t total) {
  const std::size_t esize = endpoint_size_for(b[0]);
  if (esize == 0) return fail(DecodeStatus::BadEndpoint);
  if (len != esize + 1) return fail(DecodeStatus::BadLength);
  Close c;
  c.client = get_endpoint(b);
  // Unknown reasons pass through as raw values: the receiver only logs them, and a newer
  // peer may well send reasons this build does not name.
  c.reason = static_cast<CloseReason>(b[esize]);
  return ok(c, total);
}

// Body size of `f`, or 0 with ok == false when it cannot be encoded.
struct BodySize {
  std::size_t size = 0;
  bool ok = false;
};

BodySize body_size(const Frame& f) {
  return std::visit(
      [](const auto& v) -> BodySize {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, Hello>) {
          const std::size_t n = hello_direct_at(v.capabilities);
          if ((v.capabilities & kCapDirect) == 0) return {n, true};
          const std::size_t esize = endpoint_size(v.direct);
          if (esize == 0) return {};
          return {n + esize, true};
        } else if constexpr (std::is_same_v<T, Open>) {
          const std::size_t esize = endpoint_size(v.client);
          if (esize == 0 || v.client.family != v.remote.family) return {};
          // Without the flag the receiver expects no payload; silently dropping one here
          // would lose a datagram, so refuse instead.
          if (!v.has_payload && !v.payload.empty()) return {};
          const std::size_t n = kFlowIdSize + 2 * esize + v.payload.size();
          if (n > kMaxBody) return {};
          return {n, true};
        } else if constexpr (std::is_same_v<T, Data>) {
          if (v.copy_back && !v.sequenced) return {};  // the receiver would refuse it
          const std::size_t head = kFlowIdSize + (v.sequenced ? kSeqSize : 0);
          if (head + v.payload.size() > kMaxBody) return {};
          return {head + v.payload.size(), true};
        } else if constexpr (std::is_same_v<T, Close>) {
          const std::size_t esize = endpoint_size(v.client);
          if (esize == 0) return {};
          return {esize + 1, true};
        } else if constexpr (std::is_same_v<T, Reset>) {
          return {kResetBody, true};
        } else if constexpr (std::is_same_v<T, Auth>) {
          return {kMacSize, true};
        } else if constexpr (std::is_same_v<T, Icmp>) {
          return {kIcmpBody, true};
        } else {
          static_assert(std::is_same_v<T, Keepalive>);
          return {0, true};
        }
      },
      f);
}

void put_header(std::uint8_t* p, Type t, std::uint8_t flags, std::size_t len) {
  p[0] = static_cast<std::uint8_t>(t);
  p[1] = flags;
  put16(p + 2, static_cast<std::uint16_t>(len));
}

}  // namespace

const char* to_string(DecodeStatus s) {
  switch (s) {
    case DecodeStatus::Ok: return "ok";
    case DecodeStatus::NeedMore: return "need more";
    case DecodeStatus::UnknownType: return "unknown frame type";
    case DecodeStatus::BadLength: return "bad body length";
    case DecodeStatus::BadEndpoint: return "bad endpoint family";
    case DecodeStatus::BadMagic: return "bad magic";
    case DecodeStatus::BadVersion: return "unsupported version";
    case DecodeStatus::BadFlags: return "bad flags";
  }
  return "unknown decode status";
}

const char* to_string(Type t) {
  switch (t) {
    case Type::Hello: return "HELLO";
    case Type::Open: return "OPEN";
    case Type::Data: return "DATA";
    case Type::Close: return "CLOSE";
    case Type::Reset: return "RESET";
    case Type::Keepalive: return "KEEPALIVE";
    case Type::Auth: return "AUTH";
    case Type::Icmp: return "ICMP";
  }
  return "UNKNOWN";
}

const char* to_string(IcmpKind k) {
  switch (k) {
    case IcmpKind::PortUnreachable: return "port unreachable";
    case IcmpKind::HostUnreachable: return "host unreachable";
    case IcmpKind::NetUnreachable: return "net unreachable";
    case IcmpKind::AdminProhibited: return "administratively prohibited";
    case IcmpKind::TooBig: return "too big";
  }
  return "unknown";
}

bool direct_usable(const Endpoint& direct, const Endpoint& dialled) {
  return direct.is_unicast() && direct.family == dialled.family && direct.port != 0;
}

Decoded decode(std::span<const std::uint8_t> in) {
  if (in.size() < kHeaderSize) return fail(DecodeStatus::NeedMore);
  const std::uint8_t type = in[0];
  const std::uint8_t flags = in[1];
  const std::size_t len = get16(in.data() + 2);
  if (DecodeStatus s = check_header(type, flags, len); s != DecodeStatus::Ok) return fail(s);
  const std::size_t total = kHeaderSize + len;
  if (in.size() < total) return fail(DecodeStatus::NeedMore);
  const std::uint8_t* b = in.data() + kHeaderSize;

  switch (static_cast<Type>(type)) {
    case Type::Hello:
      return decode_hello(b, len, total);
    case Type::Open:
      return decode_open(b, len, flags, total);
    case Type::Data: {
      Data d;
      d.flow_id = get32(b);
      std::size_t head = kFlowIdSize;
      if ((flags & kDataSequenced) != 0) {
        d.sequenced = true;
        d.copy_back = (flags & kDataCopyBack) != 0;
        d.seq = get32(b + kFlowIdSize);
        head += kSeqSize;
      }
      d.payload = std::span<const std::uint8_t>(b + head, len - head);
      return ok(d, total);
    }
    case Type::Close:
      return decode_close(b, len, total);
    case Type::Reset: {
      Reset r;
      r.flow_id = get32(b);
      r.reason = static_cast<ResetReason>(b[kFlowIdSize]);  // raw, as for CLOSE
      return ok(r, total);
    }
    case Type::Keepalive:
      return ok(Keepalive{(flags & kKeepaliveReplyRequested) != 0}, total);
    case Type::Auth: {
      Auth a;
      std::memcpy(a.mac.data(), b, kMacSize);
      return ok(a, total);
    }
    case Type::Icmp: {
      // b[5] must be 0: one spelling per frame; a later use comes with a capability.
      if (b[5] != 0) return fail(DecodeStatus::BadFlags);
      Icmp m;
      m.flow_id = get32(b);
      m.kind = static_cast<IcmpKind>(b[4]);  // raw: the receiver judges unknown kinds
      m.mtu = get16(b + 6);
      m.length = get16(b + 8);
      return ok(m, total);
    }
  }
  return fail(DecodeStatus::UnknownType);  // unreachable: check_header vetted the type
}

std::size_t encoded_size(const Frame& f) {
  const BodySize b = body_size(f);
  return b.ok ? kHeaderSize + b.size : 0;
}

std::size_t encode(const Frame& f, std::span<std::uint8_t> out) {
  const BodySize b = body_size(f);
  if (!b.ok || out.size() < kHeaderSize + b.size) return 0;
  std::uint8_t* p = out.data();
  std::uint8_t* body = p + kHeaderSize;
  std::visit(
      [&](const auto& v) {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, Hello>) {
          put_header(p, Type::Hello, 0, b.size);
          put32(body, kMagic);
          body[4] = v.version;
          body[5] = static_cast<std::uint8_t>(v.role);
          body[6] = static_cast<std::uint8_t>(v.mode);
          body[7] = 0;
          put16(body + 8, v.capabilities);
          if ((v.capabilities & kCapAuth) != 0)
            std::memcpy(body + kHelloBody, v.nonce.data(), kNonceSize);
          if ((v.capabilities & kCapExpress) != 0)
            put64(body + hello_token_at(v.capabilities), v.express_token);
          if ((v.capabilities & kCapDirect) != 0)
            put_endpoint(body + hello_direct_at(v.capabilities), v.direct);
        } else if constexpr (std::is_same_v<T, Open>) {
          put_header(p, Type::Open, v.has_payload ? kOpenHasPayload : 0, b.size);
          put32(body, v.flow_id);
          std::uint8_t* q = put_endpoint(body + kFlowIdSize, v.client);
          q = put_endpoint(q, v.remote);
          // memcpy with a null source is UB even for 0 bytes; an empty span may be null.
          if (!v.payload.empty()) std::memcpy(q, v.payload.data(), v.payload.size());
        } else if constexpr (std::is_same_v<T, Data>) {
          put_header(p, Type::Data,
                     v.sequenced ? kDataSequenced | (v.copy_back ? kDataCopyBack : 0) : 0, b.size);
          put32(body, v.flow_id);
          std::uint8_t* q = body + kFlowIdSize;
          if (v.sequenced) {
            put32(q, v.seq);
            q += kSeqSize;
          }
          if (!v.payload.empty()) std::memcpy(q, v.payload.data(), v.payload.size());
        } else if constexpr (std::is_same_v<T, Close>) {
          put_header(p, Type::Close, 0, b.size);
          std::uint8_t* q = put_endpoint(body, v.client);
          *q = static_cast<std::uint8_t>(v.reason);
        } else if constexpr (std::is_same_v<T, Reset>) {
          put_header(p, Type::Reset, 0, b.size);
          put32(body, v.flow_id);
          body[kFlowIdSize] = static_cast<std::uint8_t>(v.reason);
        } else if constexpr (std::is_same_v<T, Auth>) {
          put_header(p, Type::Auth, 0, b.size);
          std::memcpy(body, v.mac.data(), kMacSize);
        } else if constexpr (std::is_same_v<T, Icmp>) {
          put_header(p, Type::Icmp, 0, b.size);
          put32(body, v.flow_id);
          body[4] = static_cast<std::uint8_t>(v.kind);
          body[5] = 0;
          put16(body + 6, v.mtu);
          put16(body + 8, v.length);
        } else {
          put_header(p, Type::Keepalive, v.reply_requested ? kKeepaliveReplyRequested : 0,
                     0);
        }
      },
      f);
  return kHeaderSize + b.size;
}

std::size_t encode_data_header(std::uint32_t flow_id, std::size_t payload_len,
                               std::uint8_t* out) {
  // A length that does not fit would desynchronise the whole stream; writing nothing
  // and returning 0 lets a caller that checks notice before anything is sent.
  if (payload_len > kMaxDataPayload) return 0;
  put_header(out, Type::Data, 0, kFlowIdSize + payload_len);
  put32(out + kHeaderSize, flow_id);
  return kDataOverhead;
}

}  // namespace mpudp::wire

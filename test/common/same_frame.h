// Frame equality for the tests and the fuzzer: frames hold spans, which have no ==, so
// payloads compare by content; a HELLO's nonce and express token count only when its
// capabilities say they are there (the decoder leaves them zero otherwise).
#pragma once

#include <algorithm>
#include <span>
#include <variant>

#include "wire/frame.h"

namespace mpudp::wire::testing {

inline bool same_bytes(std::span<const std::uint8_t> a, std::span<const std::uint8_t> b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end());
}

inline bool same_frame(const Frame& a, const Frame& b) {
  if (a.index() != b.index()) return false;
  if (auto* x = std::get_if<Hello>(&a)) {
    auto& y = std::get<Hello>(b);
    return x->version == y.version && x->role == y.role && x->mode == y.mode &&
           x->capabilities == y.capabilities &&
           ((x->capabilities & kCapAuth) == 0 || x->nonce == y.nonce) &&
           ((x->capabilities & kCapExpress) == 0 || x->express_token == y.express_token) &&
           ((x->capabilities & kCapDirect) == 0 || x->direct == y.direct);
  }
  if (auto* x = std::get_if<Auth>(&a)) return x->mac == std::get<Auth>(b).mac;
  if (auto* x = std::get_if<Open>(&a)) {
    auto& y = std::get<Open>(b);
    return x->flow_id == y.flow_id && x->client == y.client && x->remote == y.remote &&
           x->has_payload == y.has_payload && same_bytes(x->payload, y.payload);
  }
  if (auto* x = std::get_if<Data>(&a)) {
    auto& y = std::get<Data>(b);
    return x->flow_id == y.flow_id && x->sequenced == y.sequenced && x->seq == y.seq &&
           x->copy_back == y.copy_back &&
           same_bytes(x->payload, y.payload);
  }
  if (auto* x = std::get_if<Close>(&a)) {
    auto& y = std::get<Close>(b);
    return x->client == y.client && x->reason == y.reason;
  }
  if (auto* x = std::get_if<Reset>(&a)) {
    auto& y = std::get<Reset>(b);
    return x->flow_id == y.flow_id && x->reason == y.reason;
  }
  if (auto* x = std::get_if<Icmp>(&a)) {
    auto& y = std::get<Icmp>(b);
    return x->flow_id == y.flow_id && x->kind == y.kind && x->mtu == y.mtu &&
           x->length == y.length;
  }
  return std::get<Keepalive>(a).reply_requested == std::get<Keepalive>(b).reply_requested;
}

}  // namespace mpudp::wire::testing

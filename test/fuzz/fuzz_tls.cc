// The TLS record layer (tunnel/tls.h) against arbitrary ciphertext. The input's first
// byte picks a scenario and a chunk size, the rest is what a socket would deliver:
//   bit 0 clear: a fresh concentrator session (PSK mode) reads it as a ClientHello and
//      what follows; it must never establish (nobody without the key can), and once
//      failed it stays failed.
//   bit 0 set: an honest CPE and concentrator complete a handshake first, then the
//      bytes reach the concentrator as records of the established session: none of
//      them may yield plaintext (nothing was encrypted under its keys).
// Bits 1-7: the chunk size the bytes arrive in (1..127), so partial headers and records
// split anywhere are exercised.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <span>
#include <variant>
#include <vector>

#include "../common/tls_loopback.h"
#include "tunnel/tls.h"

using namespace mpudp;

namespace {

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "fuzz_tls: %s\n", what);
  std::abort();
}

std::shared_ptr<TlsContext> make(const TlsSettings& s) {
  auto r = TlsContext::create(s);
  if (!std::holds_alternative<std::shared_ptr<TlsContext>>(r)) fail("context");
  return std::get<std::shared_ptr<TlsContext>>(r);
}

struct Contexts {
  std::shared_ptr<TlsContext> client, server;
  Contexts() {
    TlsSettings c;
    c.role = TlsRole::Client;
    c.identity = "home-17";
    c.psk.assign(32, 'k');
    c.resumption = false;
    TlsSettings s;
    s.role = TlsRole::Server;
    s.peers["home-17"].assign(32, 'k');
    s.resumption = false;
    client = make(c);
    server = make(s);
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static Contexts ctx;
  if (size < 1) return 0;
  const bool established = (data[0] & 1) != 0;
  const std::size_t chunk = std::max<std::size_t>(1, data[0] >> 1);
  std::span<const std::uint8_t> in(data + 1, size - 1);

  TlsSession server(ctx.server);
  std::vector<std::uint8_t> out;
  std::uint8_t plain[4096];
  if (established) {
    TlsSession client(ctx.client);
    if (!loopback_handshake(client, server, plain)) fail("honest handshake failed");
  }
  bool was_failed = false;
  while (!in.empty()) {
    auto piece = in.first(std::min(chunk, in.size()));
    std::size_t off = 0;
    for (int guard = 0; guard < 1000; ++guard) {
      auto r = server.receive(piece.subspan(off), plain, out);
      if (r.plaintext != 0) fail("plaintext from bytes nobody encrypted");
      if (r.consumed > piece.size() - off) fail("consumed more than given");
      off += r.consumed;
      if (off == piece.size() || server.failed()) break;
      if (r.consumed == 0) fail("no progress");
    }
    if (was_failed && !server.failed()) fail("failure not final");
    was_failed = server.failed();
    if (!established && server.established()) fail("established without the key");
    in = in.subspan(piece.size());
    out.clear();
  }
  return 0;
}

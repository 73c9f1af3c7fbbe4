// tlsbench: what the TLS record layer (tunnel/tls.h) costs on this machine, one core.
//
//   tlsbench [SECONDS]     (default 2 per measurement)
//
// Prints, for each cipher suite: encryption of 1200-byte frames in batches of 32
// (coalesced into 16 KiB records, as the tunnel writes them) and decryption of the
// result, in Gbit/s of plaintext; then PSK handshakes per second (both ends on this
// core, so one handshake costs two ends' work) and the heap a concentrator session
// holds before authentication. Not a test: numbers vary with the machine and its load.
#include <malloc.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "../test/common/tls_loopback.h"
#include "tunnel/tls.h"

using namespace mpudp;
using Clock = std::chrono::steady_clock;

namespace {

std::shared_ptr<TlsContext> make(const TlsSettings& s) {
  auto r = TlsContext::create(s);
  if (auto* e = std::get_if<std::string>(&r)) {
    std::fprintf(stderr, "tlsbench: %s\n", e->c_str());
    std::exit(1);
  }
  return std::get<std::shared_ptr<TlsContext>>(r);
}

TlsSettings client(TlsCipherPreference c) {
  TlsSettings s;
  s.role = TlsRole::Client;
  s.identity = "bench";
  s.psk.assign(32, 'b');
  s.ciphers = c;
  s.key_update_bytes = 0;
  s.resumption = false;
  return s;
}

TlsSettings server() {
  TlsSettings s;
  s.role = TlsRole::Server;
  s.peers["bench"].assign(32, 'b');
  s.resumption = false;
  return s;
}

std::uint8_t g_plain[65536];

bool handshake(TlsSession& c, TlsSession& s) { return loopback_handshake(c, s, g_plain); }

void throughput(TlsCipherPreference pref, double seconds) {
  auto cctx = make(client(pref));
  auto sctx = make(server());
  TlsSession c(cctx), s(sctx);
  if (!handshake(c, s)) {
    std::fprintf(stderr, "tlsbench: handshake failed\n");
    std::exit(1);
  }
  std::vector<std::uint8_t> frame(1200, 0x5a);
  std::vector<std::span<const std::uint8_t>> batch(32, std::span<const std::uint8_t>(frame));
  std::vector<std::uint8_t> wire;
  wire.reserve(1 << 20);
  std::uint64_t bytes = 0;
  std::uint64_t dec_bytes = 0;
  double enc_s = 0, dec_s = 0;
  auto end = Clock::now() + std::chrono::duration<double>(seconds);
  while (Clock::now() < end) {
    wire.clear();
    auto t0 = Clock::now();
    for (int i = 0; i < 16; ++i) {
      c.encrypt(batch, wire);
      bytes += 32 * frame.size();
    }
    auto t1 = Clock::now();
    std::vector<std::uint8_t> out;
    std::size_t off = 0;
    while (off < wire.size()) {
      auto r = s.receive(std::span(wire).subspan(off), g_plain, out);
      dec_bytes += r.plaintext;
      off += r.consumed;
      if (s.failed()) std::exit(1);
    }
    auto t2 = Clock::now();
    enc_s += std::chrono::duration<double>(t1 - t0).count();
    dec_s += std::chrono::duration<double>(t2 - t1).count();
  }
  std::printf("%-30s encrypt %6.2f Gbit/s   decrypt %6.2f Gbit/s   (1200-byte frames, 32 per batch)\n",
              c.cipher().c_str(), static_cast<double>(bytes) * 8 / enc_s / 1e9,
              static_cast<double>(dec_bytes) * 8 / dec_s / 1e9);
}

void handshakes(double seconds, bool tickets) {
  TlsSettings cs = client(TlsCipherPreference::Auto);
  TlsSettings ss = server();
  cs.resumption = ss.resumption = tickets;
  auto cctx = make(cs);
  auto sctx = make(ss);
  int n = 0;
  auto t0 = Clock::now();
  auto end = t0 + std::chrono::duration<double>(seconds);
  while (Clock::now() < end) {
    TlsSession c(cctx), s(sctx);
    if (!handshake(c, s)) std::exit(1);
    ++n;
  }
  double dt = std::chrono::duration<double>(Clock::now() - t0).count();
  std::printf("PSK handshakes (psk_dhe_ke, X25519)%s, both ends on one core: %.0f/s (%.0f us each)\n",
              tickets ? " with session tickets" : "", n / dt, dt / n * 1e6);
}

void memory() {
  auto cctx = make(client(TlsCipherPreference::Auto));
  auto sctx = make(server());
  constexpr int kN = 200;
  std::vector<std::vector<std::uint8_t>> hellos(kN);
  for (auto& h : hellos) {
    TlsSession c(cctx);
    c.start(h);
  }
  std::vector<std::unique_ptr<TlsSession>> ss;
  ss.reserve(kN);
  std::vector<std::uint8_t> out;
  auto before = mallinfo2().uordblks;
  for (int i = 0; i < kN; ++i) {
    ss.push_back(std::make_unique<TlsSession>(sctx));
    ss.back()->receive(std::span(hellos[static_cast<std::size_t>(i)]).first(5), g_plain, out);
  }
  auto five = (mallinfo2().uordblks - before) / kN;
  ss.clear();
  before = mallinfo2().uordblks;
  for (int i = 0; i < kN; ++i) {
    ss.push_back(std::make_unique<TlsSession>(sctx));
    out.clear();
    ss.back()->receive(hellos[static_cast<std::size_t>(i)], g_plain, out);
  }
  auto whole = (mallinfo2().uordblks - before) / kN;
  std::printf("concentrator session before authentication: %zu bytes after 5 bytes, %zu bytes "
              "after a valid ClientHello (awaiting Finished)\n", five, whole);
  ss.clear();
  // An established pair that carried one 64-byte frame each way, as a per-binding
  // session serving one DNS query holds it while its binding lives.
  std::vector<std::unique_ptr<TlsSession>> pairs;
  pairs.reserve(2 * kN);
  before = mallinfo2().uordblks;
  for (int i = 0; i < kN; ++i) {
    pairs.push_back(std::make_unique<TlsSession>(cctx));
    pairs.push_back(std::make_unique<TlsSession>(sctx));
    TlsSession& c = *pairs[pairs.size() - 2];
    TlsSession& sv = *pairs.back();
    if (!handshake(c, sv)) std::exit(1);
    const std::uint8_t frame[64] = {};
    const std::span<const std::uint8_t> one[] = {frame};
    std::vector<std::uint8_t> wire;
    c.encrypt(one, wire);
    sv.receive(wire, g_plain, out);
    wire.clear();
    sv.encrypt(one, wire);
    c.receive(wire, g_plain, out);
  }
  auto pair = (mallinfo2().uordblks - before) / kN;
  std::printf("established session pair after one 64-byte frame each way: %zu bytes (both ends)\n",
              pair);
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = argc > 1 ? std::atof(argv[1]) : 2.0;
  if (seconds <= 0) seconds = 2.0;
  std::printf("CPU has AES instructions: %s\n", cpu_has_aes() ? "yes" : "no");
  throughput(TlsCipherPreference::AesGcm, seconds);
  throughput(TlsCipherPreference::ChaCha20, seconds);
  handshakes(seconds, false);
  handshakes(seconds, true);
  memory();
  return 0;
}

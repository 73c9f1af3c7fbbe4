// nfqecho: a test peer for the NFQUEUE room without the daemon. It reads LAN UDP from an
// NFQUEUE (NfqueueIntercept: header parsing, drop verdicts) and answers each datagram with
// its own payload from the original destination (RawReplies; too large for the raw path,
// a transparent socket), so udpprobe can check sources, payloads and checksums.
//   nfqecho QUEUE [open|closed]
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "intercept/nfqueue.h"
#include "intercept/tproxy.h"

using namespace mpudp;

namespace {
struct Failures final : SendBatch::Report {
  void on_sent(int, std::size_t) override {}
  void on_send_failed(int, int err, const sockaddr*, socklen_t) override {
    std::fprintf(stderr, "transparent send failed: %s\n", std::strerror(err));
  }
};

struct Echo final : LanSink {
  RawReplies* raw = nullptr;
  ReplySockets* transparent = nullptr;
  SendBatch* sends = nullptr;
  void on_lan_datagram(const Endpoint& client, const Endpoint& dst,
                       std::span<const std::uint8_t> payload, std::uint8_t) override {
    const auto r = raw->send(dst, client, payload);
    if (r == RawReplies::Result::TooBig) {
      transparent->send(dst, client, payload, nullptr, nullptr);
      sends->flush();  // `payload` lives only during this call
    }
    std::fprintf(stderr, "got %zu from %s to %s via %s\n", payload.size(), client.str().c_str(),
                 dst.str().c_str(), r == RawReplies::Result::Sent ? "raw" : "transparent");
  }
};
}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: nfqecho QUEUE [open|closed]\n");
    return 64;
  }
  Loop* loop = ev_default_loop(0);
  Stats stats;
  std::string err;
  Echo echo;
  Failures failures;
  SendBatch sends(failures);
  ReplySockets transparent(16, sends, stats);
  auto raw = RawReplies::open(stats, &err);
  if (!raw) {
    std::fprintf(stderr, "nfqecho: %s\n", err.c_str());
    return 1;
  }
  echo.raw = raw.get();
  echo.transparent = &transparent;
  echo.sends = &sends;
  NfqueueIntercept::Options opts;
  opts.queue = static_cast<std::uint16_t>(std::atoi(argv[1]));
  opts.fail_open = argc < 3 || std::string(argv[2]) != "closed";
  auto q = NfqueueIntercept::open(loop, opts, echo, stats, &err);
  if (!q) {
    std::fprintf(stderr, "nfqecho: %s\n", err.c_str());
    return 1;
  }
  SignalWatcher term(loop, SIGTERM, [loop](int) { ev_break(loop, EVBREAK_ALL); });
  std::fprintf(stderr, "ready\n");
  ev_run(loop, 0);
  std::fprintf(stderr, "%s\n", stats.to_json().c_str());
  return 0;
}

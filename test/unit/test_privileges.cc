#include <catch2/catch.hpp>

#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <variant>

#include "config/config.h"
#include "core/privileges.h"

using namespace mpudp;

namespace {

Config load(const std::string& yaml) {
  auto r = load_config_string("auth: none\n" + yaml, "t.yaml");
  if (auto* e = std::get_if<ConfigError>(&r)) FAIL("unexpected error: " << e->str());
  return std::get<Config>(r);
}

const std::string kCpe = "role: cpe\ncpe:\n  concentrator: 198.18.2.2:7000\n";
const std::string kConc = "role: concentrator\nconcentrator:\n  listen: [\"0.0.0.0:7000\"]\n";

HostFacts roomy() {
  HostFacts h;
  h.allowed_congestion_control = "reno cubic";
  h.rmem_max = 4 << 20;
  return h;
}

std::uint64_t mask(const std::vector<CapabilityNeed>& needs) {
  std::uint64_t m = 0;
  for (const CapabilityNeed& n : needs) {
    CHECK_FALSE(n.why.empty());
    m |= std::uint64_t{1} << n.cap;
  }
  return m;
}

constexpr std::uint64_t bit(int cap) { return std::uint64_t{1} << cap; }

}  // namespace

TEST_CASE("a TPROXY CPE keeps CAP_NET_ADMIN and CAP_NET_BIND_SERVICE, never CAP_NET_RAW") {
  auto needs = capabilities_needed(load(kCpe), roomy());
  CHECK(mask(needs) == (bit(CAP_NET_ADMIN) | bit(CAP_NET_BIND_SERVICE)));
  CHECK(needs.size() == 2);  // one entry per capability
  // With paths too: still once each.
  needs = capabilities_needed(load(kCpe + "paths:\n  - interface: up0\n"), roomy());
  CHECK(mask(needs) == (bit(CAP_NET_ADMIN) | bit(CAP_NET_BIND_SERVICE)));
  CHECK(needs.size() == 2);
}

TEST_CASE("an NFQUEUE CPE keeps the same two: its raw sockets are made at start") {
  auto needs = capabilities_needed(load(kCpe + "intercept: nfqueue\n"), roomy());
  CHECK(mask(needs) == (bit(CAP_NET_ADMIN) | bit(CAP_NET_BIND_SERVICE)));
  CHECK(needs[0].why.find("NFQUEUE verdict") != std::string::npos);
}

TEST_CASE("a plain concentrator on a high port keeps nothing") {
  CHECK(capabilities_needed(load(kConc), roomy()).empty());
}

TEST_CASE("a concentrator keeps what its configuration and host make it use") {
  // A low port: bound again by a reload.
  auto needs = capabilities_needed(
      load("role: concentrator\nconcentrator:\n  listen: [\"0.0.0.0:443\"]\n"), roomy());
  REQUIRE(needs.size() == 1);
  CHECK(needs[0].cap == CAP_NET_BIND_SERVICE);
  CHECK(needs[0].why.find("443") != std::string::npos);
  // The path manager.
  CHECK(mask(capabilities_needed(load(kConc + "paths:\n  - interface: eth0\n"), roomy())) ==
        bit(CAP_NET_ADMIN));
  // A congestion control an unprivileged socket may not choose; an allowed one is fine.
  auto cc = capabilities_needed(load(kConc + "tunnel:\n  congestion_control: bbr\n"), roomy());
  REQUIRE(cc.size() == 1);
  CHECK(cc[0].cap == CAP_NET_ADMIN);
  CHECK(cc[0].why.find("bbr") != std::string::npos);
  CHECK(capabilities_needed(load(kConc + "tunnel:\n  congestion_control: cubic\n"), roomy())
            .empty());
  // The copy carriers' (bbr by default) counts only where copies are on.
  const std::string copies = "tunnel:\n  express: true\n  copies: true\n";
  auto copy_cc = capabilities_needed(load(kConc + copies), roomy());
  REQUIRE(copy_cc.size() == 1);
  CHECK(copy_cc[0].cap == CAP_NET_ADMIN);
  CHECK(copy_cc[0].why == "tunnel.copy_congestion_control \"bbr\" is not in "
                          "net.ipv4.tcp_allowed_congestion_control");
  CHECK(capabilities_needed(load(kConc + copies + "  copy_congestion_control: cubic\n"), roomy())
            .empty());
  CHECK(capabilities_needed(load(kConc + copies + "  copy_congestion_control: \"\"\n"), roomy())
            .empty());
  HostFacts with_bbr = roomy();
  with_bbr.allowed_congestion_control = "reno cubic bbr";
  CHECK(capabilities_needed(load(kConc + copies), with_bbr).empty());
  // SO_RCVBUFFORCE for the relay sockets when rmem_max is below their buffer.
  HostFacts small = roomy();
  small.rmem_max = 212992;
  auto rb = capabilities_needed(load(kConc + "tunnel:\n  receive_buffer: 0\n"), small);
  REQUIRE(rb.size() == 1);
  CHECK(rb[0].cap == CAP_NET_ADMIN);
  CHECK(rb[0].why.find("rmem_max 212992") != std::string::npos);
  // The tunnel sockets' fixed receive buffer, forced past rmem_max too.
  auto tb = capabilities_needed(load(kConc + "tunnel:\n  receive_buffer: 4194304\n"), roomy());
  CHECK(tb.empty());
  tb = capabilities_needed(load(kConc + "tunnel:\n  receive_buffer: 4194305\n"), roomy());
  REQUIRE(tb.size() == 1);
  CHECK(tb[0].cap == CAP_NET_ADMIN);
  CHECK(tb[0].why == "tunnel.receive_buffer 4194305 is above net.core.rmem_max 4194304 "
                     "(SO_RCVBUFFORCE)");
  // One entry per capability, with the first reason found.
  CHECK(capabilities_needed(load(kConc), small).size() == 1);
}

TEST_CASE("keep_only_capabilities leaves exactly the kept ones that were held") {
  // In a child, so that this process keeps what it has.
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    const std::uint64_t before = effective_capabilities();
    const std::uint64_t keep = bit(CAP_NET_ADMIN) | bit(CAP_NET_BIND_SERVICE);
    std::string err;
    if (!keep_only_capabilities(keep, &err)) _exit(10);
    if (effective_capabilities() != (before & keep)) _exit(11);
    // Gone for good: not in the bounding set either (when we could drop it there).
    if ((before >> CAP_SETPCAP) & 1)
      if (prctl(PR_CAPBSET_READ, CAP_SYS_ADMIN, 0, 0, 0) != 0) _exit(12);
    if (!keep_only_capabilities(0, &err)) _exit(13);
    if (effective_capabilities() != 0) _exit(14);
    _exit(0);
  }
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE("capability names") {
  CHECK(capability_name(CAP_NET_ADMIN) == "cap_net_admin");
  CHECK(capability_name(CAP_NET_BIND_SERVICE) == "cap_net_bind_service");
  CHECK(capability_name(40) == "cap_40");
}

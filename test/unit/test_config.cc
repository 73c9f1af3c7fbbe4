#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <string_view>

#include "config/config.h"

using namespace mpudp;
using namespace std::chrono_literals;

namespace {

// `auth` is required on both roles; tests about other keys get `auth: none` added in
// front (block-style documents only) unless they say something about auth themselves.
std::string with_auth(std::string_view yaml) {
  if (yaml.find("auth") != std::string_view::npos || yaml.empty() || yaml.front() == '{' ||
      yaml.front() == '%' || yaml.front() == '-')
    return std::string(yaml);
  return "auth: none\n" + std::string(yaml);
}

Config ok(std::string_view yaml) {
  auto r = load_config_string(with_auth(yaml), "t.yaml");
  if (auto* e = std::get_if<ConfigError>(&r)) FAIL("unexpected error: " << e->str());
  return std::get<Config>(r);
}

// "FILE:LINE:COL: message", which pins position and wording at once.
std::string err(std::string_view yaml) {
  auto r = load_config_string(yaml, "t.yaml");
  if (std::holds_alternative<Config>(r)) FAIL("accepted:\n" << yaml);
  return std::get<ConfigError>(r).str();
}

constexpr std::string_view kCpeHead = "role: cpe\ncpe:\n  concentrator: 198.18.2.2:7000\n";
constexpr std::string_view kConcHead =
    "role: concentrator\nconcentrator:\n  listen: \"[::]:7000\"\n";

std::string cpe(std::string_view tail) { return std::string(kCpeHead) + std::string(tail); }

// A scratch directory that cleans up after itself, for the file-loading tests.
struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/mpudp-config-test-XXXXXX";
    REQUIRE(mkdtemp(tmpl) != nullptr);
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string write(const std::string& name, std::string_view text, mode_t mode) const {
    std::string p = path + "/" + name;
    std::ofstream(p) << text;
    REQUIRE(::chmod(p.c_str(), mode) == 0);
    return p;
  }
};

}  // namespace

TEST_CASE("full CPE configuration", "[config]") {
  auto c = ok(R"(# CPE side
role: cpe
log_level: debug
session_mode: per-binding
cpe:
  tproxy_port: 6000
  concentrator: 198.18.2.2:7000
bindings:
  idle_timeout: 500ms
  max: 1000
  max_remotes: 8
tunnel:
  keepalive: 2m
  queue_bytes: 16384
  queue_target: 10ms
  queue_interval: 200ms
  target_delay: 20ms
  express: false
  express_priority: 4
  express_dscp: ef
  express_rate: 3mbit
  limit_path_queue: true
  receive_buffer: 65536
)");
  CHECK(c.role == ProxyRole::Cpe);
  CHECK(c.log_level == LogLevel::Debug);
  CHECK(c.session_mode == SessionModeConfig::PerBinding);
  CHECK(c.cpe.tproxy_port == 6000);
  CHECK(c.cpe.concentrator == *Endpoint::parse("198.18.2.2:7000"));
  CHECK(c.bindings.idle_timeout == 500ms);
  CHECK(c.bindings.max == 1000);
  CHECK(c.bindings.max_remotes == 8);
  CHECK(c.tunnel.keepalive == 120s);
  CHECK(c.tunnel.queue_bytes == 16384);
  CHECK(c.tunnel.queue_target == 10ms);
  CHECK(c.tunnel.queue_interval == 200ms);
  CHECK(c.tunnel.target_delay == 20ms);
  CHECK_FALSE(c.tunnel.express);
  CHECK(c.tunnel.express_priority == 4);
  CHECK(c.tunnel.express_dscp == 46);
  CHECK(c.tunnel.express_rate == 375000);
  CHECK(c.tunnel.limit_path_queue);
  CHECK(c.tunnel.receive_buffer == 65536);
  CHECK(c.concentrator.listen.empty());
}

TEST_CASE("full concentrator configuration", "[config]") {
  auto c = ok(R"(role: concentrator
log_level: warn
session_mode: multiplexed
concentrator:
  listen: ["0.0.0.0:7000", "[::]:7000"]
bindings:
  idle_timeout: 1h
  max: 10000000
  max_remotes: 4096
tunnel:
  keepalive: 1h
  queue_bytes: 67108864
)");
  CHECK(c.role == ProxyRole::Concentrator);
  CHECK(c.log_level == LogLevel::Warn);
  CHECK(c.session_mode == SessionModeConfig::Multiplexed);
  REQUIRE(c.concentrator.listen.size() == 2);
  CHECK(c.concentrator.listen[0] == *Endpoint::parse("0.0.0.0:7000"));
  CHECK(c.concentrator.listen[1] == *Endpoint::parse("[::]:7000"));
  CHECK(c.bindings.idle_timeout == 1h);
  CHECK(c.bindings.max == 10000000);
  CHECK(c.bindings.max_remotes == 4096);
  CHECK(c.tunnel.keepalive == 1h);
  CHECK(c.tunnel.queue_bytes == 67108864);
  CHECK_FALSE(c.cpe.concentrator.valid());
}

TEST_CASE("omitted keys take their defaults", "[config]") {
  auto c = ok(kCpeHead);
  Config d;
  CHECK(c.log_level == LogLevel::Info);
  CHECK(c.session_mode == SessionModeConfig::Multiplexed);
  CHECK(c.cpe.tproxy_port == 5555);
  CHECK(c.bindings.idle_timeout == 300s);
  CHECK(c.bindings.max == 65536);
  CHECK(c.bindings.max_remotes == 64);
  CHECK(c.cpe.max_bindings_per_host == 0);
  CHECK(c.concentrator.max_bindings_per_cpe == 8192);
  CHECK(c.concentrator.filtering == FilteringConfig::EndpointIndependent);
  CHECK(c.concentrator.refresh_on_inbound);
  CHECK_FALSE(c.concentrator.reuse_port);
  CHECK(c.tunnel.keepalive == 15s);
  CHECK(c.tunnel.queue_bytes == 2097152);
  CHECK(c.tunnel.queue_target == 5ms);
  CHECK(c.tunnel.queue_interval == 100ms);
  CHECK(c.tunnel.target_delay == 20ms);
  CHECK(c.tunnel.express);
  CHECK(c.tunnel.express_priority == 6);
  CHECK(c.tunnel.express_dscp == 0);
  CHECK_FALSE(c.tunnel.limit_path_queue);
  CHECK(c.tunnel.congestion_control.empty());
  CHECK(c.tunnel.receive_buffer == 4194304);
  CHECK(c.tunnel.path_recovery == PathRecovery::Kernel);
  CHECK(c.bindings.idle_timeout == d.bindings.idle_timeout);
  CHECK(c.tunnel.queue_bytes == d.tunnel.queue_bytes);
}

TEST_CASE("a section with nothing under it keeps its defaults", "[config]") {
  auto c = ok(cpe("bindings:\n  # max: 5\ntunnel:\n"));
  CHECK(c.bindings.max == 65536);
  CHECK(c.tunnel.keepalive == 15s);
}

TEST_CASE("one file can serve both roles", "[config]") {
  std::string both =
      "cpe:\n  concentrator: 198.18.2.2:7000\nconcentrator:\n  listen: 0.0.0.0:7000\n";
  CHECK(ok("role: cpe\n" + both).role == ProxyRole::Cpe);
  CHECK(ok("role: concentrator\n" + both).role == ProxyRole::Concentrator);
  // The other role's section is still checked.
  CHECK(err("role: cpe\n" + both + "  bogus: 1\n") ==
        "t.yaml:6:3: unknown key \"bogus\" in concentrator");
  // An empty listen list only matters to a concentrator.
  CHECK(ok(cpe("concentrator:\n  listen: []\n")).concentrator.listen.empty());
}

TEST_CASE("concentrator.direct_address: an address, the listen port, a listener if needed",
          "[config]") {
  auto c = ok(std::string(kConcHead) + "  direct_address: 2001:db8:100::11\n");
  CHECK(c.concentrator.direct_address == *Endpoint::parse_address("2001:db8:100::11"));
  CHECK(direct_endpoint(c) == *Endpoint::parse("[2001:db8:100::11]:7000"));
  CHECK(listens_on(c.concentrator.listen, direct_endpoint(c)));  // [::]:7000 takes it
  CHECK_FALSE(direct_endpoint(ok(std::string(kConcHead))).valid());
  const std::vector<Endpoint> v4{*Endpoint::parse("198.18.110.11:7000")};
  CHECK_FALSE(listens_on(v4, *Endpoint::parse("198.18.100.11:7000")));
  CHECK(listens_on(v4, *Endpoint::parse("198.18.110.11:7000")));
  CHECK_FALSE(listens_on(c.concentrator.listen, *Endpoint::parse("198.18.100.11:7000")));
  CHECK(err(std::string(kConcHead) + "  direct_address: 198.18.100.11:7000\nauth: none\n") ==
        "t.yaml:4:19: concentrator.direct_address: \"198.18.100.11:7000\" is not an IP address "
        "(no port: the first listen entry's is used)");
  CHECK(err(std::string(kConcHead) + "  direct_address: 224.0.0.1\nauth: none\n") ==
        "t.yaml:4:19: concentrator.direct_address: \"224.0.0.1\" is not a unicast address a "
        "CPE could connect to");
}

TEST_CASE("listen takes a single string", "[config]") {
  auto c = ok("role: concentrator\nconcentrator:\n  listen: 198.18.2.2:7000\n");
  REQUIRE(c.concentrator.listen.size() == 1);
  CHECK(c.concentrator.listen[0].str() == "198.18.2.2:7000");
}

TEST_CASE("listen takes a block list", "[config]") {
  auto c =
      ok("role: concentrator\nconcentrator:\n  listen:\n    - 0.0.0.0:7000\n    - \"[::]:7001\"\n");
  REQUIRE(c.concentrator.listen.size() == 2);
  CHECK(c.concentrator.listen[1].str() == "[::]:7001");
}

TEST_CASE("IPv6 endpoints", "[config]") {
  auto c = ok("role: cpe\ncpe:\n  concentrator: \"[2001:db8:2::2]:7000\"\n");
  CHECK(c.cpe.concentrator.is_v6());
  CHECK(c.cpe.concentrator.str() == "[2001:db8:2::2]:7000");
  // Unquoted works too: a plain scalar may start with '[' only in flow context, so this is
  // the spelling people will try first and get a syntax error for.
  CHECK(err("role: cpe\ncpe:\n  concentrator: [2001:db8:2::2]:7000\n").rfind("t.yaml:3:", 0) == 0);
  CHECK(err("role: cpe\ncpe:\n  concentrator: 2001:db8:2::2:7000\n") ==
        "t.yaml:3:17: cpe.concentrator: \"2001:db8:2::2:7000\" is not an address:port");
}

TEST_CASE("durations", "[config]") {
  auto idle = [](std::string_view v) {
    return ok(cpe("bindings:\n  idle_timeout: " + std::string(v) + "\n")).bindings.idle_timeout;
  };
  CHECK(idle("100ms") == 100ms);
  CHECK(idle("2s") == 2s);
  CHECK(idle("5m") == 5min);
  CHECK(idle("24h") == 24h);
  CHECK(idle("30") == 30s);
  CHECK(idle("\"45\"") == 45s);
  CHECK(idle("86400000ms") == 24h);

  auto bad = [](std::string_view v) {
    return err(cpe("bindings:\n  idle_timeout: " + std::string(v) + "\n"));
  };
  CHECK(bad("5x") ==
        "t.yaml:5:17: bindings.idle_timeout: \"5x\" is not a duration (use 500ms, 2s, 5m)");
  for (auto v : {"1.5s", "-1s", "+1s", "s", "ms", "5 s", "5S", "1e3", "0x10", "5sec", "1h30m"}) {
    INFO(v);
    CHECK(bad(v).find("is not a duration") != std::string::npos);
  }
  CHECK(bad("99ms") == "t.yaml:5:17: bindings.idle_timeout: 99ms is out of range (100ms..24h)");
  CHECK(bad("0") == "t.yaml:5:17: bindings.idle_timeout: 0 is out of range (100ms..24h)");
  CHECK(bad("25h") == "t.yaml:5:17: bindings.idle_timeout: 25h is out of range (100ms..24h)");
  CHECK(bad("86400001ms").find("is out of range (100ms..24h)") != std::string::npos);
  CHECK(bad("99999999999999999999999999h").find("is out of range") != std::string::npos);
  CHECK(bad("18446744073709551615ms").find("is out of range") != std::string::npos);
  CHECK(bad("18446744073709551615h").find("is out of range") != std::string::npos);

  CHECK(err(cpe("tunnel:\n  keepalive: 999ms\n")) ==
        "t.yaml:5:14: tunnel.keepalive: 999ms is out of range (1s..1h)");
  CHECK(err(cpe("tunnel:\n  keepalive: 61m\n")) ==
        "t.yaml:5:14: tunnel.keepalive: 61m is out of range (1s..1h)");
  CHECK(err(cpe("tunnel:\n  target_delay: 2s\n")) ==
        "t.yaml:5:17: tunnel.target_delay: 2s is out of range (0ms..1s)");
  CHECK(ok(cpe("tunnel:\n  target_delay: 0\n")).tunnel.target_delay == 0ms);
  CHECK(err(cpe("tunnel:\n  queue_target: 0\n")) ==
        "t.yaml:5:17: tunnel.queue_target: 0 is out of range (1ms..1s)");
  CHECK(err(cpe("tunnel:\n  queue_interval: 11s\n")) ==
        "t.yaml:5:19: tunnel.queue_interval: 11s is out of range (10ms..10s)");
  CHECK(err(cpe("tunnel:\n  queue_target: soon\n")) ==
        "t.yaml:5:17: tunnel.queue_target: \"soon\" is not a duration (use 500ms, 2s, 5m)");
  // CoDel drops once the wait stayed above the target for an interval: the target is the
  // shorter, whichever of the two the file sets.
  CHECK(err(cpe("tunnel:\n  queue_target: 100ms\n")) ==
        "t.yaml:5:17: tunnel.queue_target: 100ms is not shorter than tunnel.queue_interval "
        "(100ms): CoDel drops once the wait stayed above the target for an interval");
  CHECK(err(cpe("tunnel:\n  queue_interval: 20ms\n  queue_target: 30ms\n")) ==
        "t.yaml:6:17: tunnel.queue_target: 30ms is not shorter than tunnel.queue_interval "
        "(20ms): CoDel drops once the wait stayed above the target for an interval");
  CHECK(ok(cpe("tunnel:\n  queue_interval: 10ms\n")).tunnel.queue_interval == 10ms);
  CHECK(ok(cpe("tunnel:\n  queue_interval: 1s\n  queue_target: 50ms\n")).tunnel.queue_target ==
        50ms);
  // With limit_path_queue the limit also counts the paths' queues, which every flow
  // shares: unset, target_delay is 5 ms then; set, it is what it says, in either order.
  CHECK(ok(cpe("tunnel:\n  limit_path_queue: true\n")).tunnel.target_delay == 5ms);
  CHECK(ok(cpe("tunnel:\n  limit_path_queue: false\n")).tunnel.target_delay == 20ms);
  CHECK(ok(cpe("tunnel:\n  target_delay: 30ms\n  limit_path_queue: true\n"))
            .tunnel.target_delay == 30ms);
  CHECK(ok(cpe("tunnel:\n  limit_path_queue: true\n  target_delay: 0\n"))
            .tunnel.target_delay == 0ms);
  CHECK(ok(cpe("tunnel:\n  express_dscp: 34\n")).tunnel.express_dscp == 34);
  CHECK(ok(cpe("tunnel:\n  express_dscp: af41\n")).tunnel.express_dscp == 34);
  CHECK(ok(cpe("tunnel:\n  express_dscp: cs0\n")).tunnel.express_dscp == 0);
  CHECK(ok(cpe("tunnel:\n  express_priority: 0\n")).tunnel.express_priority == 0);
  CHECK(err(cpe("tunnel:\n  express_dscp: 64\n")) ==
        "t.yaml:5:17: tunnel.express_dscp: 64 is out of range (0..63)");
  // Names in capitals, as RFCs and router UIs write them.
  CHECK(ok(cpe("tunnel:\n  express_dscp: EF\n")).tunnel.express_dscp == 46);
  CHECK(err(cpe("tunnel:\n  express_dscp: EX\n")) ==
        "t.yaml:5:17: tunnel.express_dscp: \"EX\" is not a DSCP (0..63, or cs0..cs7, "
        "af11..af43, ef, va, le)");
  CHECK(ok(cpe("tunnel:\n  path_recovery: fast\n")).tunnel.path_recovery == PathRecovery::Fast);
  CHECK(ok(cpe("tunnel:\n  path_recovery: kernel\n")).tunnel.path_recovery ==
        PathRecovery::Kernel);
  CHECK(err(cpe("tunnel:\n  path_recovery: quick\n")) ==
        "t.yaml:5:18: tunnel.path_recovery: \"quick\" is not one of kernel, fast");
  CHECK(ok(cpe("tunnel:\n  congestion_control: cubic\n")).tunnel.congestion_control == "cubic");
  CHECK(ok(cpe("tunnel:\n  congestion_control: bbr\n")).tunnel.congestion_control == "bbr");
  // The kernel's names: no spaces, paths or anything TCP_CA_NAME_MAX (16) cannot hold.
  CHECK(err(cpe("tunnel:\n  congestion_control: \"\"\n")) ==
        "t.yaml:5:23: tunnel.congestion_control: \"\" is not a congestion control name "
        "(cubic, bbr, reno...: at most 15 letters, digits, _ or -)");
  CHECK(err(cpe("tunnel:\n  congestion_control: ../bbr\n")).find(
            "tunnel.congestion_control: \"../bbr\" is not a congestion control name") !=
        std::string::npos);
  CHECK(err(cpe("tunnel:\n  congestion_control: abcdefghijklmnop\n")).find(
            "is not a congestion control name") != std::string::npos);
  CHECK(ok(cpe("tunnel:\n  congestion_control: abcdefghijklmno\n")).tunnel.congestion_control ==
        "abcdefghijklmno");
  // The copy carriers' own: bbr unless the file says otherwise; "" is the tunnel's.
  CHECK_FALSE(ok(cpe("tunnel:\n")).tunnel.copy_congestion_control);
  CHECK(ok(cpe("tunnel:\n")).tunnel.copy_congestion_control_name() == "bbr");
  CHECK(ok(cpe("tunnel:\n  copy_congestion_control: reno\n"))
            .tunnel.copy_congestion_control_name() == "reno");
  {
    const Config c = ok(cpe("tunnel:\n  copy_congestion_control: \"\"\n"));
    REQUIRE(c.tunnel.copy_congestion_control);
    CHECK(c.tunnel.copy_congestion_control_name().empty());
  }
  CHECK(err(cpe("tunnel:\n  copy_congestion_control: bbr2/x\n")) ==
        "t.yaml:5:28: tunnel.copy_congestion_control: \"bbr2/x\" is not a congestion control "
        "name (cubic, bbr, reno...: at most 15 letters, digits, _ or -)");
  CHECK(err(cpe("tunnel:\n  copy_congestion_control:\n")).find(
            "tunnel.copy_congestion_control: missing value") != std::string::npos);
  CHECK(ok(cpe("tunnel:\n  express_rate: 512kbit\n")).tunnel.express_rate == 64000);
  CHECK(ok(cpe("tunnel:\n  express_rate: 64000\n")).tunnel.express_rate == 8000);
  CHECK(ok(cpe("tunnel:\n  express_rate: 1gbit\n")).tunnel.express_rate == 125000000);
  CHECK(ok(cpe("tunnel:\n")).tunnel.express_rate == 64000);
  CHECK(err(cpe("tunnel:\n  express_rate: 2Mbit\n")) ==
        "t.yaml:5:17: tunnel.express_rate: \"2Mbit\" is not a rate (use 512kbit, 2mbit; bits "
        "per second)");
  CHECK(err(cpe("tunnel:\n  express_rate: 10kbit\n")) ==
        "t.yaml:5:17: tunnel.express_rate: 10kbit is out of range (64kbit..1gbit)");
  CHECK(err(cpe("tunnel:\n  express_rate: 99999999999999999999gbit\n")).find("tunnel.express_rate") !=
        std::string::npos);
  CHECK_FALSE(ok(cpe("tunnel:\n")).tunnel.copies);
  CHECK(ok(cpe("tunnel:\n  copies: true\n")).tunnel.copies);
  CHECK(ok(cpe("tunnel:\n")).tunnel.copy_rate == 125000);
  CHECK(ok(cpe("tunnel:\n  copy_rate: 2mbit\n")).tunnel.copy_rate == 250000);
  CHECK(ok(cpe("tunnel:\n")).tunnel.copy_spares == 1);
  CHECK(ok(cpe("tunnel:\n  copy_spares: false\n")).tunnel.copy_spares == 0);
  CHECK(ok(cpe("tunnel:\n  copy_spares: true\n")).tunnel.copy_spares == 1);
  CHECK(ok(cpe("tunnel:\n  copy_spares: 3\n")).tunnel.copy_spares == 3);
  CHECK(ok(cpe("tunnel:\n  copy_spares: 0\n")).tunnel.copy_spares == 0);
  CHECK(err(cpe("tunnel:\n  copy_spares: 4\n")) ==
        "t.yaml:5:16: tunnel.copy_spares: 4 is out of range (0..3)");
  CHECK(err(cpe("tunnel:\n  copy_spares: twice\n")) ==
        "t.yaml:5:16: tunnel.copy_spares: \"twice\" is not true, false or a number of spares "
        "(0..3)");
  CHECK(err(cpe("tunnel:\n  copy_rate: 10kbit\n")) ==
        "t.yaml:5:14: tunnel.copy_rate: 10kbit is out of range (64kbit..1gbit)");
  CHECK(err(cpe("tunnel:\n  copies: twice\n")).find("tunnel.copies") != std::string::npos);
  CHECK(err(cpe("tunnel:\n  copies: true\n  express: false\n")) ==
        "t.yaml:5:11: tunnel.copies: needs session_mode: multiplexed and tunnel.express: true "
        "(copy carriers join the session as the express connection does)");
  CHECK(err(cpe("tunnel:\n  express_priority: 7\n")) ==
        "t.yaml:5:21: tunnel.express_priority: 7 is out of range (0..6)");
  CHECK(err(cpe("tunnel:\n  express: maybe\n")) ==
        "t.yaml:5:12: tunnel.express: \"maybe\" is not true or false");
}

TEST_CASE("cpe.copy_classes", "[config]") {
  const std::string copies = "tunnel:\n  copies: true\n";
  auto classes = [&](std::string_view body) {
    return cpe("  copy_classes:\n" + std::string(body) + copies);
  };
  const Config c = ok(classes("    dscp: [EF, af41, 40]\n    ports: [5060, 3478-3481]\n"
                              "    hosts: [198.18.1.7, \"2001:db8:1::/64\"]\n"));
  const auto& k = c.cpe.copy_classes;
  CHECK(k.dscp == ((std::uint64_t{1} << 46) | (std::uint64_t{1} << 34) | (std::uint64_t{1} << 40)));
  REQUIRE(k.ports.size() == 2);
  CHECK(k.ports[0] == mpudp::PortRange{5060, 5060});
  CHECK(k.ports[1] == mpudp::PortRange{3478, 3481});
  REQUIRE(k.hosts.size() == 2);
  CHECK(k.hosts[0].str() == "198.18.1.7/32");
  CHECK(k.hosts[1].str() == "2001:db8:1::/64");
  CHECK(ok(cpe(copies)).cpe.copy_classes.empty());
  // A single value is a list of one, as everywhere in the file.
  CHECK(ok(classes("    ports: 5060\n")).cpe.copy_classes.ports.size() == 1);
  CHECK(err(classes("    ports: [0]\n")) ==
        "t.yaml:5:13: cpe.copy_classes.ports[0]: \"0\" is not a port or a range of ports (5060, "
        "3478-3481; 1..65535)");
  CHECK(err(classes("    ports: [3481-3478]\n")).find("\"3481-3478\" is not a port") !=
        std::string::npos);
  CHECK(err(classes("    ports: [70000]\n")).find("\"70000\" is not a port") != std::string::npos);
  CHECK(err(classes("    ports: [50-]\n")).find("\"50-\" is not a port") != std::string::npos);
  CHECK(err(classes("    dscp: [expedited]\n")).find("cpe.copy_classes.dscp[0]: \"expedited\" is "
                                                  "not a DSCP") != std::string::npos);
  CHECK(err(classes("    hosts: [lan]\n")).find("cpe.copy_classes.hosts[0]: \"lan\" is not an "
                                              "address") != std::string::npos);
  CHECK(err(classes("    protocol: udp\n")).find("protocol") != std::string::npos);
  CHECK(err(cpe("  copy_classes:\n    dscp: ef\n")) ==
        "t.yaml:4:3: cpe.copy_classes: needs tunnel.copies: true (a class says which flows are "
        "copied, copies says that there are copies)");
}

TEST_CASE("integers", "[config]") {
  auto max = [](std::string_view v) {
    return err(cpe("bindings:\n  max: " + std::string(v) + "\n"));
  };
  CHECK(max("0") == "t.yaml:5:8: bindings.max: 0 is out of range (1..10000000)");
  CHECK(max("10000001") == "t.yaml:5:8: bindings.max: 10000001 is out of range (1..10000000)");
  CHECK(max("-1") == "t.yaml:5:8: bindings.max: \"-1\" is not a whole number");
  CHECK(max("+5") == "t.yaml:5:8: bindings.max: \"+5\" is not a whole number");
  CHECK(max("1.5") == "t.yaml:5:8: bindings.max: \"1.5\" is not a whole number");
  CHECK(max("1e3") == "t.yaml:5:8: bindings.max: \"1e3\" is not a whole number");
  CHECK(max("0x10") == "t.yaml:5:8: bindings.max: \"0x10\" is not a whole number");
  CHECK(max("ten") == "t.yaml:5:8: bindings.max: \"ten\" is not a whole number");
  CHECK(max("\"\"") == "t.yaml:5:8: bindings.max: \"\" is not a whole number");
  CHECK(max("18446744073709551616") ==
        "t.yaml:5:8: bindings.max: 18446744073709551616 is out of range (1..10000000)");
  CHECK(max("99999999999999999999999999999999") ==
        "t.yaml:5:8: bindings.max: 99999999999999999999999999999999 is out of range (1..10000000)");

  CHECK(err(cpe("bindings:\n  max_remotes: 4097\n")) ==
        "t.yaml:5:16: bindings.max_remotes: 4097 is out of range (1..4096)");
  CHECK(err(cpe("tunnel:\n  queue_bytes: 16383\n")) ==
        "t.yaml:5:16: tunnel.queue_bytes: 16383 is out of range (16384..67108864)");
  // 0 hands the buffer back to autotuning; a fixed one below 64 KiB would shrink the
  // window below autotuning's own start.
  CHECK(ok(cpe("tunnel:\n  receive_buffer: 0\n")).tunnel.receive_buffer == 0);
  CHECK(ok(cpe("tunnel:\n  receive_buffer: 67108864\n")).tunnel.receive_buffer == 67108864);
  CHECK(err(cpe("tunnel:\n  receive_buffer: 65535\n")) ==
        "t.yaml:5:19: tunnel.receive_buffer: 65535 is neither 0 (the kernel's autotuning) nor "
        "in 65536..67108864");
  CHECK(err(cpe("tunnel:\n  receive_buffer: 67108865\n")) ==
        "t.yaml:5:19: tunnel.receive_buffer: 67108865 is out of range (0..67108864)");
  CHECK(err(cpe("tunnel:\n  receive_buffer: 4MiB\n")) ==
        "t.yaml:5:19: tunnel.receive_buffer: \"4MiB\" is not a whole number");
  CHECK(err("role: cpe\ncpe:\n  concentrator: 198.18.2.2:7000\n  tproxy_port: 65536\n") ==
        "t.yaml:4:16: cpe.tproxy_port: 65536 is out of range (1..65535)");
  CHECK(err("role: cpe\ncpe:\n  concentrator: 198.18.2.2:7000\n  tproxy_port: 0\n") ==
        "t.yaml:4:16: cpe.tproxy_port: 0 is out of range (1..65535)");
  CHECK(ok("role: cpe\ncpe:\n  concentrator: 198.18.2.2:7000\n  tproxy_port: 65535\n")
            .cpe.tproxy_port == 65535);
  // Quoted digits are still digits; YAML 1.2 reads a leading zero as decimal, and so do we.
  CHECK(ok(cpe("bindings:\n  max: \"42\"\n  max_remotes: 010\n")).bindings.max_remotes == 10);
}

TEST_CASE("enums", "[config]") {
  CHECK(err("role: router\n") == "t.yaml:1:7: role: \"router\" is not one of cpe, concentrator");
  CHECK(err("role: CPE\n") == "t.yaml:1:7: role: \"CPE\" is not one of cpe, concentrator");
  CHECK(err(cpe("log_level: trace\n")) ==
        "t.yaml:4:12: log_level: \"trace\" is not one of error, warn, info, debug");
  CHECK(err(cpe("session_mode: per_binding\n")) ==
        "t.yaml:4:15: session_mode: \"per_binding\" is not one of multiplexed, per-binding");
  CHECK(ok(cpe("log_level: error\n")).log_level == LogLevel::Error);
  CHECK(ok(cpe("log_level: \"info\"\n")).log_level == LogLevel::Info);
  CHECK(ok(cpe("")).log_target == LogTarget::Stderr);
  CHECK(ok(cpe("log_target: syslog\n")).log_target == LogTarget::Syslog);
  CHECK(ok(cpe("log_target: stderr\n")).log_target == LogTarget::Stderr);
  CHECK(err(cpe("log_target: journal\n")) ==
        "t.yaml:4:13: log_target: \"journal\" is not one of stderr, syslog");
  CHECK(std::string(to_string(LogTarget::Syslog)) == "syslog");
}

TEST_CASE("to_string names match the accepted spellings", "[config]") {
  CHECK(std::string(to_string(ProxyRole::Cpe)) == "cpe");
  CHECK(std::string(to_string(ProxyRole::Concentrator)) == "concentrator");
  CHECK(std::string(to_string(SessionModeConfig::Multiplexed)) == "multiplexed");
  CHECK(std::string(to_string(SessionModeConfig::PerBinding)) == "per-binding");
  CHECK(std::string(to_string(LogLevel::Error)) == "error");
  CHECK(std::string(to_string(LogLevel::Warn)) == "warn");
  CHECK(std::string(to_string(LogLevel::Info)) == "info");
  CHECK(std::string(to_string(LogLevel::Debug)) == "debug");
  for (auto l : {LogLevel::Error, LogLevel::Warn, LogLevel::Info, LogLevel::Debug})
    CHECK(ok(cpe(std::string("log_level: ") + to_string(l) + "\n")).log_level == l);
}

TEST_CASE("endpoints", "[config]") {
  auto conc = [](std::string_view v) {
    return err("role: cpe\ncpe:\n  concentrator: " + std::string(v) + "\n");
  };
  CHECK(conc("1.2.3.4") == "t.yaml:3:17: cpe.concentrator: \"1.2.3.4\" is not an address:port");
  CHECK(conc("host.example:7000") ==
        "t.yaml:3:17: cpe.concentrator: \"host.example:7000\" is not an address:port");
  CHECK(conc("1.2.3.4:0") == "t.yaml:3:17: cpe.concentrator: \"1.2.3.4:0\" has port 0");
  CHECK(conc("0.0.0.0:7000") ==
        "t.yaml:3:17: cpe.concentrator: \"0.0.0.0:7000\" is an unspecified address, not a "
        "destination");
  CHECK(
      conc("\"[::]:7000\"") ==
      "t.yaml:3:17: cpe.concentrator: \"[::]:7000\" is an unspecified address, not a destination");
  CHECK(conc("\"1.2.3.4\\0x:7000\"") ==
        "t.yaml:3:17: cpe.concentrator: \"1.2.3.4\\x00x:7000\" is not an address:port");

  auto listen = [](std::string_view v) {
    return err("role: concentrator\nconcentrator:\n  listen: " + std::string(v) + "\n");
  };
  CHECK(listen("[\"0.0.0.0:7000\", \"0.0.0.0:0\"]") ==
        "t.yaml:3:28: concentrator.listen[1]: \"0.0.0.0:0\" has port 0");
  CHECK(listen("[\"0.0.0.0:7000\", \"[::]:7000\", \"0.0.0.0:7000\"]") ==
        "t.yaml:3:41: concentrator.listen[2]: \"0.0.0.0:7000\" is listed twice");
  CHECK(listen("[\"[::]:7000\", \"[0::0]:7000\"]") ==
        "t.yaml:3:25: concentrator.listen[1]: \"[0::0]:7000\" is listed twice");
  CHECK(listen("[]") ==
        "t.yaml:3:11: concentrator.listen: must not be empty (role is concentrator)");
  CHECK(listen("{a: 1}") ==
        "t.yaml:3:11: concentrator.listen: expected a list of address:port, found a mapping");
  CHECK(listen("[[1]]") ==
        "t.yaml:3:12: concentrator.listen[0]: expected a single value, found a list");
  CHECK(listen("[\"1.2.3.4\"]") ==
        "t.yaml:3:12: concentrator.listen[0]: \"1.2.3.4\" is not an address:port");
  CHECK(err("role: concentrator\nconcentrator:\n  listen:\n    -\n") ==
        "t.yaml:4:5: concentrator.listen[0]: missing value");
}

TEST_CASE("unknown keys", "[config]") {
  CHECK(err(cpe("bindings:\n  idel_timeout: 5s\n")) ==
        "t.yaml:5:3: unknown key \"idel_timeout\" in bindings");
  CHECK(err("role: cpe\nrol: cpe\n") == "t.yaml:2:1: unknown key \"rol\"");
  CHECK(err(cpe("tunnel:\n  keepalive: 5s\n  queue: 1\n")) ==
        "t.yaml:6:3: unknown key \"queue\" in tunnel");
  CHECK(err("role: cpe\ncpe:\n  concentrator: 198.18.2.2:7000\n  listen: 1.2.3.4:5\n") ==
        "t.yaml:4:3: unknown key \"listen\" in cpe");
  CHECK(err("? [a]\n: b\n") == "t.yaml:1:3: keys must be plain names, found a list");
  CHECK(err("role: cpe\n\"\\e[31m\": 1\n") == "t.yaml:2:1: unknown key \"\\x1b[31m\"");
}

TEST_CASE("duplicate keys report the second occurrence", "[config]") {
  CHECK(err("role: cpe\nrole: concentrator\n") == "t.yaml:2:1: duplicate key \"role\"");
  CHECK(err(cpe("bindings:\n  max: 5\n  max: 6\n")) ==
        "t.yaml:6:3: duplicate key \"max\" in bindings");
  CHECK(err(cpe("bindings:\n  max: 5\nbindings:\n  max: 6\n")) ==
        "t.yaml:6:1: duplicate key \"bindings\"");
  CHECK(err("{role: cpe, role: cpe}") == "t.yaml:1:13: duplicate key \"role\"");
}

TEST_CASE("wrong node kinds", "[config]") {
  CHECK(err("role: [cpe]\n") == "t.yaml:1:7: role: expected a single value, found a list");
  CHECK(err("role: {a: b}\n") == "t.yaml:1:7: role: expected a single value, found a mapping");
  CHECK(err(cpe("bindings: 5\n")) ==
        "t.yaml:4:11: bindings: expected a mapping, found a single value");
  CHECK(err(cpe("tunnel: [1, 2]\n")) == "t.yaml:4:9: tunnel: expected a mapping, found a list");
  CHECK(err(cpe("bindings:\n  max: {a: 1}\n")) ==
        "t.yaml:5:8: bindings.max: expected a single value, found a mapping");
  CHECK(err("- role: cpe\n") ==
        "t.yaml:1:1: the configuration must be a mapping of keys, found a list");
  CHECK(err("cpe\n") ==
        "t.yaml:1:1: the configuration must be a mapping of keys, found a single value");
  CHECK(err(cpe("log_level:\n")) == "t.yaml:4:1: log_level: missing value");
  CHECK(err(cpe("log_level: ~\n")) == "t.yaml:4:1: log_level: missing value");
}

TEST_CASE("required keys", "[config]") {
  CHECK(err("log_level: info\n") == "t.yaml:1:1: missing required key \"role\"");
  CHECK(err("\n\nlog_level: info\n") == "t.yaml:3:1: missing required key \"role\"");
  CHECK(err("role: cpe\n") ==
        "t.yaml:1:7: missing required key \"cpe.concentrator\" (role is cpe)");
  CHECK(err("role: cpe\ncpe:\n  tproxy_port: 1\n") ==
        "t.yaml:2:1: missing required key \"cpe.concentrator\" (role is cpe)");
  CHECK(err("role: concentrator\n") ==
        "t.yaml:1:7: missing required key \"concentrator.listen\" (role is concentrator)");
  CHECK(err("role: concentrator\nconcentrator: {}\n") ==
        "t.yaml:2:1: missing required key \"concentrator.listen\" (role is concentrator)");
  CHECK(err("role: concentrator\ncpe:\n  concentrator: 198.18.2.2:7000\n") ==
        "t.yaml:1:7: missing required key \"concentrator.listen\" (role is concentrator)");
}

TEST_CASE("empty documents", "[config]") {
  CHECK(err("") == "t.yaml:1:1: empty configuration");
  CHECK(err("# nothing here\n\n") == "t.yaml:1:1: empty configuration");
  CHECK(err("---\n") == "t.yaml:1:1: empty configuration");
  CHECK(err("~\n") == "t.yaml:1:1: empty configuration");
}

TEST_CASE("syntax errors keep yaml-cpp's position", "[config]") {
  CHECK(err("role: cpe\ncpe: [1,\n") ==
        "t.yaml:3:1: YAML syntax error: end of sequence flow not found");
  CHECK(err("role: cpe\ncpe:\n  concentrator: 198.18.2.2:7000\n bad: 1\n") ==
        "t.yaml:4:2: YAML syntax error: end of map not found");
  CHECK(err("role: \"cpe\n").find("t.yaml:1:") == 0);
  CHECK(err(std::string(kCpeHead) + "---\nrole: cpe\n") ==
        "t.yaml:4:1: more than one YAML document (remove the second \"---\")");
}

TEST_CASE("a stray top-level comma is a syntax error, not an endless loop", "[config]") {
  // yaml-cpp 0.7's LoadAll allocates without bound on these.
  CHECK(err(",") == "t.yaml:1:1: YAML syntax error: unexpected ','");
  CHECK(err(",role: cpe") == "t.yaml:1:1: YAML syntax error: unexpected ','");
  CHECK(err("[a],") == "t.yaml:1:4: YAML syntax error: unexpected ','");
  CHECK(err("{role: cpe},\n") == "t.yaml:1:12: YAML syntax error: unexpected ','");
  // yaml-cpp ends the first document early here and starts another at line 3.
  CHECK(err("- a:\n    b\n\"c\",\n") ==
        "t.yaml:3:1: YAML syntax error: unexpected text after the end of the document");
}

TEST_CASE("deep nesting and oversized input are refused, not crashed on", "[config]") {
  CHECK(err(std::string(100000, '[')) == "t.yaml:1:1: YAML nesting is too deep (500 levels)");
  std::string dashes;
  for (int i = 0; i < 50000; ++i) dashes += "- ";
  CHECK(err(dashes).find("YAML nesting is too deep") != std::string::npos);
  CHECK(err(std::string(2 << 20, ' ')) == "t.yaml: configuration is larger than 1 MiB");
}

TEST_CASE("ConfigError::str", "[config]") {
  CHECK(ConfigError{"a.yaml", 3, 7, "boom"}.str() == "a.yaml:3:7: boom");
  CHECK(ConfigError{"a.yaml", 0, 0, "cannot read: x"}.str() == "a.yaml: cannot read: x");
  CHECK(ConfigError{"", 2, 1, "boom"}.str() == "2:1: boom");
  CHECK(ConfigError{"", 0, 0, "boom"}.str() == "boom");
}

TEST_CASE("load_config_file", "[config]") {
  TempDir dir;
  SECTION("reads a private file and names it in errors") {
    auto p = dir.write("good.yaml", with_auth(kConcHead), 0640);
    auto r = load_config_file(p);
    REQUIRE(std::holds_alternative<Config>(r));
    CHECK(std::get<Config>(r).role == ProxyRole::Concentrator);

    auto bad = dir.write("bad.yaml", "role: router\n", 0600);
    auto e = std::get<ConfigError>(load_config_file(bad));
    CHECK(e.file == bad);
    CHECK(e.line == 1);
    CHECK(e.column == 7);
    CHECK(e.str() == bad + ":1:7: role: \"router\" is not one of cpe, concentrator");
  }
  SECTION("refuses a world-writable file") {
    auto p = dir.write("open.yaml", kConcHead, 0666);
    auto r = load_config_file(p);
    REQUIRE(std::holds_alternative<ConfigError>(r));
    auto e = std::get<ConfigError>(r);
    CHECK(e.line == 0);
    CHECK(e.str() == p + ": refusing to read a world-writable file (chmod o-w " + p + ")");
  }
  SECTION("a missing file is an error without a position") {
    auto p = dir.path + "/nope.yaml";
    auto e = std::get<ConfigError>(load_config_file(p));
    CHECK(e.line == 0);
    CHECK(e.str() == p + ": cannot read: No such file or directory");
  }
  SECTION("a directory is an error without a position") {
    auto e = std::get<ConfigError>(load_config_file(dir.path));
    CHECK(e.line == 0);
    CHECK(e.message == "cannot read: Is a directory");
  }
}

TEST_CASE("control_socket", "[config]") {
  CHECK(ok(kCpeHead).control_socket == MPUDP_CONTROL_SOCKET);
  CHECK(ok(cpe("control_socket: /tmp/x.sock\n")).control_socket == "/tmp/x.sock");
  CHECK(ok(cpe("control_socket: \"\"\n")).control_socket.empty());
  CHECK(err(cpe("control_socket: x.sock\n")) ==
        "t.yaml:4:17: control_socket: \"x.sock\" is not an absolute path of at most 107 bytes");
  CHECK(ok(cpe("control_socket: /" + std::string(106, 'a') + "\n")).control_socket.size() == 107);
  CHECK(err(cpe("control_socket: /" + std::string(107, 'a') + "\n"))
            .find("is not an absolute path of at most 107 bytes") != std::string::npos);
}

TEST_CASE("rules: bounds shared with mpudp-rules", "[config]") {
  // The issue's example: main as the table would put "local default" into main.
  CHECK(err(cpe("rules: {table: 254, pref: 40000}\n")) ==
        "t.yaml:4:16: rules.table: \"254\" is reserved (253..255 are default, main, local)");
  CHECK(err(cpe("rules: {pref: 40000}\n")) ==
        "t.yaml:4:15: rules.pref: \"40000\" is not a number in 1..32765 (the rule must come "
        "before main's, 32766)");
  CHECK(ok(cpe("rules: {table: 252, pref: 32765}\n")).rules.table == 252);
  CHECK(err(cpe("rules: {mark: 0x100, mask: 0xf}\n")) ==
        "t.yaml:4:15: rules.mark: 256 has bits outside rules.mask (15)");
  const Config m = ok(cpe("rules: {mark: 0x100, mask: 0xff00}\n"));
  CHECK(m.rules.mark == 0x100);
  CHECK(m.rules.mask == 0xff00);
  CHECK(err(cpe("rules: {lan: [\"lan;0\"]}\n")).find("is not an interface name") !=
        std::string::npos);
}

TEST_CASE("rules.fail and nfqueue.fail agree", "[config]") {
  CHECK(ok(kCpeHead).rules.fail_open);
  CHECK(!ok(cpe("rules: {fail: closed}\n")).nfqueue.fail_open);
  CHECK(!ok(cpe("nfqueue: {fail: closed}\n")).rules.fail_open);
  CHECK(!ok(cpe("rules: {fail: closed}\nnfqueue: {fail: closed}\n")).rules.fail_open);
  CHECK(err(cpe("rules: {fail: closed}\nnfqueue: {fail: open}\n")) ==
        "t.yaml:5:17: nfqueue.fail: disagrees with rules.fail (write only rules.fail)");
  CHECK(err(cpe("rules: {fail: maybe}\n")) ==
        "t.yaml:4:15: rules.fail: \"maybe\" is not one of open, closed");
}

TEST_CASE("print_rules: what mpudp-rules reads", "[config]") {
  const Config c = ok(
      "role: cpe\ncpe: {tproxy_port: 6000, concentrator: \"[2001:db8::2]:7000\"}\n"
      "intercept: nfqueue\nnfqueue: {queue: 3}\n"
      "rules: {lan: [br-lan, wlan0], mark: 0x10, table: 200, pref: 300, exclude: [10.0.0.0/8],"
      " ipv6: off, backend: nft, fail: closed}\n");
  CHECK(print_rules(c) ==
        "MODE=nfqueue\nPORT=6000\nMARK=16\nMASK=4294967295\nTABLE=200\nPREF=300\n"
        "BACKEND=nft\nIPV6=off\nQUEUE=3\nFAIL=closed\nCONCENTRATOR=2001:db8::2\n"
        "LAN=br-lan\nLAN=wlan0\nEXCLUDE=10.0.0.0/8\n");
  // A fragment (mpudp-rules' command line) needs no role, concentrator or auth, and is
  // held to the same bounds.
  auto f = load_rules_fragment("rules: {mark: 7}\n", "frag");
  REQUIRE(std::holds_alternative<Config>(f));
  CHECK(print_rules(std::get<Config>(f)).find("MARK=7\n") != std::string::npos);
  CHECK(print_rules(std::get<Config>(f)).find("CONCENTRATOR") == std::string::npos);
  auto bad = load_rules_fragment("cpe: {tproxy_port: \"0\"}\n", "frag");
  REQUIRE(std::holds_alternative<ConfigError>(bad));
  CHECK(std::get<ConfigError>(bad).str() ==
        "frag:1:20: cpe.tproxy_port: 0 is out of range (1..65535)");
}

// docs/man/mpudp.yaml.5 documents every key the loader accepts, and no other: each key is
// an ".B key" line (after ".TP"). A new key fails this test until it has its entry.
TEST_CASE("mpudp.yaml(5) lists every key", "[config]") {
  std::ifstream in(std::string(MPUDP_SOURCE_DIR) + "/docs/man/mpudp.yaml.5");
  REQUIRE(in);
  std::set<std::string> documented;
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(".B ", 0) == 0 && line.find(' ', 3) == std::string::npos)
      documented.insert(line.substr(3));
  std::set<std::string> keys;
  const auto all = config_keys();
  for (const auto& k : all) {
    keys.insert(k);
    // A section's name needs no entry of its own: its keys have theirs.
    const bool section = std::any_of(all.begin(), all.end(), [&k](const std::string& o) {
      return o.rfind(k + ".", 0) == 0 || o.rfind(k + "[].", 0) == 0;
    });
    if (section) continue;
    INFO("docs/man/mpudp.yaml.5 has no entry \".B " << k << "\"");
    CHECK(documented.count(k) == 1);
  }
  CHECK(keys.count("rules.mask") == 1);
  CHECK(keys.count("paths[].interface") == 1);
  // Entries look like keys when they hold a '.' or name a top-level key; those must exist.
  for (const auto& d : documented)
    if (d.find('.') != std::string::npos && d.find_first_of("\\(*") == std::string::npos) {
      INFO("docs/man/mpudp.yaml.5 documents \"" << d << "\", which the loader does not accept");
      CHECK(keys.count(d) == 1);
    }
}

TEST_CASE("metrics_listen", "[config]") {
  CHECK_FALSE(ok(kCpeHead).metrics_listen.valid());
  // A bare port stays on loopback: exposing metrics is a decision, not a default.
  CHECK(ok(cpe("metrics_listen: 9464\n")).metrics_listen.str() == "127.0.0.1:9464");
  CHECK(ok(cpe("metrics_listen: \"9464\"\n")).metrics_listen.str() == "127.0.0.1:9464");
  CHECK(ok(cpe("metrics_listen: 0.0.0.0:9464\n")).metrics_listen.str() == "0.0.0.0:9464");
  CHECK(ok(cpe("metrics_listen: \"[::1]:9464\"\n")).metrics_listen.str() == "[::1]:9464");
  CHECK(err(cpe("metrics_listen: 0\n")) ==
        "t.yaml:4:17: metrics_listen: 0 is out of range (1..65535)");
  CHECK(err(cpe("metrics_listen: 65536\n")) ==
        "t.yaml:4:17: metrics_listen: 65536 is out of range (1..65535)");
  CHECK(err(cpe("metrics_listen: 1.2.3.4\n")) ==
        "t.yaml:4:17: metrics_listen: \"1.2.3.4\" is not an address:port");
  CHECK(err(cpe("metrics_listen: 1.2.3.4:0\n")) ==
        "t.yaml:4:17: metrics_listen: \"1.2.3.4:0\" has port 0");
}

TEST_CASE("paths and limits", "[config]") {
  Config c = ok(cpe("paths:\n  - interface: up0\n  - interface: up1\n    backup: true\n"
                    "limits:\n  subflows: 3\n"));
  REQUIRE(c.paths.size() == 2);
  CHECK(c.paths[0].interface == "up0");
  CHECK(c.paths[0].subflow);  // the CPE's default
  CHECK_FALSE(c.paths[0].backup);
  CHECK_FALSE(c.paths[0].signal);
  CHECK(c.paths[1].backup);
  CHECK(c.paths[1].subflow);
  CHECK(c.limits.subflows == 3u);
  CHECK_FALSE(c.limits.add_addr_accepted);

  Config d = ok(cpe("paths:\n  - interface: up0\n    subflow: false\n    signal: true\n"));
  CHECK_FALSE(d.paths[0].subflow);
  CHECK(d.paths[0].signal);

  // Copies on every uplink but a backup one, unless it says so.
  Config cp = ok(cpe("paths:\n  - {interface: up0}\n  - {interface: lte0, backup: true}\n"
                     "  - {interface: sat0, backup: true, copies: true}\n"
                     "  - {interface: up1, copies: false}\n"));
  CHECK(cp.paths[0].carries_copies());
  CHECK_FALSE(cp.paths[1].carries_copies());
  CHECK(cp.paths[2].carries_copies());
  CHECK_FALSE(cp.paths[3].carries_copies());
  CHECK(err(cpe("paths:\n  - {interface: up0, copies: 2}\n")).find("paths[0].copies") !=
        std::string::npos);

  Config l = ok(cpe("paths:\n  - {interface: up0, laminar: true}\n"));
  CHECK(l.paths[0].laminar);
  CHECK(l.paths[0].subflow);
  CHECK_FALSE(l.paths[0].fullmesh);

  // No default flag on the concentrator: it announces what says `signal`.
  Config k = ok(std::string(kConcHead) + "paths:\n  - interface: wan1\n    signal: true\n");
  CHECK(k.paths[0].signal);
  CHECK_FALSE(k.paths[0].subflow);

  // The role may come after the paths.
  Config r = ok("paths:\n  - interface: up0\nrole: cpe\ncpe:\n  concentrator: 198.18.2.2:7000\n");
  CHECK(r.paths[0].subflow);

  CHECK(ok(cpe("")).paths.empty());
  CHECK(ok(cpe("paths:\n")).paths.empty());
}

TEST_CASE("bad paths and limits", "[config]") {
  CHECK(err(cpe("paths:\n  - interface: up0\n    signal: true\n    fullmesh: true\n")) ==
        "t.yaml:5:5: paths[0]: signal and fullmesh cannot be combined");
  CHECK(err(cpe("paths:\n  - interface: up0\n    subflows: true\n")) ==
        "t.yaml:6:5: unknown key \"subflows\" in paths[0]");
  CHECK(err(cpe("paths:\n  - backup: true\n")) ==
        "t.yaml:5:5: paths[0]: missing required key \"interface\"");
  CHECK(err(cpe("paths:\n  - interface: up0\n    backup: maybe\n")) ==
        "t.yaml:6:13: paths[0].backup: \"maybe\" is not true or false");
  CHECK(err(cpe("paths:\n  - interface: up0\n  - interface: up0\n")) ==
        "t.yaml:6:5: paths[1]: interface \"up0\" is listed twice");
  CHECK(err(cpe("paths:\n  - interface: a/b\n")) ==
        "t.yaml:5:16: paths[0].interface: \"a/b\" is not an interface name");
  CHECK(err(cpe("paths:\n  - interface: abcdefghijklmnop\n")) ==
        "t.yaml:5:16: paths[0].interface: \"abcdefghijklmnop\" is not an interface name");
  CHECK(err(cpe("paths: up0\n")) == "t.yaml:4:8: paths: expected a list of paths, found a single value");
  CHECK(err(cpe("paths:\n  - up0\n")) ==
        "t.yaml:5:5: paths[0]: expected a mapping with an interface, found a single value");
  CHECK(err(cpe("limits:\n  subflows: 9\n")) ==
        "t.yaml:5:13: limits.subflows: 9 is out of range (0..8)");
  CHECK(err(cpe("limits:\n  joins: 1\n")) == "t.yaml:5:3: unknown key \"joins\" in limits");
}

TEST_CASE("auth is required on both roles", "[config][auth]") {
  CHECK(err("role: concentrator\nconcentrator:\n  listen: 0.0.0.0:7000\n") ==
        "t.yaml:1:7: role concentrator needs auth: {peers_file: ...}, auth: {cert_file: ..., "
        "key_file: ..., ca_file: ...} or auth: none");
  CHECK(err(std::string(kCpeHead)) ==
        "t.yaml:1:7: role cpe needs auth: {identity: NAME, psk_file: ...}, auth: {cert_file: "
        "..., key_file: ..., ca_file: ...} or auth: none");
  CHECK(ok(cpe("auth: none\n")).auth.none);
  auto c = ok(cpe("auth:\n  psk_file: /etc/mpudp/psk\n"));
  CHECK(!c.auth.none);
  CHECK(c.auth.psk_file == "/etc/mpudp/psk");
  CHECK(c.auth.psk.empty());  // load_config_string never reads the key
  CHECK(ok(cpe("auth: {psk_file: /k}\n")).auth.psk_file == "/k");
  CHECK(err(cpe("auth: yes\n")) ==
        "t.yaml:4:7: auth: \"yes\" is not none or a mapping of keys (identity and psk_file, "
        "peers_file, or cert_file, key_file, ca_file)");
  CHECK(err(cpe("auth:\n  psk_file: psk\n")) ==
        "t.yaml:5:13: auth.psk_file: \"psk\" is not an absolute path");
  CHECK(err(cpe("auth: {}\n")) ==
        "t.yaml:4:7: auth: missing required key \"psk_file\" (write auth: {identity: NAME, "
        "psk_file: /path}, or auth: none)");
  CHECK(err(cpe("auth:\n  key: x\n")) == "t.yaml:5:3: unknown key \"key\" in auth");
}

TEST_CASE("load_config_file reads and checks the key file", "[config][auth]") {
  TempDir dir;
  const std::string hex64 = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
  auto conf = [&](const std::string& key) {
    return dir.write("c.yaml", std::string(kConcHead) + "auth:\n  psk_file: " + key + "\n", 0600);
  };
  SECTION("hex key, trailing newline ignored") {
    auto k = dir.write("psk", hex64 + "\n", 0600);
    auto r = load_config_file(conf(k));
    REQUIRE(std::holds_alternative<Config>(r));
    const auto& psk = std::get<Config>(r).auth.psk;
    REQUIRE(psk.size() == 32);
    CHECK(static_cast<unsigned char>(psk[1]) == 0x11);
    CHECK(static_cast<unsigned char>(psk[31]) == 0xff);
  }
  SECTION("raw key of 32 bytes or more") {
    auto k = dir.write("psk", std::string(40, 'z'), 0400);
    auto r = load_config_file(conf(k));
    REQUIRE(std::holds_alternative<Config>(r));
    CHECK(std::get<Config>(r).auth.psk == std::string(40, 'z'));
  }
  SECTION("too short") {
    auto k = dir.write("psk", "0011\n", 0600);
    auto e = std::get<ConfigError>(load_config_file(conf(k)));
    CHECK(e.line == 5);
    CHECK(e.message.find("the key is 4 bytes; at least 32 are needed") != std::string::npos);
  }
  SECTION("readable or writable by group or others") {
    for (mode_t m : {0640, 0604, 0620, 0602}) {
      auto k = dir.write("psk", hex64, m);
      auto e = std::get<ConfigError>(load_config_file(conf(k)));
      CHECK(e.str() == dir.path + "/c.yaml:5:13: auth.psk_file: " + k +
                           ": refusing a key file that group or others can access (chmod 600 " +
                           k + ")");
    }
  }
  SECTION("missing") {
    auto e = std::get<ConfigError>(load_config_file(conf(dir.path + "/nope")));
    CHECK(e.message.find("cannot read: No such file or directory") != std::string::npos);
  }
}

std::string conc(std::string_view tail) { return std::string(kConcHead) + std::string(tail); }

TEST_CASE("auth modes and encryption", "[config][auth]") {
  using M = Config::AuthMode;
  using E = Config::Encryption;
  auto none = ok(cpe("auth: none\n"));
  CHECK(none.auth.mode == M::None);
  CHECK(none.encryption == E::None);  // no key, no TLS
  CHECK(ok(cpe("auth: none\nencryption: none\n")).encryption == E::None);

  auto shared = ok(cpe("auth: {psk_file: /k}\n"));
  CHECK(shared.auth.mode == M::SharedKey);
  CHECK(shared.encryption == E::Tls);
  CHECK(ok(conc("auth: {psk_file: /k}\n")).auth.mode == M::SharedKey);
  CHECK(ok(cpe("auth: {psk_file: /k}\nencryption: none\n")).encryption == E::None);

  auto psk = ok(cpe("auth: {identity: home-17, psk_file: /k}\n"));
  CHECK(psk.auth.mode == M::Psk);
  CHECK(psk.auth.identity == "home-17");
  auto peers = ok(conc("auth: {peers_file: /etc/mpudp/peers}\n"));
  CHECK(peers.auth.mode == M::Psk);
  CHECK(peers.auth.peers_file == "/etc/mpudp/peers");
  CHECK(peers.auth.peers.empty());  // not read by load_config_string

  auto certs = ok(cpe("auth: {cert_file: /c, key_file: /k, ca_file: /ca, crl_file: /crl, "
                      "server_name: conc.example}\n"));
  CHECK(certs.auth.mode == M::Certificate);
  CHECK(certs.auth.crl_file == "/crl");
  CHECK(certs.auth.server_name == "conc.example");
  CHECK(ok(conc("auth: {cert_file: /c, key_file: /k, ca_file: /ca}\n")).auth.mode ==
        M::Certificate);

  auto tls = ok(conc("auth: {peers_file: /p}\nencryption:\n  cipher: chacha20\n"
                     "  key_update_bytes: 1048576\n  key_update_interval: 10m\n"
                     "  accept_cleartext: true\n"));
  CHECK(tls.encryption == E::Tls);
  CHECK(tls.tls.cipher == Config::Cipher::ChaCha20);
  CHECK(tls.tls.key_update_bytes == 1048576);
  CHECK(tls.tls.key_update_interval == std::chrono::minutes(10));
  CHECK(tls.tls.accept_cleartext);
  auto defaults = ok(cpe("auth: {identity: a, psk_file: /k}\nencryption: tls\n"));
  CHECK(defaults.tls.cipher == Config::Cipher::Auto);
  CHECK(defaults.tls.key_update_bytes == (std::uint64_t{1} << 30));
  CHECK(defaults.tls.key_update_interval == std::chrono::hours(1));
  CHECK(!defaults.tls.accept_cleartext);
  CHECK(ok(cpe("auth: {identity: a, psk_file: /k}\nencryption: {key_update_bytes: 0}\n"))
            .tls.key_update_bytes == 0);
}

TEST_CASE("auth and encryption errors say what to write", "[config][auth]") {
  CHECK(err(cpe("auth: {identity: \"home 17\", psk_file: /k}\n")) ==
        "t.yaml:4:18: auth.identity: \"home 17\" is not an identity (1 to 128 printable "
        "characters without spaces, '#', quotes or backslashes)");
  CHECK(err(cpe("auth: {identity: a, peers_file: /p}\n")) ==
        "t.yaml:4:33: auth.peers_file: only on the concentrator (a CPE has identity and psk_file)");
  CHECK(err(conc("auth: {identity: a, peers_file: /p}\n")) ==
        "t.yaml:4:18: auth.identity: only on the CPE (the concentrator lists its CPEs' "
        "identities in peers_file)");
  CHECK(err(conc("auth: {peers_file: /p, psk_file: /k}\n")) ==
        "t.yaml:4:34: auth.psk_file: not with auth.peers_file (every CPE's key belongs in the "
        "peers file)");
  CHECK(err(conc("auth: {crl_file: /c}\n")) ==
        "t.yaml:4:7: auth: missing required key \"cert_file\" (certificate mode needs "
        "cert_file, key_file and ca_file)");
  CHECK(err(cpe("auth: {identity: a, psk_file: /k, cert_file: /c}\n")) ==
        "t.yaml:4:31: auth.psk_file: not with auth.cert_file: keys and certificates are two "
        "modes, choose one");
  CHECK(err(conc("auth: {cert_file: /c, key_file: /k, ca_file: /ca, server_name: x}\n")) ==
        "t.yaml:4:64: auth.server_name: only on the CPE (the name the concentrator's "
        "certificate must carry)");
  CHECK(err(cpe("auth: {peers_file: rel}\n")) ==
        "t.yaml:4:20: auth.peers_file: \"rel\" is not an absolute path");
  CHECK(err(conc("auth: {}\n")) ==
        "t.yaml:4:7: auth: missing required key \"peers_file\" (write auth: {peers_file: "
        "/path}, or auth: none)");
  CHECK(err(cpe("auth: {identity: a, psk_file: /k}\nencryption: none\n")) ==
        "t.yaml:5:13: encryption: none: auth per-CPE key needs TLS (remove encryption: none; "
        "cleartext takes auth: {psk_file} or auth: none)");
  CHECK(err(cpe("auth: none\nencryption: tls\n")) ==
        "t.yaml:5:13: encryption: TLS needs keys, and auth is none (write encryption: none, "
        "or give auth its keys)");
  CHECK(err(cpe("auth: none\nencryption: aes\n")) ==
        "t.yaml:5:13: encryption: \"aes\" is not one of tls, none (or a mapping of TLS "
        "settings)");
  CHECK(err(cpe("auth: {psk_file: /k}\nencryption: {accept_cleartext: true}\n")) ==
        "t.yaml:5:32: encryption.accept_cleartext: only on the concentrator (a CPE chooses "
        "with encryption: tls or none)");
  CHECK(err(cpe("auth: {psk_file: /k}\nencryption: {cipher: aes}\n")) ==
        "t.yaml:5:22: encryption.cipher: \"aes\" is not one of auto, aes-gcm, chacha20");
  CHECK(err(cpe("auth: {psk_file: /k}\nencryption: {key_update_bytes: 1000}\n")) ==
        "t.yaml:5:32: encryption.key_update_bytes: 1000 is out of range (0, or "
        "1048576..1099511627776)");
  CHECK(err(cpe("auth: {psk_file: /k}\nencryption: {key_update_interval: 2d}\n")) ==
        "t.yaml:5:35: encryption.key_update_interval: \"2d\" is not a duration (use 500ms, "
        "2s, 5m)");
  CHECK(err(cpe("auth: {psk_file: /k}\nencryption: {rekey: 1}\n")) ==
        "t.yaml:5:14: unknown key \"rekey\" in encryption");
}

TEST_CASE("load_config_file reads the peers file and checks certificate files",
          "[config][auth]") {
  TempDir dir;
  const std::string k1(64, 'a');
  const std::string k2 = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
  auto conf = [&](const std::string& auth) {
    return dir.write("c.yaml", std::string(kConcHead) + "auth: " + auth + "\n", 0600);
  };
  auto peers_conf = [&](const std::string& text, mode_t mode = 0600) {
    return conf("{peers_file: " + dir.write("peers", text, mode) + "}");
  };
  SECTION("identities and keys, comments, blank lines and CRLF") {
    auto r = load_config_file(peers_conf("# CPEs\nhome-17 " + k1 + "\n\n  home-18\t" + k2 +
                                         "  \r\n"));
    REQUIRE(std::holds_alternative<Config>(r));
    const auto& peers = std::get<Config>(r).auth.peers;
    REQUIRE(peers.size() == 2);
    CHECK(peers.at("home-17") == std::string(32, static_cast<char>(0xaa)));
    CHECK(static_cast<unsigned char>(peers.at("home-18")[31]) == 0xff);
  }
  SECTION("errors name the peers file and line") {
    const std::string p = dir.path + "/peers";
    auto e = [&](const std::string& text) {
      return std::get<ConfigError>(load_config_file(peers_conf(text))).str();
    };
    CHECK(e("home-17 " + k1 + "\nhome-17 " + k2 + "\n") ==
          p + ":2:1: duplicate identity \"home-17\" (first on line 1)");
    CHECK(e("# x\nhome-17\n") == p + ":2:1: expected \"IDENTITY KEY\", found one word");
    CHECK(e("home-17 " + k1 + " extra\n") == p + ":1:1: expected \"IDENTITY KEY\", found more words");
    CHECK(e("home-17 00112233\n") ==
          p + ":1:1: the key of \"home-17\" is not 64 or more hex digits (e.g. openssl rand -hex 32)");
    CHECK(e("home-17 " + std::string(64, 'g') + "\n") ==
          p + ":1:1: the key of \"home-17\" is not 64 or more hex digits (e.g. openssl rand -hex 32)");
    CHECK(e("ho\"me " + k1 + "\n") ==
          p + ":1:1: \"ho\\x22me\" is not an identity (1 to 128 printable characters without "
              "spaces, '#', quotes or backslashes)");
    CHECK(e("# nobody\n") == p + ": no peers listed (one \"IDENTITY KEY\" per line)");
  }
  SECTION("permissions checked like psk_file") {
    auto e = std::get<ConfigError>(load_config_file(peers_conf("a " + k1 + "\n", 0640)));
    CHECK(e.str() == dir.path + "/c.yaml:4:20: auth.peers_file: " + dir.path +
                         "/peers: refusing a key file that group or others can access (chmod 600 " +
                         dir.path + "/peers)");
  }
  SECTION("certificate files: readable, the key private") {
    auto cert = dir.write("cert.pem", "x", 0644);
    auto ca = dir.write("ca.pem", "x", 0644);
    auto key = dir.write("key.pem", "x", 0600);
    auto good = "{cert_file: " + cert + ", key_file: " + key + ", ca_file: " + ca + "}";
    REQUIRE(std::holds_alternative<Config>(load_config_file(conf(good))));
    ::chmod(key.c_str(), 0644);
    auto e = std::get<ConfigError>(load_config_file(conf(good)));
    CHECK(e.message == "auth.key_file: " + key +
                           ": refusing a key file that group or others can access (chmod 600 " +
                           key + ")");
    ::chmod(key.c_str(), 0600);
    auto missing = "{cert_file: " + cert + ", key_file: " + key + ", ca_file: " + ca +
                   ", crl_file: " + dir.path + "/crl.pem}";
    e = std::get<ConfigError>(load_config_file(conf(missing)));
    CHECK(e.message == "auth.crl_file: " + dir.path +
                           "/crl.pem: cannot read: No such file or directory");
  }
  SECTION("reload_auth_files re-reads the keys, and leaves them on error") {
    auto r = load_config_file(peers_conf("home-17 " + k1 + "\n"));
    REQUIRE(std::holds_alternative<Config>(r));
    Config cfg = std::get<Config>(r);
    dir.write("peers", "home-18 " + k2 + "\n", 0600);
    REQUIRE(!reload_auth_files(cfg, "c.yaml"));
    CHECK(cfg.auth.peers.count("home-17") == 0);
    CHECK(cfg.auth.peers.count("home-18") == 1);
    dir.write("peers", "home-19 short\n", 0600);
    auto e = reload_auth_files(cfg, "c.yaml");
    REQUIRE(e);
    CHECK(e->str() == dir.path + "/peers:1:1: the key of \"home-19\" is not 64 or more hex "
                                 "digits (e.g. openssl rand -hex 32)");
    CHECK(cfg.auth.peers.count("home-18") == 1);
    ::chmod((dir.path + "/peers").c_str(), 0644);
    e = reload_auth_files(cfg, "c.yaml");
    REQUIRE(e);
    CHECK(e->str() == "c.yaml: auth.peers_file: " + dir.path +
                          "/peers: refusing a key file that group or others can access (chmod "
                          "600 " + dir.path + "/peers)");
  }
}

TEST_CASE("tenant quotas: per CPE on the concentrator, per LAN host on the CPE", "[config]") {
  CHECK(ok(cpe("  max_bindings_per_host: 500\n")).cpe.max_bindings_per_host == 500);
  CHECK(ok(cpe("  max_bindings_per_host: 0\n")).cpe.max_bindings_per_host == 0);
  CHECK(err(cpe("  max_bindings_per_host: -1\n")) ==
        "t.yaml:4:26: cpe.max_bindings_per_host: \"-1\" is not a whole number");
  CHECK(err(cpe("  max_bindings_per_host: 10000001\n")) ==
        "t.yaml:4:26: cpe.max_bindings_per_host: 10000001 is out of range (0..10000000)");
  const std::string conc_head = std::string(kConcHead);
  CHECK(ok(conc_head + "  max_bindings_per_cpe: 100\n").concentrator.max_bindings_per_cpe == 100);
  CHECK(err("auth: none\n" + conc_head + "  max_bindings_per_cpe: 0\n") ==
        "t.yaml:5:25: concentrator.max_bindings_per_cpe: 0 is out of range (1..10000000)");
}

TEST_CASE("pre-authentication bounds on the concentrator", "[config]") {
  const std::string conc_head = std::string(kConcHead);
  const Config d = ok(conc_head);
  CHECK(d.concentrator.max_handshaking == 1024);
  CHECK(d.concentrator.max_handshaking_per_prefix == 256);
  CHECK(d.concentrator.handshake_timeout == 3s);
  const Config c = ok(conc_head + "  max_handshaking: 50\n  max_handshaking_per_prefix: 5\n"
                                  "  handshake_timeout: 1500ms\n");
  CHECK(c.concentrator.max_handshaking == 50);
  CHECK(c.concentrator.max_handshaking_per_prefix == 5);
  CHECK(c.concentrator.handshake_timeout == 1500ms);
  CHECK(err("auth: none\n" + conc_head + "  max_handshaking: 0\n") ==
        "t.yaml:5:20: concentrator.max_handshaking: 0 is out of range (1..1000000)");
  CHECK(err("auth: none\n" + conc_head + "  max_handshaking_per_prefix: many\n") ==
        "t.yaml:5:31: concentrator.max_handshaking_per_prefix: \"many\" is not a whole number");
  CHECK(err("auth: none\n" + conc_head + "  handshake_timeout: 50ms\n") ==
        "t.yaml:5:22: concentrator.handshake_timeout: 50ms is out of range (100ms..1m)");
  CHECK(err("auth: none\n" + conc_head + "  handshake_timeout: 2m\n") ==
        "t.yaml:5:22: concentrator.handshake_timeout: 2m is out of range (100ms..1m)");
}

TEST_CASE("concentrator.binding_log", "[config]") {
  const std::string head = "auth: none\n" + std::string(kConcHead) + "  binding_log:\n";
  const Config d = ok(kConcHead);
  CHECK_FALSE(d.concentrator.binding_log.enabled());
  // An empty section keeps the defaults: off.
  CHECK_FALSE(ok(head).concentrator.binding_log.enabled());

  const Config f = ok(head + "    path: /var/log/mpudp/bindings.log\n");
  CHECK(f.concentrator.binding_log.enabled());
  CHECK(f.concentrator.binding_log.path == "/var/log/mpudp/bindings.log");
  CHECK_FALSE(f.concentrator.binding_log.syslog);

  const Config s = ok(head + "    syslog: true\n    syslog_facility: local3\n");
  CHECK(s.concentrator.binding_log.enabled());
  CHECK(s.concentrator.binding_log.syslog);
  CHECK(s.concentrator.binding_log.syslog_facility == "local3");
  CHECK(ok(head + "    syslog: true\n").concentrator.binding_log.syslog_facility == "daemon");
  CHECK_FALSE(ok(head + "    syslog: false\n").concentrator.binding_log.enabled());

  CHECK(err(head + "    path: bindings.log\n") ==
        "t.yaml:6:11: concentrator.binding_log.path: \"bindings.log\" is not an absolute file path");
  CHECK(err(head + "    path: /var/log/mpudp/\n") ==
        "t.yaml:6:11: concentrator.binding_log.path: \"/var/log/mpudp/\" is not an absolute "
        "file path");
  CHECK(err(head + "    path:\n") == "t.yaml:6:5: concentrator.binding_log.path: missing value");
  CHECK(err(head + "    syslog: maybe\n") ==
        "t.yaml:6:13: concentrator.binding_log.syslog: \"maybe\" is not true or false");
  CHECK(err(head + "    syslog: true\n    syslog_facility: kern\n") ==
        "t.yaml:7:22: concentrator.binding_log.syslog_facility: \"kern\" is not one of daemon, "
        "user, local0..local7");
  CHECK(err(head + "    path: /var/log/b.log\n    syslog: true\n") ==
        "t.yaml:7:13: concentrator.binding_log.syslog: not with concentrator.binding_log.path: "
        "the log goes to a file or to syslog, choose one");
  CHECK(err(head + "    syslog_facility: local0\n") ==
        "t.yaml:6:22: concentrator.binding_log.syslog_facility: only with "
        "concentrator.binding_log.syslog: true");
  CHECK(err(head + "    file: /var/log/b.log\n") ==
        "t.yaml:6:5: unknown key \"file\" in concentrator.binding_log");
  CHECK(err("auth: none\n" + std::string(kConcHead) + "  binding_log: /var/log/b.log\n") ==
        "t.yaml:5:16: concentrator.binding_log: expected a mapping, found a single value");

  const auto keys = config_keys();
  for (const char* k : {"concentrator.binding_log", "concentrator.binding_log.path",
                        "concentrator.binding_log.syslog",
                        "concentrator.binding_log.syslog_facility"})
    CHECK(std::count(keys.begin(), keys.end(), k) == 1);
}

TEST_CASE("concentrator NAT behaviour: filtering and inbound refresh", "[config]") {
  const std::string head = "role: concentrator\nauth: none\nconcentrator:\n  listen: 0.0.0.0:7000\n";
  auto c = ok(head + "  filtering: address-dependent\n  refresh_on_inbound: false\n");
  CHECK(c.concentrator.filtering == FilteringConfig::AddressDependent);
  CHECK_FALSE(c.concentrator.refresh_on_inbound);
  CHECK(ok(head + "  filtering: endpoint-independent\n").concentrator.filtering ==
        FilteringConfig::EndpointIndependent);
  CHECK(std::string(to_string(FilteringConfig::AddressDependent)) == "address-dependent");
  CHECK(err(head + "  filtering: port-dependent\n") ==
        "t.yaml:5:14: concentrator.filtering: \"port-dependent\" is not one of "
        "endpoint-independent, address-dependent");
  CHECK(err(head + "  refresh_on_inbound: sometimes\n").find("concentrator.refresh_on_inbound") !=
        std::string::npos);
}

TEST_CASE("concentrator.reuse_port: several daemons on one address", "[config]") {
  const std::string head = "role: concentrator\nauth: none\nconcentrator:\n  listen: 0.0.0.0:7000\n";
  CHECK(ok(head + "  reuse_port: true\n").concentrator.reuse_port);
  CHECK(err(head + "  reuse_port: 2\n").find("t.yaml:5:15: concentrator.reuse_port") == 0);
  CHECK(ok(head + "  reuse_port: true\n  instance_port: 7001\n").concentrator.instance_port ==
        7001);
  CHECK(ok(head).concentrator.instance_port == 0);
  CHECK(err(head + "  instance_port: 7001\n") ==
        "t.yaml:5:18: concentrator.instance_port: only with concentrator.reuse_port: true (it "
        "tells one of several daemons sharing the listen addresses from the others)");
  CHECK(err(head + "  reuse_port: true\n  instance_port: 7000\n") ==
        "t.yaml:6:18: concentrator.instance_port: 7000 is a concentrator.listen port; it must "
        "be this daemon's own");
  CHECK(err(head + "  reuse_port: true\n  instance_port: 0\n").find("concentrator.instance_port") !=
        std::string::npos);
}

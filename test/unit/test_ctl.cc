// The control socket's JSON: what the daemon writes, mpudpctl must read back intact.
#include <catch2/catch.hpp>

#include <ev.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "ctl/control.h"
#include "ctl/json.h"
#include "ctl/metrics.h"
#include "ctl/stats.h"

using namespace mpudp;

TEST_CASE("writer output parses back to the same values") {
  json::Writer w;
  w.begin_object();
  w.key("s").value("a \"quoted\"\\ line\n\x01");
  w.key("n").value(std::uint64_t{18446744073709551615ull});
  w.key("neg").value(std::int64_t{-5});
  w.key("d").value(0.25);
  w.key("t").value(true);
  w.key("arr").begin_array().value(1).value("x").begin_object().end_object().end_array();
  w.key("empty").begin_array().end_array();
  w.end_object();
  std::string err;
  auto v = json::parse(w.str(), &err);
  REQUIRE(v);
  CHECK((*v)["s"].string() == "a \"quoted\"\\ line\n\x01");
  CHECK((*v)["n"].number() == Approx(1.8446744073709552e19));
  CHECK((*v)["neg"].number() == -5);
  CHECK((*v)["d"].number() == 0.25);
  CHECK((*v)["t"].boolean());
  REQUIRE((*v)["arr"].array().size() == 3);
  CHECK((*v)["arr"].array()[1].string() == "x");
  CHECK((*v)["arr"].array()[2].is_object());
  CHECK((*v)["empty"].array().empty());
  CHECK((*v)["missing"]["deeper"].number(7) == 7);
}

TEST_CASE("malformed JSON is refused with a position") {
  for (const char* bad : {"", "{", "{\"a\":}", "[1,2", "{\"a\" 1}", "tru", "\"open", "{} x"}) {
    std::string err;
    CHECK_FALSE(json::parse(bad, &err));
    CHECK(err.find("offset") != std::string::npos);
  }
  std::string deep(200, '[');
  std::string err;
  CHECK_FALSE(json::parse(deep, &err));
  CHECK(err.find("deep") != std::string::npos);
}

TEST_CASE("stats JSON names every counter and drop reason once") {
  Stats s;
  s.add(Counter::lan_rx_datagrams, 3);
  s.drop(Drop::tunnel_queue_full, 2);
  std::string err;
  auto v = json::parse(s.to_json(), &err);
  REQUIRE(v);
  CHECK((*v)["counters"]["lan_rx_datagrams"].number() == 3);
  CHECK((*v)["drops"]["tunnel_queue_full"].number() == 2);
  CHECK(s.total_drops() == 2);
  const auto* counters = std::get_if<json::Object>(&(*v)["counters"].v);
  const auto* drops = std::get_if<json::Object>(&(*v)["drops"].v);
  REQUIRE(counters);
  REQUIRE(drops);
  CHECK(counters->size() == static_cast<std::size_t>(Counter::kCount));
  CHECK(drops->size() == static_cast<std::size_t>(Drop::kCount));
}

TEST_CASE("Prometheus exposition: one family per counter, drops labelled by reason") {
  Stats s;
  s.add(Counter::wan_tx_bytes, 1500);
  s.drop(Drop::unknown_flow);
  Gauge tenants{"tenant_bindings", "bindings per tenant", 0, "tenant",
                {{"id:home-17", 3}, {"id:odd\"name\\x", 2}}};
  const std::string text =
      prometheus_text(s, {{"bindings", "bindings in the table", 7, {}, {}}, tenants});
  CHECK(text.find("# TYPE mpudp_wan_tx_bytes_total counter\nmpudp_wan_tx_bytes_total 1500\n") !=
        std::string::npos);
  CHECK(text.find("mpudp_dropped_datagrams_total{reason=\"unknown_flow\"} 1\n") !=
        std::string::npos);
  CHECK(text.find("# TYPE mpudp_bindings gauge\nmpudp_bindings 7\n") != std::string::npos);
  // One family, a series per tenant; a quote or backslash in an identity is escaped.
  CHECK(text.find("# TYPE mpudp_tenant_bindings gauge\n"
                  "mpudp_tenant_bindings{tenant=\"id:home-17\"} 3\n"
                  "mpudp_tenant_bindings{tenant=\"id:odd\\\"name\\\\x\"} 2\n") !=
        std::string::npos);
  // Every line is a comment or "name[{labels}] value".
  std::size_t start = 0;
  while (start < text.size()) {
    const auto end = text.find('\n', start);
    REQUIRE(end != std::string::npos);
    const std::string line = text.substr(start, end - start);
    CHECK((line.rfind("# ", 0) == 0 || line.rfind("mpudp_", 0) == 0));
    start = end + 1;
  }
}

namespace {
// A scratch directory, removed with everything in it.
struct ScratchDir {
  std::string path;
  ScratchDir() {
    char tmpl[] = "/tmp/mpudp-ctl-test-XXXXXX";
    REQUIRE(mkdtemp(tmpl) != nullptr);
    path = tmpl;
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};
mode_t mode_of(const std::string& p) {
  struct stat st {};
  REQUIRE(::stat(p.c_str(), &st) == 0);
  return st.st_mode & 07777;
}
}  // namespace

TEST_CASE("control socket: the directories above it are created, its own root-only") {
  ScratchDir d;
  std::string err;
  REQUIRE(make_socket_dir(d.path + "/run/mpudp/mpudpd.sock", &err));
  CHECK(mode_of(d.path + "/run") == 0755);
  CHECK(mode_of(d.path + "/run/mpudp") == 0700);
  // Existing directories are fine, and keep their modes.
  REQUIRE(make_socket_dir(d.path + "/run/mpudp/mpudpd.sock", &err));
  CHECK(mode_of(d.path + "/run") == 0755);
  // A file in the way is an error that names it.
  std::ofstream(d.path + "/file") << "x";
  CHECK_FALSE(make_socket_dir(d.path + "/file/mpudp/s.sock", &err));
  CHECK(err == "cannot create " + d.path + "/file/mpudp: Not a directory");
}

TEST_CASE("control socket: one default for daemon and client, moved only where /run is missing") {
  CHECK(usable_control_socket("/tmp/other.sock") == "/tmp/other.sock");
  struct stat st {};
  const bool have_run = ::stat("/run", &st) == 0;
  const std::string def = MPUDP_CONTROL_SOCKET;
  if (have_run || def.rfind("/run/", 0) != 0)
    CHECK(usable_control_socket() == def);
  else
    CHECK(usable_control_socket() == "/var" + def);
}

TEST_CASE("control socket: a path that cannot be bound is an error, not another daemon") {
  ScratchDir d;
  Loop* loop = ev_loop_new(EVFLAG_AUTO);
  REQUIRE(loop != nullptr);
  std::string err;
  bool in_use = true;
  auto none = ControlServer::open(loop, d.path + "/missing/c.sock",
                                  [](const std::string&) { return std::string("{}"); }, &err,
                                  &in_use);
  CHECK(none == nullptr);
  CHECK_FALSE(in_use);
  CHECK(err.find("bind " + d.path + "/missing/c.sock: ") == 0);
  // Something answering on the path (a running daemon): in_use says so. A plain socket
  // in a thread answers the probe once.
  const std::string live = d.path + "/c.sock";
  int lfd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  REQUIRE(lfd >= 0);
  sockaddr_un sun{};
  sun.sun_family = AF_UNIX;
  std::snprintf(sun.sun_path, sizeof sun.sun_path, "%s", live.c_str());
  REQUIRE(::bind(lfd, reinterpret_cast<sockaddr*>(&sun), sizeof sun) == 0);
  REQUIRE(::listen(lfd, 1) == 0);
  std::thread t([lfd] {
    int c = ::accept(lfd, nullptr, nullptr);
    if (c < 0) return;
    char buf[64];
    (void)!::read(c, buf, sizeof buf);
    (void)!::write(c, "{\"ok\": true}\n", 13);
    ::close(c);
  });
  auto second = ControlServer::open(
      loop, live, [](const std::string&) { return std::string("{}"); }, &err, &in_use);
  t.join();
  ::close(lfd);
  CHECK(second == nullptr);
  CHECK(in_use);
  CHECK(err == "another daemon answers on " + live);
  ev_loop_destroy(loop);
}

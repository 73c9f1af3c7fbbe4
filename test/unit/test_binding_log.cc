// The binding log (docs/CONFIG.md, "concentrator.binding_log"): the line format operators parse,
// pinned byte for byte, and the file writer's append, flush, counters and reopen.
#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "binding/binding_log.h"
#include "ctl/binding_log_writer.h"
#include "ctl/stats.h"

using namespace mpudp;
using namespace std::chrono_literals;

namespace {

// 2026-12-03T07:45:12.345Z
WallTime at(std::chrono::milliseconds since_epoch) { return WallTime(since_epoch); }
constexpr std::chrono::milliseconds kT0{1796283912345};

BindingLogRecord v4_record() {
  BindingLogRecord r;
  r.identity = "home-17";
  r.peer = "198.18.1.1";
  r.session = 3;
  r.client = *Endpoint::parse("198.18.0.2:40000");
  r.external = *Endpoint::parse("198.18.4.1:51234");
  r.start = at(kT0);
  return r;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

TEST_CASE("RFC 3339 timestamps in UTC with milliseconds", "[binding_log]") {
  CHECK(rfc3339_ms(at(kT0)) == "2026-12-03T07:45:12.345Z");
  CHECK(rfc3339_ms(at(0ms)) == "1970-01-01T00:00:00.000Z");
  CHECK(rfc3339_ms(at(kT0 + 655ms)) == "2026-12-03T07:45:13.000Z");
  // Sub-millisecond parts are cut, never rounded up into the next second.
  CHECK(rfc3339_ms(at(kT0) + std::chrono::microseconds(999)) == "2026-12-03T07:45:12.345Z");
  // A router whose clock was never set may be before 1970: still a valid stamp.
  CHECK(rfc3339_ms(at(-1ms)) == "1969-12-31T23:59:59.999Z");
}

TEST_CASE("open line, IPv4", "[binding_log]") {
  CHECK(format_binding_open(v4_record()) ==
        "time=2026-12-03T07:45:12.345Z event=open identity=home-17 peer=198.18.1.1 session=3 "
        "client=198.18.0.2:40000 external=198.18.4.1:51234");
}

TEST_CASE("close line, IPv4, with counts and reason", "[binding_log]") {
  BindingLogRecord r = v4_record();
  r.end = at(kT0 + 300'001ms);
  r.reason = RemoveReason::Expired;
  r.up = {2, 24};
  r.down = {3, 1500};
  CHECK(format_binding_close(r) ==
        "time=2026-12-03T07:50:12.346Z event=close identity=home-17 peer=198.18.1.1 session=3 "
        "client=198.18.0.2:40000 external=198.18.4.1:51234 start=2026-12-03T07:45:12.345Z "
        "end=2026-12-03T07:50:12.346Z duration_ms=300001 reason=expired up_datagrams=2 "
        "up_bytes=24 down_datagrams=3 down_bytes=1500");
}

TEST_CASE("IPv6 endpoints are in brackets", "[binding_log]") {
  BindingLogRecord r = v4_record();
  r.peer = "2001:db8:1::1";
  r.client = *Endpoint::parse("[2001:db8::2]:40000");
  r.external = *Endpoint::parse("[2001:db8:4::1]:51234");
  CHECK(format_binding_open(r) ==
        "time=2026-12-03T07:45:12.345Z event=open identity=home-17 peer=2001:db8:1::1 session=3 "
        "client=[2001:db8::2]:40000 external=[2001:db8:4::1]:51234");
}

TEST_CASE("every removal reason has its word", "[binding_log]") {
  const std::pair<RemoveReason, const char*> reasons[] = {
      {RemoveReason::Expired, "expired"},         {RemoveReason::Evicted, "evicted"},
      {RemoveReason::QuotaEvicted, "quota_evicted"}, {RemoveReason::PeerClosed, "peer_closed"},
      {RemoveReason::PeerReset, "peer_reset"},     {RemoveReason::SessionLost, "session_lost"},
      {RemoveReason::Refused, "refused"},          {RemoveReason::Shutdown, "shutdown"},
  };
  for (const auto& [why, word] : reasons) {
    BindingLogRecord r = v4_record();
    r.end = r.start;
    r.reason = why;
    const std::string line = format_binding_close(r);
    INFO(line);
    CHECK(line.find(std::string(" reason=") + word + " ") != std::string::npos);
    CHECK(line.find(" duration_ms=0 ") != std::string::npos);
  }
}

TEST_CASE("values that are not plain words are quoted and escaped", "[binding_log]") {
  auto value = [](std::string_view v) {
    std::string out;
    append_log_value(out, v);
    return out;
  };
  CHECK(value("home-17") == "home-17");
  CHECK(value("") == "\"\"");
  // A certificate's commonName may hold spaces, quotes, '=' or UTF-8.
  CHECK(value("Home 17") == "\"Home 17\"");
  CHECK(value("a=b") == "\"a=b\"");
  CHECK(value("say \"hi\"") == "\"say \\\"hi\\\"\"");
  CHECK(value("back\\slash") == "\"back\\\\slash\"");
  CHECK(value("line\nbreak\x01") == "\"line\\x0abreak\\x01\"");
  CHECK(value("M\xc3\xbcller") == "\"M\\xc3\\xbcller\"");
  CHECK(value(std::string_view("nul\0byte", 8)) == "\"nul\\x00byte\"");

  // A session without identity (auth: none, accept_cleartext) and a hostile name: the
  // line stays one line of key=value pairs.
  BindingLogRecord r = v4_record();
  r.identity = "";
  CHECK(format_binding_open(r).find(" identity=\"\" peer=") != std::string::npos);
  r.identity = "evil\n time=1970 event=close";
  const std::string line = format_binding_open(r);
  CHECK(line.find('\n') == std::string::npos);
  CHECK(line.find(" identity=\"evil\\x0a time=1970 event=close\" peer=") != std::string::npos);
}

TEST_CASE("file writer: appends, buffers until flushed, counts", "[binding_log]") {
  const std::string dir = std::filesystem::temp_directory_path() /
                          ("mpudp-binding-log-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = dir + "/bindings.log";
  {
    std::ofstream(path) << "an earlier line\n";
  }
  Stats stats;
  std::string err;
  auto w = BindingLogWriter::open_file(path, stats, &err);
  REQUIRE(w);
  CHECK(w->target() == "file " + path);
  w->write("one");
  w->write("two");
  CHECK(w->pending());
  // Buffered: nothing reached the file before a flush (a syscall per binding is the
  // cost this avoids).
  CHECK(slurp(path) == "an earlier line\n");
  w->flush();
  CHECK_FALSE(w->pending());
  CHECK(slurp(path) == "an earlier line\none\ntwo\n");
  CHECK(stats.get(Counter::binding_log_lines) == 2);
  CHECK(stats.get(Counter::binding_log_write_errors) == 0);

  SECTION("reopen after logrotate moved the file") {
    w->write("three");
    std::filesystem::rename(path, path + ".1");
    REQUIRE(w->reopen(&err));
    w->write("four");
    w->flush();
    // What was buffered went to the old file; what came after, to a new one by the name.
    CHECK(slurp(path + ".1") == "an earlier line\none\ntwo\nthree\n");
    CHECK(slurp(path) == "four\n");
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    CHECK((st.st_mode & 0007) == 0);  // 0640 under the umask: not for everyone to read
  }
  SECTION("a reopen that fails keeps the open file") {
    std::filesystem::rename(path, path + ".1");
    std::filesystem::rename(dir, dir + "-moved");
    CHECK_FALSE(w->reopen(&err));
    CHECK(err.find("No such file or directory") != std::string::npos);
    w->write("still here");
    w->flush();
    CHECK(slurp(dir + "-moved/bindings.log.1") == "an earlier line\none\ntwo\nstill here\n");
    std::filesystem::rename(dir + "-moved", dir);
  }
  SECTION("the destructor flushes") {
    w->write("last");
    w.reset();
    CHECK(slurp(path) == "an earlier line\none\ntwo\nlast\n");
  }
  w.reset();
  std::filesystem::remove_all(dir);
}

TEST_CASE("file writer: a file that cannot be opened is an error", "[binding_log]") {
  Stats stats;
  std::string err;
  CHECK_FALSE(BindingLogWriter::open_file("/nonexistent-dir/x.log", stats, &err));
  CHECK(err == "/nonexistent-dir/x.log: No such file or directory");
}

TEST_CASE("file writer: a failed write is counted, not fatal", "[binding_log]") {
  // /dev/full takes the open and fails every write with ENOSPC.
  Stats stats;
  std::string err;
  auto w = BindingLogWriter::open_file("/dev/full", stats, &err);
  REQUIRE(w);
  w->write("lost");
  w->flush();
  CHECK(stats.get(Counter::binding_log_lines) == 1);
  CHECK(stats.get(Counter::binding_log_write_errors) == 1);
  // The next flush tries again (and fails again); nothing is stuck.
  w->write("lost too");
  w->flush();
  CHECK(stats.get(Counter::binding_log_write_errors) == 2);
}

TEST_CASE("syslog facilities", "[binding_log]") {
  CHECK(syslog_facility_code("daemon") >= 0);
  CHECK(syslog_facility_code("local0") >= 0);
  CHECK(syslog_facility_code("local7") != syslog_facility_code("local0"));
  CHECK(syslog_facility_code("kern") == -1);
  Stats stats;
  std::string err;
  CHECK_FALSE(BindingLogWriter::open_syslog("mail", stats, &err));
  CHECK(err == "unknown syslog facility \"mail\"");
  auto w = BindingLogWriter::open_syslog("local5", stats, &err);
  REQUIRE(w);
  CHECK(w->target() == "syslog local5");
}

#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "ctl/log.h"

using namespace mpudp;

namespace {

std::string line(log::Level l, const log::LineFormat& f, std::string_view peer, const char* msg) {
  char buf[256];
  const std::size_t n = log::format_line(buf, sizeof buf, l, f, peer, msg);
  REQUIRE(n < sizeof buf);
  REQUIRE(buf[n] == '\0');
  return std::string(buf, n);
}

std::string dev_ino(int fd) {
  struct stat st {};
  REQUIRE(fstat(fd, &st) == 0);
  return std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
}

// What `write` sends to stderr, with timestamps off and the level at info.
template <typename F>
std::string captured_stderr(F write) {
  char path[] = "/tmp/mpudp-log-XXXXXX";
  const int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  unlink(path);
  std::fflush(stderr);
  const int saved = dup(STDERR_FILENO);
  REQUIRE(dup2(fd, STDERR_FILENO) == STDERR_FILENO);
  log::set_timestamps(false);
  log::set_target(log::Target::Stderr);
  log::set_level(log::Level::Info);
  write();
  std::fflush(stderr);
  dup2(saved, STDERR_FILENO);
  close(saved);
  log::set_timestamps(true);
  std::string got(64 * 1024, '\0');
  const ssize_t n = pread(fd, got.data(), got.size(), 0);
  close(fd);
  REQUIRE(n >= 0);
  got.resize(static_cast<std::size_t>(n));
  return got;
}

}  // namespace

TEST_CASE("log levels map to the syslog priorities journald and syslogd file them under") {
  // LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG (RFC 5424 severities; <syslog.h> is not
  // included here because it has macros of those names, as does ctl/log.h).
  CHECK(log::syslog_priority(log::Level::Error) == 3);
  CHECK(log::syslog_priority(log::Level::Warn) == 4);
  CHECK(log::syslog_priority(log::Level::Info) == 6);
  CHECK(log::syslog_priority(log::Level::Debug) == 7);
}

TEST_CASE("a stderr line: priority prefix, timestamp, level, peer slot, message") {
  log::LineFormat plain;
  CHECK(line(log::Level::Info, plain, {}, "started") == "mpudpd[info]: started");

  log::LineFormat journal;
  journal.priority_prefix = true;
  CHECK(line(log::Level::Error, journal, {}, "boom") == "<3>mpudpd[error]: boom");
  CHECK(line(log::Level::Warn, journal, "198.18.2.2:7000", "tunnel to 198.18.2.2:7000 lost") ==
        "<4>mpudpd[warn]: peer=198.18.2.2:7000: tunnel to 198.18.2.2:7000 lost");
  CHECK(line(log::Level::Debug, journal, "home-17", "x") == "<7>mpudpd[debug]: peer=home-17: x");

  log::LineFormat stamped;
  stamped.timestamp = "2026-12-02T20:00:00.000Z";
  CHECK(line(log::Level::Info, stamped, "[2001:db8::1]:7000", "up") ==
        "2026-12-02T20:00:00.000Z mpudpd[info]: peer=[2001:db8::1]:7000: up");
}

TEST_CASE("a line too long for the buffer is cut, never overrun") {
  char buf[16];
  log::LineFormat journal;
  journal.priority_prefix = true;
  const std::size_t n =
      log::format_line(buf, sizeof buf, log::Level::Info, journal, "peer", "a long message");
  CHECK(n == sizeof buf - 1);
  CHECK(std::string(buf) == "<6>mpudpd[info]");
  CHECK(log::format_line(buf, 1, log::Level::Info, journal, {}, "x") == 0);
  CHECK(buf[0] == '\0');
}

TEST_CASE("JOURNAL_STREAM counts only when it names the descriptor's own file") {
  char path[] = "/tmp/mpudp-log-XXXXXX";
  const int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  unlink(path);
  char other_path[] = "/tmp/mpudp-log-XXXXXX";
  const int other = mkstemp(other_path);
  REQUIRE(other >= 0);
  unlink(other_path);

  CHECK(log::is_journal_stream(dev_ino(fd).c_str(), fd));
  // Inherited by a child whose stderr went elsewhere: not the journal.
  CHECK_FALSE(log::is_journal_stream(dev_ino(other).c_str(), fd));
  CHECK_FALSE(log::is_journal_stream(nullptr, fd));
  CHECK_FALSE(log::is_journal_stream("", fd));
  CHECK_FALSE(log::is_journal_stream("12", fd));
  CHECK_FALSE(log::is_journal_stream((dev_ino(fd) + "x").c_str(), fd));
  CHECK_FALSE(log::is_journal_stream(dev_ino(fd).c_str(), -1));
  close(fd);
  close(other);
}

TEST_CASE("lines written to stderr carry the prefix and the peer slot") {
  const std::string got = captured_stderr([] {
    log::set_priority_prefix(true);
    PEER_WARN("198.18.2.2:7000", "tunnel to %s lost: %s", "198.18.2.2:7000", "reset");
    LOG_INFO("plain %d", 1);
    LOG_DEBUG("not shown");
    PEER_DEBUG("x", "not shown either");
    log::set_priority_prefix(false);
  });
  CHECK(got ==
        "<4>mpudpd[warn]: peer=198.18.2.2:7000: tunnel to 198.18.2.2:7000 lost: reset\n"
        "<6>mpudpd[info]: plain 1\n");
}

TEST_CASE("a message longer than the usual buffer is written whole, up to 16 KiB") {
  // SIGUSR1's counters: a JSON object of several KiB that must stay parseable.
  const std::string json = "{\"a\":\"" + std::string(5000, 'x') + "\"}";
  const std::string huge(40000, 'y');
  const std::string got = captured_stderr([&] {
    LOG_INFO("stats bindings=%d %s", 3, json.c_str());
    LOG_INFO("%s", huge.c_str());
  });
  const std::string first = "mpudpd[info]: stats bindings=3 " + json + "\n";
  REQUIRE(got.size() > first.size());
  CHECK(got.substr(0, first.size()) == first);
  CHECK(got.substr(first.size()) == "mpudpd[info]: " + std::string(16 * 1024 - 1, 'y') + "\n");
}

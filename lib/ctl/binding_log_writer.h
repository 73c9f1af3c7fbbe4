// Where the binding log's lines go (binding/binding_log.h makes them): a file, appended
// to through a large stdio buffer that the owner flushes at least once a second, or
// syslog(3) with a facility of its own. Only binding creation and removal write here,
// never a datagram. A failed write is counted (binding_log_write_errors) and logged at
// most once a minute; it never stops the daemon.
#pragma once

#include <cstdio>
#include <memory>
#include <string>
#include <string_view>

#include "ctl/log.h"
#include "ctl/stats.h"

namespace mpudp {

// LOG_DAEMON, LOG_USER, LOG_LOCAL0..7 for "daemon", "user", "local0".."local7"; -1 for
// any other name.
int syslog_facility_code(std::string_view name);

class BindingLogWriter {
 public:
  // Appends to `path` (created 0640 if missing). Null, with *err, when it cannot be
  // opened.
  static std::unique_ptr<BindingLogWriter> open_file(const std::string& path, Stats& stats,
                                                     std::string* err);
  static std::unique_ptr<BindingLogWriter> open_syslog(std::string_view facility, Stats& stats,
                                                       std::string* err);
  ~BindingLogWriter();
  BindingLogWriter(const BindingLogWriter&) = delete;
  BindingLogWriter& operator=(const BindingLogWriter&) = delete;

  // One line, without its newline.
  void write(std::string_view line);
  // Hands what the buffer holds to the kernel (a file; syslog has nothing buffered).
  void flush();
  // Lines written since the last flush.
  bool pending() const { return pending_; }
  // A file again by its name (after logrotate moved it): the new one is opened first,
  // so on failure (*err) the lines keep going to the old one. Syslog: nothing to do.
  bool reopen(std::string* err);
  // "file PATH" or "syslog FACILITY": what the settings were, to tell a change.
  const std::string& target() const { return target_; }

  static constexpr std::size_t kBufferBytes = 64 * 1024;

 private:
  BindingLogWriter(Stats& stats, std::string target) : stats_(stats), target_(std::move(target)) {}
  void check_error(const char* what);

  Stats& stats_;
  std::string target_;
  std::string path_;
  std::FILE* file_ = nullptr;
  int facility_ = -1;
  bool pending_ = false;
  log::Throttle error_log_;
  std::unique_ptr<char[]> buffer_;
};

}  // namespace mpudp

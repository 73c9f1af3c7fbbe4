#include "ctl/binding_log_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

// <syslog.h> names its priorities LOG_INFO and LOG_DEBUG too (see ctl/log.cc).
#undef LOG_INFO
#undef LOG_DEBUG
#include <syslog.h>

namespace mpudp {
namespace {
struct FacilityName {
  const char* name;
  int code;
};
constexpr FacilityName kFacilities[] = {
    {"daemon", LOG_DAEMON}, {"user", LOG_USER},     {"local0", LOG_LOCAL0},
    {"local1", LOG_LOCAL1}, {"local2", LOG_LOCAL2}, {"local3", LOG_LOCAL3},
    {"local4", LOG_LOCAL4}, {"local5", LOG_LOCAL5}, {"local6", LOG_LOCAL6},
    {"local7", LOG_LOCAL7},
};

std::FILE* open_append(const std::string& path, std::string* err) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
  if (fd < 0) {
    if (err) *err = path + ": " + std::strerror(errno);
    return nullptr;
  }
  std::FILE* f = ::fdopen(fd, "a");
  if (f == nullptr) {
    if (err) *err = path + ": " + std::strerror(errno);
    ::close(fd);
  }
  return f;
}
}  // namespace

int syslog_facility_code(std::string_view name) {
  for (const auto& f : kFacilities)
    if (name == f.name) return f.code;
  return -1;
}

std::unique_ptr<BindingLogWriter> BindingLogWriter::open_file(const std::string& path,
                                                              Stats& stats, std::string* err) {
  std::FILE* f = open_append(path, err);
  if (f == nullptr) return nullptr;
  std::unique_ptr<BindingLogWriter> w(new BindingLogWriter(stats, "file " + path));
  w->path_ = path;
  w->file_ = f;
  // Lines leave in a few large writes, not one write() per binding: at tens of thousands
  // of new bindings a second that is the difference between noise and a syscall each.
  w->buffer_ = std::make_unique<char[]>(kBufferBytes);
  std::setvbuf(f, w->buffer_.get(), _IOFBF, kBufferBytes);
  return w;
}

std::unique_ptr<BindingLogWriter> BindingLogWriter::open_syslog(std::string_view facility,
                                                                Stats& stats, std::string* err) {
  const int code = syslog_facility_code(facility);
  if (code < 0) {
    if (err) *err = "unknown syslog facility \"" + std::string(facility) + "\"";
    return nullptr;
  }
  std::unique_ptr<BindingLogWriter> w(
      new BindingLogWriter(stats, "syslog " + std::string(facility)));
  w->facility_ = code;
  return w;
}

BindingLogWriter::~BindingLogWriter() {
  if (file_ == nullptr) return;
  flush();
  std::fclose(file_);
}

void BindingLogWriter::write(std::string_view line) {
  stats_.add(Counter::binding_log_lines);
  if (file_ == nullptr) {
    // The facility in the priority overrides openlog's, so these lines can be routed
    // apart from the daemon's own (which go to daemon).
    ::syslog(facility_ | LOG_INFO, "%.*s", static_cast<int>(line.size()), line.data());
    return;
  }
  std::fwrite(line.data(), 1, line.size(), file_);
  std::fputc('\n', file_);
  pending_ = true;
  check_error("write");
}

void BindingLogWriter::flush() {
  if (file_ == nullptr || !pending_) return;
  pending_ = false;
  std::fflush(file_);
  check_error("flush");
}

void BindingLogWriter::check_error(const char* what) {
  if (!std::ferror(file_)) return;
  const int e = errno;
  std::clearerr(file_);
  stats_.add(Counter::binding_log_write_errors);
  const double now =
      std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
  std::uint64_t held = 0;
  // A full disk fails every flush: one line a minute says so, the counter says how often.
  if (!error_log_.allow(now / 60.0, &held)) return;
  if (held == 0)
    log::write(log::Level::Error, "binding log %s: %s failed: %s", path_.c_str(), what,
               std::strerror(e));
  else
    log::write(log::Level::Error, "binding log %s: %s failed: %s (and %llu times since the "
               "last line)", path_.c_str(), what, std::strerror(e),
               static_cast<unsigned long long>(held));
}

bool BindingLogWriter::reopen(std::string* err) {
  if (file_ == nullptr) return true;
  std::FILE* f = open_append(path_, err);
  if (f == nullptr) return false;
  flush();
  std::fclose(file_);
  file_ = f;
  std::setvbuf(f, buffer_.get(), _IOFBF, kBufferBytes);
  return true;
}

}  // namespace mpudp

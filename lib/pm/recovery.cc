#include "pm/recovery.h"

#include <cerrno>
#include <cstring>
#include <fstream>

#include "ctl/log.h"

namespace mpudp::pm {

std::vector<SysctlValue> fast_recovery_settings() {
  return {
      {"net.mptcp.stale_loss_cnt", "1"},
      {"net.ipv4.tcp_thin_linear_timeouts", "1"},
      {"net.ipv4.tcp_rto_min_us", "50000"},
  };
}

std::vector<SysctlChange> plan_apply(const std::vector<SysctlValue>& want, const SysctlRead& read,
                                     std::vector<std::string>* missing) {
  std::vector<SysctlChange> out;
  for (const SysctlValue& w : want) {
    const std::optional<std::string> now = read(w.key);
    if (!now) {
      if (missing) missing->push_back(w.key);
      continue;
    }
    if (*now != w.value) out.push_back({w.key, *now, w.value});
  }
  return out;
}

std::vector<SysctlChange> plan_restore(const std::vector<SysctlChange>& applied,
                                       const SysctlRead& read) {
  std::vector<SysctlChange> out;
  // Last applied first, like a stack, though the keys are independent today.
  for (auto it = applied.rbegin(); it != applied.rend(); ++it) {
    const std::optional<std::string> now = read(it->key);
    if (now && *now == it->after) out.push_back({it->key, it->after, it->before});
  }
  return out;
}

std::string sysctl_path(const std::string& key) {
  std::string p = "/proc/sys/" + key;
  for (std::size_t i = sizeof("/proc/sys/") - 1; i < p.size(); ++i)
    if (p[i] == '.') p[i] = '/';
  return p;
}

namespace {

std::optional<std::string> read_sysctl(const std::string& key) {
  std::ifstream in(sysctl_path(key));
  std::string line;
  if (!in || !std::getline(in, line)) return std::nullopt;
  while (!line.empty() && (line.back() == '\n' || line.back() == ' ' || line.back() == '\t'))
    line.pop_back();
  return line;
}

bool write_sysctl(const std::string& key, const std::string& value, std::string* err) {
  std::ofstream out(sysctl_path(key));
  if (out) out << value << '\n';
  out.flush();
  if (!out) {
    *err = std::strerror(errno != 0 ? errno : EIO);
    return false;
  }
  return true;
}

}  // namespace

void SysctlTuner::apply(const std::vector<SysctlValue>& want) {
  std::vector<std::string> missing;
  for (const SysctlChange& c : plan_apply(want, read_sysctl, &missing)) {
    std::string err;
    if (!write_sysctl(c.key, c.after, &err)) {
      LOG_WARN("tunnel.path_recovery: cannot set %s to %s: %s; a dark path is noticed later",
               c.key.c_str(), c.after.c_str(), err.c_str());
      continue;
    }
    LOG_INFO("tunnel.path_recovery: %s %s -> %s", c.key.c_str(), c.before.c_str(),
             c.after.c_str());
    applied_.push_back(c);
  }
  for (const std::string& k : missing)
    LOG_WARN("tunnel.path_recovery: this kernel has no %s; a dark path is noticed later",
             k.c_str());
}

void SysctlTuner::restore() {
  for (const SysctlChange& c : plan_restore(applied_, read_sysctl)) {
    std::string err;
    if (write_sysctl(c.key, c.after, &err))
      LOG_INFO("tunnel.path_recovery: %s put back to %s", c.key.c_str(), c.after.c_str());
    else
      LOG_WARN("tunnel.path_recovery: cannot put %s back to %s: %s", c.key.c_str(),
               c.after.c_str(), err.c_str());
  }
  applied_.clear();
}

}  // namespace mpudp::pm

#include "config/config.h"

#include "net/cidr.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <map>
#include <cerrno>
#include <cstring>
#include <exception>
#include <functional>
#include <new>
#include <optional>
#include <sstream>
#include <span>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

namespace mpudp {
namespace {

using std::chrono::milliseconds;

// A configuration is a few hundred bytes; the cap keeps a mistaken `-c /dev/zero` or a
// fuzzer's megabytes from turning into an unbounded node tree.
constexpr std::size_t kMaxConfigBytes = 1 << 20;

template <typename E>
struct Named {
  E value;
  const char* name;
};

// The same tables parse and print, so the accepted spellings and to_string never drift.
constexpr std::array<Named<ProxyRole>, 2> kRoles{{
    {ProxyRole::Cpe, "cpe"},
    {ProxyRole::Concentrator, "concentrator"},
}};
constexpr std::array<Named<SessionModeConfig>, 2> kSessionModes{{
    {SessionModeConfig::Multiplexed, "multiplexed"},
    {SessionModeConfig::PerBinding, "per-binding"},
}};
constexpr std::array<Named<PathRecovery>, 2> kPathRecoveries{{
    {PathRecovery::Kernel, "kernel"},
    {PathRecovery::Fast, "fast"},
}};
constexpr std::array<Named<FilteringConfig>, 2> kFilterings{{
    {FilteringConfig::EndpointIndependent, "endpoint-independent"},
    {FilteringConfig::AddressDependent, "address-dependent"},
}};
constexpr std::array<Named<LogLevel>, 4> kLogLevels{{
    {LogLevel::Error, "error"},
    {LogLevel::Warn, "warn"},
    {LogLevel::Info, "info"},
    {LogLevel::Debug, "debug"},
}};
constexpr std::array<Named<LogTarget>, 2> kLogTargets{{
    {LogTarget::Stderr, "stderr"},
    {LogTarget::Syslog, "syslog"},
}};

template <typename E, std::size_t N>
const char* name_of(const std::array<Named<E>, N>& table, E value) {
  for (const auto& n : table)
    if (n.value == value) return n.name;
  return "?";
}

// Thrown inside the validation pass and caught only by load_*: the first error ends the
// pass, and unwinding is the least noisy way to get out of a nested walk.
struct Reject {
  YAML::Mark mark;
  std::string message;
  std::string file;  // set when the error is in another file (the peers file)
  int line = 0;      // in `file`; 0: no position
  bool positioned = true;
};

[[noreturn]] void reject(const YAML::Mark& mark, std::string message) {
  throw Reject{mark, std::move(message), {}, 0, true};
}

// An error about a file the configuration names, at a line of it (0: the whole file).
[[noreturn]] void reject_in(std::string file, int line, std::string message) {
  throw Reject{YAML::Mark(), std::move(message), std::move(file), line, true};
}

ConfigError make_error(std::string_view file, const YAML::Mark& mark, std::string message) {
  ConfigError e;
  e.file = std::string(file);
  // Marks are 0-based; a null mark (no position known) still gets a position inside the
  // file so the error is never mistaken for an unreadable-file error (line 0).
  e.line = mark.line >= 0 ? mark.line + 1 : 1;
  e.column = mark.column >= 0 ? mark.column + 1 : 1;
  e.message = std::move(message);
  if (e.message.empty()) e.message = "invalid configuration";
  return e;
}

ConfigError make_error(std::string_view file, std::string message) {
  ConfigError e;
  e.file = std::string(file);
  e.message = std::move(message);
  return e;
}

// User text goes into log lines and terminals: bound its length and make control bytes
// visible rather than let them rewrite the line.
std::string shown(std::string_view text) {
  constexpr std::size_t kMax = 64;
  std::string out;
  for (std::size_t i = 0; i < text.size() && i < kMax; ++i) {
    auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x20 || c == 0x7f || c == '"' || c == '\\') {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    } else {
      out += static_cast<char>(c);
    }
  }
  if (text.size() > kMax) out += "...";
  return out;
}

std::string quoted(std::string_view text) { return "\"" + shown(text) + "\""; }

const char* kind_name(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Map: return "a mapping";
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Scalar: return "a single value";
    case YAML::NodeType::Null: return "nothing";
    case YAML::NodeType::Undefined: break;
  }
  return "nothing";
}

// One key/value pair under validation. Errors about the value point at the value;
// errors about its absence point at the key, because a null value's mark is wherever
// the parser happened to be next (often the following line).
struct Where {
  YAML::Mark key_mark;
  const YAML::Node& value;
  std::string path;
};

std::string scalar(const Where& w) {
  if (w.value.IsNull()) reject(w.key_mark, w.path + ": missing value");
  if (!w.value.IsScalar())
    reject(w.value.Mark(), w.path + ": expected a single value, found " + kind_name(w.value));
  return w.value.Scalar();
}

// Digits only: no sign, no '+', no hex or octal prefixes, no fractions, no exponent.
// nullopt for anything else; UINT64_MAX stands in for "too big to represent".
std::optional<std::uint64_t> parse_digits(std::string_view text) {
  if (text.empty()) return std::nullopt;
  std::uint64_t v = 0;
  bool overflow = false;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    auto d = static_cast<std::uint64_t>(c - '0');
    if (v > (UINT64_MAX - d) / 10) overflow = true;
    if (!overflow) v = v * 10 + d;
  }
  return overflow ? UINT64_MAX : v;
}

std::uint64_t uint_in(const Where& w, std::uint64_t lo, std::uint64_t hi) {
  std::string text = scalar(w);
  auto v = parse_digits(text);
  if (!v) reject(w.value.Mark(), w.path + ": " + quoted(text) + " is not a whole number");
  if (*v < lo || *v > hi)
    reject(w.value.Mark(), w.path + ": " + shown(text) + " is out of range (" +
                               std::to_string(lo) + ".." + std::to_string(hi) + ")");
  return *v;
}

struct DurationUnit {
  const char* suffix;
  std::uint64_t ms;
};
// "ms" before "m" and "s" so that the longest suffix wins.
constexpr std::array<DurationUnit, 4> kDurationUnits{{
    {"ms", 1},
    {"h", 3600 * 1000},
    {"m", 60 * 1000},
    {"s", 1000},
}};

std::string format_duration(milliseconds d) {
  auto ms = static_cast<std::uint64_t>(d.count());
  for (auto unit : {kDurationUnits[1], kDurationUnits[2], kDurationUnits[3]})
    if (ms != 0 && ms % unit.ms == 0) return std::to_string(ms / unit.ms) + unit.suffix;
  return std::to_string(ms) + "ms";
}

milliseconds duration_in(const Where& w, milliseconds lo, milliseconds hi) {
  std::string text = scalar(w);
  std::string_view digits = text;
  std::uint64_t scale = 1000;  // a bare number is seconds
  for (auto unit : kDurationUnits) {
    std::string_view sfx = unit.suffix;
    if (digits.size() > sfx.size() && digits.ends_with(sfx)) {
      digits.remove_suffix(sfx.size());
      scale = unit.ms;
      break;
    }
  }
  auto v = parse_digits(digits);
  if (!v)
    reject(w.value.Mark(),
           w.path + ": " + quoted(text) + " is not a duration (use 500ms, 2s, 5m)");
  auto limit = static_cast<std::uint64_t>(hi.count());
  bool too_big = *v > limit / scale;
  std::uint64_t ms = too_big ? 0 : *v * scale;
  if (too_big || ms < static_cast<std::uint64_t>(lo.count()) || ms > limit)
    reject(w.value.Mark(), w.path + ": " + shown(text) + " is out of range (" +
                               format_duration(lo) + ".." + format_duration(hi) + ")");
  return milliseconds(static_cast<milliseconds::rep>(ms));
}

Endpoint endpoint(const Where& w, bool allow_unspecified) {
  std::string text = scalar(w);
  auto e = Endpoint::parse(text);
  if (!e) reject(w.value.Mark(), w.path + ": " + quoted(text) + " is not an address:port");
  if (e->port == 0) reject(w.value.Mark(), w.path + ": " + quoted(text) + " has port 0");
  if (!allow_unspecified && e->is_unspecified())
    reject(w.value.Mark(),
           w.path + ": " + quoted(text) + " is an unspecified address, not a destination");
  return *e;
}

template <typename E, std::size_t N>
E one_of(const Where& w, const std::array<Named<E>, N>& table) {
  std::string text = scalar(w);
  for (const auto& n : table)
    if (text == n.name) return n.value;
  std::string names;
  for (const auto& n : table) names += (names.empty() ? "" : ", ") + std::string(n.name);
  reject(w.value.Mark(), w.path + ": " + quoted(text) + " is not one of " + names);
}

// What the post-walk checks need: which role-dependent keys appeared, and where to point
// when one is missing.
struct Seen {
  std::vector<bool> path_subflow_set;  // per path: `subflow` written in the file
  std::optional<YAML::Mark> role;
  std::optional<YAML::Mark> cpe_key;
  std::optional<YAML::Mark> concentrator_key;
  bool cpe_concentrator = false;
  std::optional<YAML::Mark> listen;
  std::optional<YAML::Mark> auth;        // the `auth` key
  std::optional<YAML::Mark> auth_value;  // its value (a mapping)
  // The values of auth's keys, by name: where to point when a combination is wrong.
  std::map<std::string, YAML::Mark> auth_keys;
  std::optional<YAML::Mark> encryption;  // the `encryption` value
  std::optional<YAML::Mark> accept_cleartext;
  bool target_delay = false;           // tunnel.target_delay written in the file
  std::optional<YAML::Mark> copies;          // tunnel.copies' value
  std::optional<YAML::Mark> copy_classes;    // cpe.copy_classes' key
  std::optional<YAML::Mark> queue_target;    // tunnel.queue_target's value
  std::optional<YAML::Mark> queue_interval;  // tunnel.queue_interval's value
  std::optional<YAML::Mark> rules_mark;    // rules.mark's value, checked against the mask
  std::optional<YAML::Mark> rules_fail;    // rules.fail's value
  std::optional<YAML::Mark> nfqueue_fail;  // nfqueue.fail's value (the older spelling)
  // concentrator.binding_log's values, checked against each other.
  std::optional<YAML::Mark> binding_log_path;
  std::optional<YAML::Mark> binding_log_syslog;
  std::optional<YAML::Mark> binding_log_facility;
  std::optional<YAML::Mark> instance_port;  // concentrator.instance_port's value
};

struct Field {
  const char* name;
  void (*apply)(const Where&, Config&, Seen&);
};

std::string child_path(std::string_view parent, std::string_view key) {
  return parent.empty() ? std::string(key) : std::string(parent) + "." + std::string(key);
}

// Walks one mapping against its table. Iteration (not node["key"]) is what lets us see
// duplicate keys: yaml-cpp keeps every pair but lookups only ever find the first.
void walk(const YAML::Node& map, std::string_view path,
          std::span<const Field> fields, Config& cfg, Seen& seen) {
  if (map.IsNull()) return;  // `bindings:` with every line commented out keeps the defaults
  if (!map.IsMap()) {
    if (path.empty())
      reject(map.Mark(), std::string("the configuration must be a mapping of keys, found ") +
                             kind_name(map));
    reject(map.Mark(), std::string(path) + ": expected a mapping, found " + kind_name(map));
  }
  std::vector<std::string> names;
  for (auto it = map.begin(); it != map.end(); ++it) {
    // Copies: the iterator hands out a proxy temporary, and a Node is only a handle.
    const YAML::Node key = it->first;
    const YAML::Node value = it->second;
    std::string in = path.empty() ? std::string() : " in " + std::string(path);
    if (!key.IsScalar())
      reject(key.Mark(), "keys must be plain names, found " + std::string(kind_name(key)) + in);
    const std::string& name = key.Scalar();
    for (const auto& n : names)
      if (n == name) reject(key.Mark(), "duplicate key " + quoted(name) + in);
    names.push_back(name);
    const Field* field = nullptr;
    for (const auto& f : fields)
      if (name == f.name) field = &f;
    if (field == nullptr) {
      if (path.empty()) reject(key.Mark(), "unknown key " + quoted(name));
      reject(key.Mark(), "unknown key " + quoted(name) + in);
    }
    field->apply(Where{key.Mark(), value, child_path(path, name)}, cfg, seen);
  }
}

// A list of scalars; a single scalar stands for a one-element list.
template <typename F>
void each_item(const Where& w, F&& item) {
  if (w.value.IsSequence()) {
    std::size_t i = 0;
    for (auto it = w.value.begin(); it != w.value.end(); ++it, ++i) {
      const YAML::Node node = *it;
      item(Where{w.value.Mark(), node, w.path + "[" + std::to_string(i) + "]"});
    }
  } else if (w.value.IsMap()) {
    reject(w.value.Mark(), w.path + ": expected a list, found a mapping");
  } else {
    item(w);
  }
}

std::vector<std::string> cidr_list(const Where& w) {
  std::vector<std::string> out;
  each_item(w, [&out](const Where& item) {
    std::string text = scalar(item);
    if (!Cidr::parse(text))
      reject(item.value.Mark(), item.path + ": " + quoted(text) +
                                    " is not an address or address/prefix");
    out.push_back(std::move(text));
  });
  return out;
}

// The words a boolean key takes; nullopt for any other text.
std::optional<bool> boolean_word(std::string_view text) {
  if (text == "true" || text == "yes" || text == "on") return true;
  if (text == "false" || text == "no" || text == "off") return false;
  return std::nullopt;
}

bool boolean(const Where& w) {
  const std::string text = scalar(w);
  if (auto b = boolean_word(text)) return *b;
  reject(w.value.Mark(), w.path + ": " + quoted(text) + " is not true or false");
}

// Marks and table numbers may be written in hex (0x10), as nft and ip rule accept them.
std::uint32_t u32_number(const Where& w, std::uint32_t lo) {
  const std::string text = scalar(w);
  std::uint64_t v = 0;
  std::optional<std::uint64_t> parsed;
  if (text.size() > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X')) {
    const std::string hex = text.substr(2);
    if (hex.size() <= 8 && hex.find_first_not_of("0123456789abcdefABCDEF") == std::string::npos)
      parsed = std::stoull(hex, nullptr, 16);
  } else {
    parsed = parse_digits(text);
  }
  if (parsed) v = *parsed;
  if (!parsed || v < lo || v > 0xffffffffull)
    reject(w.value.Mark(), w.path + ": " + quoted(text) + " is not a number in " +
                               std::to_string(lo) + "..4294967295");
  return static_cast<std::uint32_t>(v);
}

// open (true) or closed: what LAN UDP does while mpudpd does not take it.
bool fail_open(const Where& w) {
  const std::string text = scalar(w);
  if (text != "open" && text != "closed")
    reject(w.value.Mark(), w.path + ": " + quoted(text) + " is not one of open, closed");
  return text == "open";
}

constexpr std::array<Field, 2> kNfqueueFields{{
    {"queue",
     [](const Where& w, Config& c, Seen&) {
       c.nfqueue.queue = static_cast<std::uint16_t>(uint_in(w, 0, 65535));
     }},
    {"fail",
     [](const Where& w, Config& c, Seen& s) {
       c.nfqueue.fail_open = fail_open(w);
       s.nfqueue_fail = w.value.Mark();
     }},
}};

// A number for ip rule / ip route that must not name the kernel's own: tables 253..255
// are default, main and local (a "local default" route there would swallow every
// packet), and rules from 32766 on come after the main table's, which would route the
// marked packets away before ours saw them.
std::uint32_t u32_outside(const Where& w, std::uint32_t hi, std::uint32_t bad_lo,
                          std::uint32_t bad_hi, const char* why) {
  const std::uint32_t v = u32_number(w, 1);
  if (v > hi)
    reject(w.value.Mark(), w.path + ": " + quoted(w.value.Scalar()) + " is not a number in 1.." +
                               std::to_string(hi) + " (" + why + ")");
  if (v >= bad_lo && v <= bad_hi)
    reject(w.value.Mark(), w.path + ": " + quoted(w.value.Scalar()) + " is reserved (" + why + ")");
  return v;
}

constexpr std::array<Field, 9> kRulesFields{{
    {"lan",
     [](const Where& w, Config& c, Seen&) {
       c.rules.lan.clear();
       each_item(w, [&c](const Where& item) {
         std::string name = scalar(item);
         // IFNAMSIZ is 16 with the NUL. The characters are the ones interface names use
         // in practice, and all that may go into an nft set or an iptables argument
         // unquoted.
         bool valid = !name.empty() && name.size() <= 15;
         for (char ch : name)
           if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '_' && ch != '.' &&
               ch != '@' && ch != '-')
             valid = false;
         if (!valid)
           reject(item.value.Mark(), item.path + ": " + quoted(name) +
                                         " is not an interface name (letters, digits, _ . @ -)");
         c.rules.lan.push_back(std::move(name));
       });
     }},
    {"mark",
     [](const Where& w, Config& c, Seen& s) {
       c.rules.mark = u32_number(w, 1);
       s.rules_mark = w.value.Mark();
     }},
    {"mask", [](const Where& w, Config& c, Seen&) { c.rules.mask = u32_number(w, 1); }},
    {"table",
     [](const Where& w, Config& c, Seen&) {
       c.rules.table = u32_outside(w, 0xffffffffu, 253, 255, "253..255 are default, main, local");
     }},
    {"pref",
     [](const Where& w, Config& c, Seen&) {
       c.rules.pref = u32_outside(w, 32765, 0, 0, "the rule must come before main's, 32766");
     }},
    {"fail",
     [](const Where& w, Config& c, Seen& s) {
       c.rules.fail_open = fail_open(w);
       s.rules_fail = w.value.Mark();
     }},
    {"exclude", [](const Where& w, Config& c, Seen&) { c.rules.exclude = cidr_list(w); }},
    {"ipv6", [](const Where& w, Config& c, Seen&) { c.rules.ipv6 = boolean(w); }},
    {"backend",
     [](const Where& w, Config& c, Seen&) {
       const std::string text = scalar(w);
       if (text != "nft" && text != "iptables" && text != "auto")
         reject(w.value.Mark(), w.path + ": " + quoted(text) + " is not one of nft, iptables, auto");
       c.rules.backend = text;
     }},
}};

int dscp_in(const Where& w);

// A port (5060) or an inclusive range of them (3478-3481).
PortRange port_range_in(const Where& w) {
  const std::string text = scalar(w);
  const std::string_view t = text;
  const auto dash = t.find('-');
  const auto lo = parse_digits(t.substr(0, dash));
  const auto hi = dash == std::string_view::npos ? lo : parse_digits(t.substr(dash + 1));
  if (!lo || !hi || *lo == 0 || *hi > 65535 || *lo > *hi)
    reject(w.value.Mark(), w.path + ": " + quoted(text) +
                               " is not a port or a range of ports (5060, 3478-3481; 1..65535)");
  return {static_cast<std::uint16_t>(*lo), static_cast<std::uint16_t>(*hi)};
}

constexpr std::array<Field, 3> kCopyClassFields{{
    {"dscp",
     [](const Where& w, Config& c, Seen&) {
       each_item(w, [&c](const Where& item) {
         c.cpe.copy_classes.dscp |= std::uint64_t{1} << dscp_in(item);
       });
     }},
    {"ports",
     [](const Where& w, Config& c, Seen&) {
       each_item(w, [&c](const Where& item) {
         c.cpe.copy_classes.ports.push_back(port_range_in(item));
       });
     }},
    {"hosts",
     [](const Where& w, Config& c, Seen&) {
       for (const std::string& text : cidr_list(w))
         c.cpe.copy_classes.hosts.push_back(*Cidr::parse(text));
     }},
}};

constexpr std::array<Field, 4> kCpeFields{{
    {"tproxy_port",
     [](const Where& w, Config& c, Seen&) {
       c.cpe.tproxy_port = static_cast<std::uint16_t>(uint_in(w, 1, 65535));
     }},
    {"concentrator",
     [](const Where& w, Config& c, Seen& s) {
       c.cpe.concentrator = endpoint(w, false);
       s.cpe_concentrator = true;
     }},
    {"max_bindings_per_host",
     [](const Where& w, Config& c, Seen&) {
       c.cpe.max_bindings_per_host = static_cast<std::size_t>(uint_in(w, 0, 10000000));
     }},
    {"copy_classes",
     [](const Where& w, Config& c, Seen& s) {
       s.copy_classes = w.key_mark;
       walk(w.value, w.path, kCopyClassFields, c, s);
     }},
}};

using EndpointSet = std::unordered_set<Endpoint, EndpointHash>;

// A set rather than a scan of the list so far: a megabyte of list items must not cost
// quadratic time before the daemon even starts.
void listen_item(const Where& w, std::vector<Endpoint>& out, EndpointSet& seen) {
  Endpoint e = endpoint(w, true);
  if (!seen.insert(e).second)
    reject(w.value.Mark(), w.path + ": " + quoted(w.value.Scalar()) + " is listed twice");
  out.push_back(e);
}

// The facilities an operator routes log streams by; the binding log's own, so that a
// syslog daemon can send it somewhere else than the daemon's log.
constexpr std::array<const char*, 10> kSyslogFacilities{
    {"daemon", "user", "local0", "local1", "local2", "local3", "local4", "local5", "local6",
     "local7"}};

constexpr std::array<Field, 3> kBindingLogFields{{
    {"path",
     [](const Where& w, Config& c, Seen& s) {
       std::string path = scalar(w);
       // Absolute: a reload must reopen the same file whatever the working directory.
       if (path.empty() || path.front() != '/' || path.back() == '/')
         reject(w.value.Mark(), w.path + ": " + quoted(path) + " is not an absolute file path");
       c.concentrator.binding_log.path = std::move(path);
       s.binding_log_path = w.value.Mark();
     }},
    {"syslog",
     [](const Where& w, Config& c, Seen& s) {
       c.concentrator.binding_log.syslog = boolean(w);
       s.binding_log_syslog = w.value.Mark();
     }},
    {"syslog_facility",
     [](const Where& w, Config& c, Seen& s) {
       std::string text = scalar(w);
       if (std::find_if(kSyslogFacilities.begin(), kSyslogFacilities.end(),
                        [&text](const char* n) { return text == n; }) == kSyslogFacilities.end())
         reject(w.value.Mark(), w.path + ": " + quoted(text) +
                                    " is not one of daemon, user, local0..local7");
       c.concentrator.binding_log.syslog_facility = std::move(text);
       s.binding_log_facility = w.value.Mark();
     }},
}};

constexpr std::array<Field, 14> kConcentratorFields{{
    {"listen",
     [](const Where& w, Config& c, Seen& s) {
       std::vector<Endpoint> listen;
       EndpointSet seen;
       if (w.value.IsSequence()) {
         std::size_t i = 0;
         for (auto it = w.value.begin(); it != w.value.end(); ++it, ++i) {
           const YAML::Node item = *it;
           // An empty item's own mark is wherever the parser went next; the list's start
           // is the nearest position that is still inside the list.
           listen_item(Where{w.value.Mark(), item, w.path + "[" + std::to_string(i) + "]"},
                       listen, seen);
         }
       } else if (w.value.IsMap()) {
         reject(w.value.Mark(), w.path + ": expected a list of address:port, found a mapping");
       } else {
         listen_item(w, listen, seen);  // a single string stands for a one-element list
       }
       c.concentrator.listen = std::move(listen);
       s.listen = w.value.Mark();
     }},
    {"reuse_port",
     [](const Where& w, Config& c, Seen&) { c.concentrator.reuse_port = boolean(w); }},
    {"instance_port",
     [](const Where& w, Config& c, Seen& s) {
       c.concentrator.instance_port = static_cast<std::uint16_t>(uint_in(w, 1, 65535));
       s.instance_port = w.value.Mark();
     }},
    {"direct_address",
     [](const Where& w, Config& c, Seen&) {
       std::string text = scalar(w);
       auto a = Endpoint::parse_address(text);
       if (!a)
         reject(w.value.Mark(), w.path + ": " + quoted(text) +
                                    " is not an IP address (no port: the first listen "
                                    "entry's is used)");
       if (!a->is_unicast())
         reject(w.value.Mark(), w.path + ": " + quoted(text) +
                                    " is not a unicast address a CPE could connect to");
       c.concentrator.direct_address = *a;
     }},
    {"allow_destinations",
     [](const Where& w, Config& c, Seen&) { c.concentrator.allow_destinations = cidr_list(w); }},
    {"deny_destinations",
     [](const Where& w, Config& c, Seen&) { c.concentrator.deny_destinations = cidr_list(w); }},
    {"max_sessions",
     [](const Where& w, Config& c, Seen&) {
       c.concentrator.max_sessions = static_cast<std::size_t>(uint_in(w, 1, 1000000));
     }},
    {"max_bindings_per_cpe",
     [](const Where& w, Config& c, Seen&) {
       c.concentrator.max_bindings_per_cpe = static_cast<std::size_t>(uint_in(w, 1, 10000000));
     }},
    {"max_handshaking",
     [](const Where& w, Config& c, Seen&) {
       c.concentrator.max_handshaking = static_cast<std::size_t>(uint_in(w, 1, 1000000));
     }},
    {"max_handshaking_per_prefix",
     [](const Where& w, Config& c, Seen&) {
       c.concentrator.max_handshaking_per_prefix = static_cast<std::size_t>(uint_in(w, 1, 1000000));
     }},
    {"handshake_timeout",
     [](const Where& w, Config& c, Seen&) {
       c.concentrator.handshake_timeout =
           duration_in(w, milliseconds(100), std::chrono::seconds(60));
     }},
    {"filtering",
     [](const Where& w, Config& c, Seen&) { c.concentrator.filtering = one_of(w, kFilterings); }},
    {"refresh_on_inbound",
     [](const Where& w, Config& c, Seen&) { c.concentrator.refresh_on_inbound = boolean(w); }},
    {"binding_log",
     [](const Where& w, Config& c, Seen& s) {
       walk(w.value, w.path, kBindingLogFields, c, s);
       const auto& bl = c.concentrator.binding_log;
       if (!bl.path.empty() && bl.syslog)
         reject(*s.binding_log_syslog, w.path + ".syslog: not with " + w.path +
                                           ".path: the log goes to a file or to syslog, "
                                           "choose one");
       if (s.binding_log_facility && !bl.syslog)
         reject(*s.binding_log_facility,
                w.path + ".syslog_facility: only with " + w.path + ".syslog: true");
     }},
}};

constexpr std::array<Field, 3> kBindingsFields{{
    {"idle_timeout",
     [](const Where& w, Config& c, Seen&) {
       c.bindings.idle_timeout = duration_in(w, milliseconds(100), std::chrono::hours(24));
     }},
    {"max",
     [](const Where& w, Config& c, Seen&) {
       c.bindings.max = static_cast<std::size_t>(uint_in(w, 1, 10000000));
     }},
    {"max_remotes",
     [](const Where& w, Config& c, Seen&) {
       c.bindings.max_remotes = static_cast<std::size_t>(uint_in(w, 1, 4096));
     }},
}};

constexpr std::array<Field, 7> kPathFields{{
    {"interface",
     [](const Where& w, Config& c, Seen&) {
       std::string name = scalar(w);
       // The kernel's rules for a link name (IFNAMSIZ, dev_valid_name).
       bool valid = !name.empty() && name.size() < 16 && name != "." && name != "..";
       for (char ch : name)
         if (ch == '/' || ch == ':' || static_cast<unsigned char>(ch) <= 0x20) valid = false;
       if (!valid)
         reject(w.value.Mark(), w.path + ": " + quoted(name) + " is not an interface name");
       c.paths.back().interface = std::move(name);
     }},
    {"subflow",
     [](const Where& w, Config& c, Seen& s) {
       c.paths.back().subflow = boolean(w);
       s.path_subflow_set.back() = true;
     }},
    {"signal", [](const Where& w, Config& c, Seen&) { c.paths.back().signal = boolean(w); }},
    {"backup", [](const Where& w, Config& c, Seen&) { c.paths.back().backup = boolean(w); }},
    {"fullmesh",
     [](const Where& w, Config& c, Seen&) { c.paths.back().fullmesh = boolean(w); }},
    {"laminar", [](const Where& w, Config& c, Seen&) { c.paths.back().laminar = boolean(w); }},
    {"copies", [](const Where& w, Config& c, Seen&) { c.paths.back().copies = boolean(w); }},
}};

void path_item(const Where& w, Config& c, Seen& s) {
  if (!w.value.IsMap())
    reject(w.value.IsNull() ? w.key_mark : w.value.Mark(),
           w.path + ": expected a mapping with an interface, found " + kind_name(w.value));
  c.paths.emplace_back();
  s.path_subflow_set.push_back(false);
  walk(w.value, w.path, kPathFields, c, s);
  const Config::Path& p = c.paths.back();
  if (p.interface.empty()) reject(w.value.Mark(), w.path + ": missing required key \"interface\"");
  // The kernel refuses the pair: an announced address is not also meshed.
  if (p.signal && p.fullmesh)
    reject(w.value.Mark(), w.path + ": signal and fullmesh cannot be combined");
  for (std::size_t i = 0; i + 1 < c.paths.size(); ++i)
    if (c.paths[i].interface == p.interface)
      reject(w.value.Mark(), w.path + ": interface " + quoted(p.interface) + " is listed twice");
}

constexpr std::array<Field, 2> kLimitsFields{{
    // The kernel keeps at most 8 of each (MPTCP_PM_ADDR_MAX).
    {"subflows",
     [](const Where& w, Config& c, Seen&) {
       c.limits.subflows = static_cast<std::uint32_t>(uint_in(w, 0, 8));
     }},
    {"add_addr_accepted",
     [](const Where& w, Config& c, Seen&) {
       c.limits.add_addr_accepted = static_cast<std::uint32_t>(uint_in(w, 0, 8));
     }},
}};

// DSCP names (RFC 2474, 2597, 3246, 5865, 8622) and their code points.
constexpr std::array<Named<int>, 23> kDscpNames{{
    {0, "cs0"},   {8, "cs1"},   {16, "cs2"},  {24, "cs3"},  {32, "cs4"},  {40, "cs5"},
    {48, "cs6"},  {56, "cs7"},  {10, "af11"}, {12, "af12"}, {14, "af13"}, {18, "af21"},
    {20, "af22"}, {22, "af23"}, {26, "af31"}, {28, "af32"}, {30, "af33"}, {34, "af41"},
    {36, "af42"}, {38, "af43"}, {46, "ef"},   {44, "va"},   {1, "le"},
}};

// A DSCP: a name of kDscpNames or a number 0..63.
int dscp_in(const Where& w) {
  std::string text = scalar(w);
  if (!text.empty() && text.front() >= '0' && text.front() <= '9')
    return static_cast<int>(uint_in(w, 0, 63));
  // RFCs and router UIs write the names in capitals (EF, AF41).
  std::string lower = text;
  for (char& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  for (const auto& n : kDscpNames)
    if (lower == n.name) return n.value;
  reject(w.value.Mark(), w.path + ": " + quoted(text) +
                             " is not a DSCP (0..63, or cs0..cs7, af11..af43, ef, va, le)");
}

// A rate as tc writes it: a number of bits per second, bare or with bit, kbit, mbit or gbit
// (decimal); returned in bytes per second.
std::uint64_t rate_in(const Where& w, std::uint64_t lo_bits, std::uint64_t hi_bits) {
  std::string text = scalar(w);
  std::string_view digits = text;
  std::uint64_t scale = 1;
  for (const auto& [sfx, mult] : {std::pair<std::string_view, std::uint64_t>{"kbit", 1000},
                                  {"mbit", 1000 * 1000},
                                  {"gbit", 1000 * 1000 * 1000},
                                  {"bit", 1}}) {
    if (digits.size() > sfx.size() && digits.ends_with(sfx)) {
      digits.remove_suffix(sfx.size());
      scale = mult;
      break;
    }
  }
  auto v = parse_digits(digits);
  if (!v)
    reject(w.value.Mark(),
           w.path + ": " + quoted(text) + " is not a rate (use 512kbit, 2mbit; bits per second)");
  const bool too_big = *v > hi_bits / scale;
  const std::uint64_t bits = too_big ? 0 : *v * scale;
  if (too_big || bits < lo_bits || bits > hi_bits)
    reject(w.value.Mark(), w.path + ": " + shown(text) + " is out of range (" +
                               std::to_string(lo_bits / 1000) + "kbit.." +
                               std::to_string(hi_bits / 1000000000) + "gbit)");
  return bits / 8;
}

// A TCP congestion control's name as the kernel knows it (TCP_CA_NAME_MAX is 16 with the
// terminating NUL). Whether this kernel has it is the daemon's check, at start and reload.
std::string congestion_control_in(const Where& w) {
  std::string text = scalar(w);
  const bool ok = !text.empty() && text.size() <= 15 &&
                  std::all_of(text.begin(), text.end(), [](char ch) {
                    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                           (ch >= '0' && ch <= '9') || ch == '_' || ch == '-';
                  });
  if (!ok)
    reject(w.value.Mark(), w.path + ": " + quoted(text) +
                               " is not a congestion control name (cubic, bbr, reno...: at most "
                               "15 letters, digits, _ or -)");
  return text;
}

constexpr std::array<Field, 17> kTunnelFields{{
    {"keepalive",
     [](const Where& w, Config& c, Seen&) {
       c.tunnel.keepalive = duration_in(w, std::chrono::seconds(1), std::chrono::hours(1));
     }},
    {"queue_bytes",
     [](const Where& w, Config& c, Seen&) {
       c.tunnel.queue_bytes = static_cast<std::size_t>(uint_in(w, 16384, 67108864));
     }},
    // CoDel's two times (tunnel/sojourn.h); the target must be the shorter (checked once
    // both are known, in validate).
    {"queue_target",
     [](const Where& w, Config& c, Seen& s) {
       c.tunnel.queue_target = duration_in(w, milliseconds(1), std::chrono::seconds(1));
       s.queue_target = w.value.Mark();
     }},
    {"queue_interval",
     [](const Where& w, Config& c, Seen& s) {
       c.tunnel.queue_interval = duration_in(w, milliseconds(10), std::chrono::seconds(10));
       s.queue_interval = w.value.Mark();
     }},
    {"target_delay",
     [](const Where& w, Config& c, Seen& s) {
       c.tunnel.target_delay = duration_in(w, milliseconds(0), std::chrono::seconds(1));
       s.target_delay = true;
     }},
    {"limit_path_queue",
     [](const Where& w, Config& c, Seen&) { c.tunnel.limit_path_queue = boolean(w); }},
    {"receive_buffer",
     [](const Where& w, Config& c, Seen&) {
       using T = Config::Tunnel;
       const std::uint64_t v = uint_in(w, 0, T::kMaxReceiveBuffer);
       if (v != 0 && v < T::kMinReceiveBuffer)
         reject(w.value.Mark(), w.path + ": " + std::to_string(v) +
                                    " is neither 0 (the kernel's autotuning) nor in " +
                                    std::to_string(T::kMinReceiveBuffer) + ".." +
                                    std::to_string(T::kMaxReceiveBuffer));
       c.tunnel.receive_buffer = static_cast<std::size_t>(v);
     }},
    {"express", [](const Where& w, Config& c, Seen&) { c.tunnel.express = boolean(w); }},
    {"express_rate",
     [](const Where& w, Config& c, Seen&) {
       c.tunnel.express_rate = static_cast<std::uint32_t>(rate_in(w, 64000, 1000000000));
     }},
    // 0..6 are the TC_PRIO_* classes; higher values need CAP_NET_ADMIN and mean a
    // class id to classful qdiscs, which is not what this key is for.
    {"express_priority",
     [](const Where& w, Config& c, Seen&) {
       c.tunnel.express_priority = static_cast<int>(uint_in(w, 0, 6));
     }},
    {"express_dscp",
     [](const Where& w, Config& c, Seen&) { c.tunnel.express_dscp = dscp_in(w); }},
    {"copies",
     [](const Where& w, Config& c, Seen& s) {
       c.tunnel.copies = boolean(w);
       s.copies = w.value.Mark();
     }},
    {"copy_rate",
     [](const Where& w, Config& c, Seen&) {
       c.tunnel.copy_rate = static_cast<std::uint32_t>(rate_in(w, 64000, 1000000000));
     }},
    // true and false as when it was a switch (one spare, none), or how many per uplink.
    {"copy_spares",
     [](const Where& w, Config& c, Seen&) {
       const std::string text = scalar(w);
       if (parse_digits(text)) {
         c.tunnel.copy_spares =
             static_cast<unsigned>(uint_in(w, 0, Config::Tunnel::kMaxCopySpares));
       } else if (auto b = boolean_word(text)) {
         c.tunnel.copy_spares = *b ? 1 : 0;
       } else {
         reject(w.value.Mark(), w.path + ": " + quoted(text) +
                                    " is not true, false or a number of spares (0..3)");
       }
     }},
    {"congestion_control",
     [](const Where& w, Config& c, Seen&) {
       c.tunnel.congestion_control = congestion_control_in(w);
     }},
    {"copy_congestion_control",
     [](const Where& w, Config& c, Seen&) {
       // "" is a choice too: the carriers run what the tunnel's connections run.
       c.tunnel.copy_congestion_control =
           scalar(w).empty() ? std::string() : congestion_control_in(w);
     }},
    {"path_recovery",
     [](const Where& w, Config& c, Seen&) { c.tunnel.path_recovery = one_of(w, kPathRecoveries); }},
}};

// auth's file keys all take an absolute path: a relative one would depend on the
// daemon's working directory.
template <std::string Config::Auth::*member>
void auth_path(const Where& w, Config& c, Seen& s) {
  std::string path = scalar(w);
  if (path.empty() || path.front() != '/')
    reject(w.value.Mark(), w.path + ": " + quoted(path) + " is not an absolute path");
  c.auth.*member = std::move(path);
  s.auth_keys[w.path.substr(w.path.find('.') + 1)] = w.value.Mark();
}

// Identities travel in the TLS handshake and appear in log lines, metrics and the peers
// file (space-separated): printable ASCII without spaces, '#' or quotes.
bool valid_identity(std::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  return std::all_of(id.begin(), id.end(), [](char ch) {
    return ch > 0x20 && ch < 0x7f && ch != '#' && ch != '"' && ch != '\\' && ch != '\'';
  });
}
constexpr const char* kIdentityRule =
    "1 to 128 printable characters without spaces, '#', quotes or backslashes";

constexpr std::array<Field, 8> kAuthFields{{
    {"psk_file", auth_path<&Config::Auth::psk_file>},
    {"peers_file", auth_path<&Config::Auth::peers_file>},
    {"cert_file", auth_path<&Config::Auth::cert_file>},
    {"key_file", auth_path<&Config::Auth::key_file>},
    {"ca_file", auth_path<&Config::Auth::ca_file>},
    {"crl_file", auth_path<&Config::Auth::crl_file>},
    {"identity",
     [](const Where& w, Config& c, Seen& s) {
       std::string id = scalar(w);
       if (!valid_identity(id))
         reject(w.value.Mark(), w.path + ": " + quoted(id) + " is not an identity (" +
                                    kIdentityRule + ")");
       c.auth.identity = std::move(id);
       s.auth_keys["identity"] = w.value.Mark();
     }},
    {"server_name",
     [](const Where& w, Config& c, Seen& s) {
       std::string name = scalar(w);
       if (!valid_identity(name))
         reject(w.value.Mark(), w.path + ": " + quoted(name) + " is not a certificate name");
       c.auth.server_name = std::move(name);
       s.auth_keys["server_name"] = w.value.Mark();
     }},
}};

constexpr std::array<Named<Config::Cipher>, 3> kCiphers{{
    {Config::Cipher::Auto, "auto"},
    {Config::Cipher::AesGcm, "aes-gcm"},
    {Config::Cipher::ChaCha20, "chacha20"},
}};

constexpr std::array<Field, 4> kEncryptionFields{{
    {"cipher", [](const Where& w, Config& c, Seen&) { c.tls.cipher = one_of(w, kCiphers); }},
    {"key_update_bytes",
     [](const Where& w, Config& c, Seen&) {
       // 0 (never), or from 1 MiB: a KeyUpdate per few records would only cost.
       std::uint64_t v = uint_in(w, 0, std::uint64_t{1} << 40);
       if (v != 0 && v < (1u << 20))
         reject(w.value.Mark(), w.path + ": " + std::to_string(v) +
                                    " is out of range (0, or 1048576..1099511627776)");
       c.tls.key_update_bytes = v;
     }},
    {"key_update_interval",
     [](const Where& w, Config& c, Seen&) {
       c.tls.key_update_interval = duration_in(w, milliseconds(0), std::chrono::hours(24));
     }},
    {"accept_cleartext",
     [](const Where& w, Config& c, Seen& s) {
       c.tls.accept_cleartext = boolean(w);
       s.accept_cleartext = w.value.Mark();
     }},
}};

constexpr std::array<Field, 17> kTopFields{{
    {"auth",
     [](const Where& w, Config& c, Seen& s) {
       s.auth = w.key_mark;
       s.auth_value = w.value.IsNull() ? w.key_mark : w.value.Mark();
       if (w.value.IsScalar()) {
         if (w.value.Scalar() != "none")
           reject(w.value.Mark(), w.path + ": " + quoted(w.value.Scalar()) +
                                      " is not none or a mapping of keys (identity and "
                                      "psk_file, peers_file, or cert_file, key_file, ca_file)");
         c.auth.none = true;
         return;
       }
       walk(w.value, w.path, kAuthFields, c, s);
     }},
    {"encryption",
     [](const Where& w, Config& c, Seen& s) {
       s.encryption = w.value.Mark();
       if (w.value.IsScalar()) {
         const std::string text = w.value.Scalar();
         if (text != "tls" && text != "none")
           reject(w.value.Mark(), w.path + ": " + quoted(text) +
                                      " is not one of tls, none (or a mapping of TLS settings)");
         c.encryption = text == "none" ? Config::Encryption::None : Config::Encryption::Tls;
         return;
       }
       walk(w.value, w.path, kEncryptionFields, c, s);
     }},
    {"role",
     [](const Where& w, Config& c, Seen& s) {
       c.role = one_of(w, kRoles);
       s.role = w.value.Mark();
     }},
    {"log_level", [](const Where& w, Config& c, Seen&) { c.log_level = one_of(w, kLogLevels); }},
    {"log_target",
     [](const Where& w, Config& c, Seen&) { c.log_target = one_of(w, kLogTargets); }},
    {"intercept",
     [](const Where& w, Config& c, Seen&) {
       const std::string text = scalar(w);
       if (text != "tproxy" && text != "nfqueue")
         reject(w.value.Mark(), w.path + ": " + quoted(text) + " is not one of tproxy, nfqueue");
       c.intercept = text == "nfqueue" ? InterceptMode::Nfqueue : InterceptMode::Tproxy;
     }},
    {"nfqueue",
     [](const Where& w, Config& c, Seen& s) { walk(w.value, w.path, kNfqueueFields, c, s); }},
    {"rules",
     [](const Where& w, Config& c, Seen& s) { walk(w.value, w.path, kRulesFields, c, s); }},
    {"metrics_listen",
     [](const Where& w, Config& c, Seen&) {
       const std::string text = scalar(w);
       if (!text.empty() && text.find_first_not_of("0123456789") == std::string::npos) {
         c.metrics_listen = Endpoint::v4(0x7f000001, static_cast<std::uint16_t>(uint_in(w, 1, 65535)));
       } else {
         c.metrics_listen = endpoint(w, true);
       }
     }},
    {"control_socket",
     [](const Where& w, Config& c, Seen&) {
       // An absolute path (sun_path holds 107 bytes), or "" for no control socket.
       std::string path = scalar(w);
       if (!path.empty() && (path.front() != '/' || path.size() > 107))
         reject(w.value.Mark(), w.path + ": " + quoted(path) +
                                    " is not an absolute path of at most 107 bytes");
       c.control_socket = std::move(path);
     }},
    {"session_mode",
     [](const Where& w, Config& c, Seen&) { c.session_mode = one_of(w, kSessionModes); }},
    {"cpe",
     [](const Where& w, Config& c, Seen& s) {
       s.cpe_key = w.key_mark;
       walk(w.value, w.path, kCpeFields, c, s);
     }},
    {"concentrator",
     [](const Where& w, Config& c, Seen& s) {
       s.concentrator_key = w.key_mark;
       walk(w.value, w.path, kConcentratorFields, c, s);
     }},
    {"bindings",
     [](const Where& w, Config& c, Seen& s) {
       walk(w.value, w.path, kBindingsFields, c, s);
     }},
    {"tunnel",
     [](const Where& w, Config& c, Seen& s) {
       walk(w.value, w.path, kTunnelFields, c, s);
     }},
    {"paths",
     [](const Where& w, Config& c, Seen& s) {
       if (w.value.IsNull()) return;
       if (!w.value.IsSequence())
         reject(w.value.Mark(), w.path + ": expected a list of paths, found " + kind_name(w.value));
       std::size_t i = 0;
       for (auto it = w.value.begin(); it != w.value.end(); ++it, ++i) {
         const YAML::Node item = *it;
         path_item(Where{w.value.Mark(), item, w.path + "[" + std::to_string(i) + "]"}, c, s);
       }
     }},
    {"limits",
     [](const Where& w, Config& c, Seen& s) {
       walk(w.value, w.path, kLimitsFields, c, s);
     }},
}};

// Sees document boundaries only; the node tree is built afterwards by YAML::Load.
class DocumentStarts final : public YAML::EventHandler {
 public:
  std::vector<YAML::Mark> marks;
  void OnDocumentStart(const YAML::Mark& mark) override { marks.push_back(mark); }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
};

// Syntax-checks the whole stream and refuses a second document. YAML::LoadAll cannot be
// used for this: on a stray top-level ',' (",", "[a],") yaml-cpp 0.7 starts an empty
// document at that token without consuming it, forever, and LoadAll collects them until
// memory runs out. Two documents starting at the same place is that loop.
void check_stream(const std::string& text) {
  std::istringstream in(text);
  YAML::Parser parser(in);
  DocumentStarts docs;
  while (parser.HandleNextDocument(docs)) {
    const auto& m = docs.marks;
    if (m.size() >= 2 && m[m.size() - 1].pos == m[m.size() - 2].pos) {
      auto pos = static_cast<std::size_t>(m.back().pos);
      char c = pos < text.size() ? text[pos] : '\0';
      std::string what = c > 0x20 && c < 0x7f ? std::string("'") + c + "'" : "character";
      reject(m.back(), "YAML syntax error: unexpected " + what);
    }
    if (m.size() > 2) break;  // enough to know there is more than one
  }
  if (docs.marks.size() > 1) {
    // yaml-cpp also starts a new document, without complaint, at some text it cannot fit
    // into the first one; only a "---" makes the second document one the user wrote.
    auto pos = static_cast<std::size_t>(docs.marks[1].pos);
    if (pos < text.size() && text.compare(pos, 3, "---") == 0)
      reject(docs.marks[1], "more than one YAML document (remove the second \"---\")");
    reject(docs.marks[1], "YAML syntax error: unexpected text after the end of the document");
  }
}

// The key file: a regular file that nobody but its owner can read or write (the key
// proves the CPE's identity; anyone who reads it can impersonate either side). Content:
// trailing "\n" or "\r\n" dropped; 64 or more hex digits (even count, nothing else) are
// decoded, anything else is used as raw bytes. At least 32 bytes of key either way.
constexpr std::size_t kMinKeyBytes = 32;
constexpr std::size_t kMaxKeyFile = 4096;

int hex_value(char ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
  return -1;
}

// Where an error about an auth file points: the key's value in the YAML when known (load),
// else no position (reload).
struct KeyWhere {
  std::string key;  // "auth.psk_file"
  std::optional<YAML::Mark> mark;
  [[noreturn]] void reject(const std::string& message) const {
    if (mark) mpudp::reject(*mark, message);
    throw Reject{YAML::Mark(), message, {}, 0, false};
  }
};

// A private file's content: regular, not accessible to group or others (it holds keys).
std::string read_private_file(const std::string& path, const KeyWhere& kw, std::size_t max) {
  const std::string where = kw.key + ": " + shown(path);
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) kw.reject(where + ": cannot read: " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    kw.reject(where + ": not a regular file");
  }
  if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
    ::close(fd);
    kw.reject(where + ": refusing a key file that group or others can access (chmod 600 " +
              shown(path) + ")");
  }
  std::string text;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    text.append(buf, static_cast<std::size_t>(n));
    if (text.size() > max) break;
  }
  ::close(fd);
  if (text.size() > max) kw.reject(where + ": larger than " + std::to_string(max) + " bytes");
  return text;
}

std::string read_key_file(const std::string& path, const KeyWhere& kw) {
  const std::string where = kw.key + ": " + shown(path);
  std::string text = read_private_file(path, kw, kMaxKeyFile);
  if (!text.empty() && text.back() == '\n') text.pop_back();
  if (!text.empty() && text.back() == '\r') text.pop_back();
  bool is_hex = text.size() >= 2 * kMinKeyBytes && text.size() % 2 == 0;
  for (char ch : text)
    if (hex_value(ch) < 0) is_hex = false;
  std::string key;
  if (is_hex) {
    for (std::size_t i = 0; i < text.size(); i += 2)
      key += static_cast<char>(hex_value(text[i]) * 16 + hex_value(text[i + 1]));
  } else {
    key = std::move(text);
  }
  if (key.size() < kMinKeyBytes)
    kw.reject(where + ": the key is " + std::to_string(key.size()) +
              " bytes; at least 32 are needed (e.g. openssl rand -hex 32)");
  return key;
}

// The rules' keys that depend on each other; the same in whole files and fragments.
void check_rules(Config& cfg, const Seen& seen) {
  if ((cfg.rules.mark & ~cfg.rules.mask) != 0)
    reject(seen.rules_mark.value_or(YAML::Mark()),
           "rules.mark: " + std::to_string(cfg.rules.mark) + " has bits outside rules.mask (" +
               std::to_string(cfg.rules.mask) + ")");
  if (seen.rules_fail && seen.nfqueue_fail && cfg.rules.fail_open != cfg.nfqueue.fail_open)
    reject(*seen.nfqueue_fail, "nfqueue.fail: disagrees with rules.fail (write only rules.fail)");
  if (seen.nfqueue_fail && !seen.rules_fail) cfg.rules.fail_open = cfg.nfqueue.fail_open;
  cfg.nfqueue.fail_open = cfg.rules.fail_open;
}

// The peers file: one CPE per line, "IDENTITY HEXKEY" (64 or more hex digits: a key
// from `openssl rand -hex 32`; hex only, so that a passphrase cannot slip in, since a
// TLS PSK binder lets anyone who records a ClientHello test guesses offline). Blank
// lines and lines starting with '#' are skipped. Errors name the file and line.
constexpr std::size_t kMaxPeersFile = 16 << 20;

std::map<std::string, std::string> read_peers_file(const std::string& path, const KeyWhere& kw) {
  const std::string text = read_private_file(path, kw, kMaxPeersFile);
  std::map<std::string, std::string> peers;
  std::map<std::string, int> first_line;
  std::size_t pos = 0;
  int line = 0;
  while (pos < text.size()) {
    ++line;
    std::size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string_view l(text.data() + pos, end - pos);
    pos = end + 1;
    if (!l.empty() && l.back() == '\r') l.remove_suffix(1);
    auto trim = [](std::string_view v) {
      while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
      while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
      return v;
    };
    l = trim(l);
    if (l.empty() || l.front() == '#') continue;
    std::size_t gap = l.find_first_of(" \t");
    if (gap == std::string_view::npos)
      reject_in(path, line, "expected \"IDENTITY KEY\", found one word");
    std::string_view id = l.substr(0, gap);
    std::string_view hex = trim(l.substr(gap));
    if (!valid_identity(id))
      reject_in(path, line, quoted(id) + " is not an identity (" + kIdentityRule + ")");
    if (hex.find_first_of(" \t") != std::string_view::npos)
      reject_in(path, line, "expected \"IDENTITY KEY\", found more words");
    bool is_hex = hex.size() >= 2 * kMinKeyBytes && hex.size() % 2 == 0 && hex.size() <= 1024;
    for (char ch : hex)
      if (hex_value(ch) < 0) is_hex = false;
    if (!is_hex)
      reject_in(path, line, "the key of " + quoted(id) + " is not 64 or more hex digits "
                            "(e.g. openssl rand -hex 32)");
    std::string key;
    for (std::size_t i = 0; i < hex.size(); i += 2)
      key += static_cast<char>(hex_value(hex[i]) * 16 + hex_value(hex[i + 1]));
    auto [it, fresh] = first_line.emplace(std::string(id), line);
    if (!fresh)
      reject_in(path, line, "duplicate identity " + quoted(id) + " (first on line " +
                                std::to_string(it->second) + ")");
    peers.emplace(std::string(id), std::move(key));
  }
  if (peers.empty()) reject_in(path, 0, "no peers listed (one \"IDENTITY KEY\" per line)");
  return peers;
}

// Certificate files are parsed by the TLS layer; here they must exist and be readable,
// and the private key private, so that --check and a reload catch it.
void check_readable(const std::string& path, const KeyWhere& kw) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) kw.reject(kw.key + ": " + shown(path) + ": cannot read: " + std::strerror(errno));
  ::close(fd);
}

// Reads what the auth keys name into cfg.auth; errors point at the key in the YAML when
// `seen` is given.
void read_auth(Config& cfg, const Seen* seen) {
  auto where = [&](const char* key) {
    KeyWhere kw{std::string("auth.") + key, std::nullopt};
    if (seen != nullptr) {
      auto it = seen->auth_keys.find(key);
      if (it != seen->auth_keys.end()) kw.mark = it->second;
    }
    return kw;
  };
  Config::Auth& a = cfg.auth;
  if (!a.psk_file.empty()) a.psk = read_key_file(a.psk_file, where("psk_file"));
  if (!a.peers_file.empty()) a.peers = read_peers_file(a.peers_file, where("peers_file"));
  if (!a.key_file.empty()) (void)read_private_file(a.key_file, where("key_file"), 1 << 20);
  if (!a.cert_file.empty()) check_readable(a.cert_file, where("cert_file"));
  if (!a.ca_file.empty()) check_readable(a.ca_file, where("ca_file"));
  if (!a.crl_file.empty()) check_readable(a.crl_file, where("crl_file"));
}

// The auth mode from the keys written, per role; every wrong combination says what to
// write instead.
void check_auth(Config& cfg, const Seen& seen) {
  Config::Auth& a = cfg.auth;
  const bool cpe = cfg.role == ProxyRole::Cpe;
  auto has = [&](const char* key) { return seen.auth_keys.count(key) != 0; };
  auto at = [&](const char* key) { return seen.auth_keys.at(key); };
  const bool tls = cfg.encryption == Config::Encryption::Tls;
  if (seen.accept_cleartext && cpe)
    reject(*seen.accept_cleartext,
           "encryption.accept_cleartext: only on the concentrator (a CPE chooses with "
           "encryption: tls or none)");
  if (a.none) {
    a.mode = Config::AuthMode::None;
    // No key, nothing to run TLS with: written-out `auth: none` is the cleartext choice.
    if (seen.encryption && tls)
      reject(*seen.encryption, "encryption: TLS needs keys, and auth is none (write "
                               "encryption: none, or give auth its keys)");
    cfg.encryption = Config::Encryption::None;
    return;
  }
  for (const char* key : {"cert_file", "key_file", "ca_file", "crl_file", "server_name"}) {
    if (!has(key)) continue;
    for (const char* other : {"psk_file", "identity", "peers_file"})
      if (has(other))
        reject(at(other), std::string("auth.") + other + ": not with auth." + key +
                              ": keys and certificates are two modes, choose one");
    for (const char* need : {"cert_file", "key_file", "ca_file"})
      if (!has(need))
        reject(*seen.auth_value, std::string("auth: missing required key \"") + need +
                                     "\" (certificate mode needs cert_file, key_file and ca_file)");
    if (!cpe && has("server_name"))
      reject(at("server_name"), "auth.server_name: only on the CPE (the name the "
                                "concentrator's certificate must carry)");
    a.mode = Config::AuthMode::Certificate;
    break;
  }
  if (a.mode != Config::AuthMode::Certificate) {
    if (cpe) {
      if (has("peers_file"))
        reject(at("peers_file"), "auth.peers_file: only on the concentrator (a CPE has "
                                 "identity and psk_file)");
      if (!has("psk_file"))
        reject(*seen.auth_value, "auth: missing required key \"psk_file\" (write auth: "
                                 "{identity: NAME, psk_file: /path}, or auth: none)");
      a.mode = has("identity") ? Config::AuthMode::Psk : Config::AuthMode::SharedKey;
    } else {
      if (has("identity"))
        reject(at("identity"), "auth.identity: only on the CPE (the concentrator lists its "
                               "CPEs' identities in peers_file)");
      if (has("peers_file") && has("psk_file"))
        reject(at("psk_file"), "auth.psk_file: not with auth.peers_file (every CPE's key "
                               "belongs in the peers file)");
      if (!has("peers_file") && !has("psk_file"))
        reject(*seen.auth_value, "auth: missing required key \"peers_file\" (write auth: "
                                 "{peers_file: /path}, or auth: none)");
      a.mode = has("peers_file") ? Config::AuthMode::Psk : Config::AuthMode::SharedKey;
    }
  }
  if (!tls && a.mode != Config::AuthMode::SharedKey)
    reject(*seen.encryption, std::string("encryption: none: auth ") + to_string(a.mode) +
                                 " needs TLS (remove encryption: none; cleartext takes "
                                 "auth: {psk_file} or auth: none)");
  if (!tls && seen.accept_cleartext)
    reject(*seen.accept_cleartext, "encryption.accept_cleartext: the concentrator runs "
                                   "encryption: none, every CPE is cleartext already");
}

Config validate(const std::string& text, bool read_keys, bool fragment = false) {
  check_stream(text);
  const YAML::Node root = YAML::Load(text);
  if (root.IsNull() && !fragment) reject(YAML::Mark(), "empty configuration");
  Config cfg;
  Seen seen;
  walk(root, "", kTopFields, cfg, seen);
  check_rules(cfg, seen);
  if (fragment) return cfg;

  if (!seen.role) reject(root.Mark(), "missing required key \"role\"");
  // The role may come after the paths in the file: the CPE's default flag is set here.
  if (cfg.role == ProxyRole::Cpe)
    for (std::size_t i = 0; i < cfg.paths.size(); ++i)
      if (!seen.path_subflow_set[i]) cfg.paths[i].subflow = true;
  if (cfg.tunnel.queue_target >= cfg.tunnel.queue_interval)
    reject(*(seen.queue_target ? seen.queue_target : seen.queue_interval),
           "tunnel.queue_target: " + format_duration(cfg.tunnel.queue_target) +
               " is not shorter than tunnel.queue_interval (" +
               format_duration(cfg.tunnel.queue_interval) +
               "): CoDel drops once the wait stayed above the target for an interval");
  if (cfg.tunnel.limit_path_queue && !seen.target_delay)
    cfg.tunnel.target_delay = Config::Tunnel::kPathQueueTargetDelay;
  // Carriers join a session with the express connection's token.
  if (cfg.tunnel.copies && (cfg.session_mode != SessionModeConfig::Multiplexed || !cfg.tunnel.express))
    reject(*seen.copies, "tunnel.copies: needs session_mode: multiplexed and tunnel.express: "
                         "true (copy carriers join the session as the express connection does)");
  if (seen.copy_classes && !cfg.cpe.copy_classes.empty() && !cfg.tunnel.copies)
    reject(*seen.copy_classes, "cpe.copy_classes: needs tunnel.copies: true (a class says which "
                               "flows are copied, copies says that there are copies)");
  if (cfg.role == ProxyRole::Cpe && !seen.cpe_concentrator)
    reject(seen.cpe_key.value_or(*seen.role),
           "missing required key \"cpe.concentrator\" (role is cpe)");
  if (cfg.role == ProxyRole::Concentrator) {
    if (!seen.listen)
      reject(seen.concentrator_key.value_or(*seen.role),
             "missing required key \"concentrator.listen\" (role is concentrator)");
    if (cfg.concentrator.listen.empty())
      reject(*seen.listen, "concentrator.listen: must not be empty (role is concentrator)");
    if (const std::uint16_t ip = cfg.concentrator.instance_port; ip != 0) {
      if (!cfg.concentrator.reuse_port)
        reject(*seen.instance_port,
               "concentrator.instance_port: only with concentrator.reuse_port: true (it tells "
               "one of several daemons sharing the listen addresses from the others)");
      for (const Endpoint& l : cfg.concentrator.listen)
        if (l.port == ip)
          reject(*seen.instance_port, "concentrator.instance_port: " + std::to_string(ip) +
                                          " is a concentrator.listen port; it must be this "
                                          "daemon's own");
    }
  }
  // Last, so that every other mistake is reported first. Explicit on both roles: an
  // omitted key must not quietly mean an unauthenticated tunnel.
  if (!seen.auth)
    reject(*seen.role, std::string("role ") + to_string(cfg.role) +
                           (cfg.role == ProxyRole::Cpe
                                ? " needs auth: {identity: NAME, psk_file: ...}"
                                : " needs auth: {peers_file: ...}") +
                           ", auth: {cert_file: ..., key_file: ..., ca_file: ...} or auth: none");
  check_auth(cfg, seen);
  if (read_keys) read_auth(cfg, &seen);
  return cfg;
}

}  // namespace

std::string ConfigError::str() const {
  std::string out = file;
  if (line > 0) {
    if (!out.empty()) out += ":";
    out += std::to_string(line) + ":" + std::to_string(column);
  }
  if (!out.empty()) out += ": ";
  return out + message;
}

namespace {

ConfigError from_reject(std::string_view name, const Reject& r) {
  if (!r.file.empty()) {
    ConfigError e = make_error(r.file, r.message);
    e.line = r.line;
    e.column = r.line > 0 ? 1 : 0;
    return e;
  }
  if (!r.positioned) return make_error(name, r.message);
  return make_error(name, r.mark, r.message);
}

ConfigResult load_text(std::string_view yaml, std::string_view name, bool read_keys,
                       bool fragment = false) {
  if (yaml.size() > kMaxConfigBytes)
    return make_error(name, "configuration is larger than " +
                                std::to_string(kMaxConfigBytes >> 20) + " MiB");
  try {
    return validate(std::string(yaml), read_keys, fragment);
  } catch (const Reject& r) {
    return from_reject(name, r);
  } catch (const YAML::DeepRecursion& e) {
    // yaml-cpp's own message for this is "bad file", which sends people looking at the
    // file system.
    return make_error(name, e.mark, "YAML nesting is too deep (" + std::to_string(e.depth()) +
                                        " levels)");
  } catch (const YAML::ParserException& e) {
    // e.msg, not what(): what() repeats the position in yaml-cpp's own format.
    return make_error(name, e.mark, "YAML syntax error: " + e.msg);
  } catch (const YAML::Exception& e) {
    return make_error(name, e.mark, "cannot parse: " + e.msg);
  } catch (const std::bad_alloc&) {
    return make_error(name, "out of memory while reading the configuration");
  } catch (const std::exception& e) {
    return make_error(name, std::string("cannot parse: ") + e.what());
  }
}

}  // namespace

ConfigResult load_config_string(std::string_view yaml, std::string_view name) {
  return load_text(yaml, name, false);
}

ConfigResult load_config_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) return make_error(path, std::string("cannot read: ") + std::strerror(errno));
  // fstat on the open descriptor, so the file checked is the file read.
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    return make_error(path, std::string("cannot read: ") + std::strerror(err));
  }
  // Anyone who can write the file could point the tunnel anywhere; mptcpd refuses the
  // same way.
  if ((st.st_mode & S_IWOTH) != 0) {
    ::close(fd);
    return make_error(path, "refusing to read a world-writable file (chmod o-w " + path + ")");
  }
  std::string text;
  char buf[16384];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      return make_error(path, std::string("cannot read: ") + std::strerror(err));
    }
    if (n == 0) break;
    text.append(buf, static_cast<std::size_t>(n));
    if (text.size() > kMaxConfigBytes) break;  // load_config_string reports it
  }
  ::close(fd);
  return load_text(text, path, true);
}

ConfigResult load_rules_fragment(std::string_view yaml, std::string_view name) {
  return load_text(yaml, name, false, true);
}

std::string print_rules(const Config& cfg) {
  std::string out;
  auto line = [&out](const char* key, const std::string& value) {
    out += key;
    out += '=';
    out += value;
    out += '\n';
  };
  line("MODE", cfg.intercept == InterceptMode::Nfqueue ? "nfqueue" : "tproxy");
  line("PORT", std::to_string(cfg.cpe.tproxy_port));
  line("MARK", std::to_string(cfg.rules.mark));
  line("MASK", std::to_string(cfg.rules.mask));
  line("TABLE", std::to_string(cfg.rules.table));
  line("PREF", std::to_string(cfg.rules.pref));
  line("BACKEND", cfg.rules.backend);
  line("IPV6", cfg.rules.ipv6 ? "on" : "off");
  line("QUEUE", std::to_string(cfg.nfqueue.queue));
  line("FAIL", cfg.rules.fail_open ? "open" : "closed");
  if (cfg.cpe.concentrator.valid()) {
    // The address alone: the rules exclude the concentrator whatever its port.
    std::string a = cfg.cpe.concentrator.str();
    a = a.substr(0, a.rfind(':'));
    if (a.size() >= 2 && a.front() == '[') a = a.substr(1, a.size() - 2);
    line("CONCENTRATOR", a);
  }
  for (const auto& l : cfg.rules.lan) line("LAN", l);
  for (const auto& e : cfg.rules.exclude) line("EXCLUDE", e);
  return out;
}

Endpoint direct_endpoint(const Config& cfg) {
  Endpoint e = cfg.concentrator.direct_address;
  if (!e.valid() || cfg.concentrator.listen.empty()) return {};
  e.port = cfg.concentrator.listen.front().port;
  return e;
}

bool listens_on(const std::vector<Endpoint>& listen, const Endpoint& at) {
  return std::any_of(listen.begin(), listen.end(), [&at](const Endpoint& l) {
    return l.family == at.family && l.port == at.port && (l == at || l.is_unspecified());
  });
}

std::vector<std::string> config_keys() {
  struct Section {
    std::string_view name;
    std::span<const Field> fields;
  };
  const Section sections[] = {
      {"auth", kAuthFields},       {"encryption", kEncryptionFields}, {"nfqueue", kNfqueueFields},   {"rules", kRulesFields},
      {"cpe", kCpeFields},         {"cpe.copy_classes", kCopyClassFields},
      {"concentrator", kConcentratorFields},
      {"concentrator.binding_log", kBindingLogFields},
      {"bindings", kBindingsFields}, {"tunnel", kTunnelFields},   {"paths[]", kPathFields},
      {"limits", kLimitsFields},
  };
  std::vector<std::string> keys;
  // A key whose name is a section's gets that section's keys after it, nested ones too.
  std::function<void(const std::string&)> add = [&](const std::string& key) {
    keys.push_back(key);
    for (const auto& sec : sections) {
      if (sec.name != key && sec.name != key + "[]") continue;
      for (const auto& f : sec.fields) add(std::string(sec.name) + "." + f.name);
    }
  };
  for (const auto& top : kTopFields) add(top.name);
  return keys;
}

const char* to_string(ProxyRole r) { return name_of(kRoles, r); }
const char* to_string(SessionModeConfig m) { return name_of(kSessionModes, m); }
const char* to_string(FilteringConfig f) { return name_of(kFilterings, f); }
const char* to_string(PathRecovery r) { return name_of(kPathRecoveries, r); }
const char* to_string(LogLevel l) { return name_of(kLogLevels, l); }
const char* to_string(LogTarget t) { return name_of(kLogTargets, t); }

const char* to_string(Config::AuthMode m) {
  switch (m) {
    case Config::AuthMode::None: return "none";
    case Config::AuthMode::SharedKey: return "shared key";
    case Config::AuthMode::Psk: return "per-CPE key";
    case Config::AuthMode::Certificate: return "certificate";
  }
  return "?";
}

std::optional<ConfigError> reload_auth_files(Config& cfg, std::string_view name) {
  Config copy = cfg;
  try {
    read_auth(copy, nullptr);
  } catch (const Reject& r) {
    return from_reject(name, r);
  } catch (const std::bad_alloc&) {
    return make_error(name, "out of memory while reading the key files");
  }
  cfg.auth = std::move(copy.auth);
  return std::nullopt;
}

}  // namespace mpudp

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
#include <cerrno>
#include <cstring>
#include <exception>
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
constexpr std::array<Named<LogLevel>, 4> kLogLevels{{
    {LogLevel::Error, "error"},
    {LogLevel::Warn, "warn"},
    {LogLevel::Info, "info"},
    {LogLevel::Debug, "debug"},
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
};

[[noreturn]] void reject(const YAML::Mark& mark, std::string message) {
  throw Reject{mark, std::move(message)};
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
  std::optional<YAML::Mark> auth;      // the `auth` key
  std::optional<YAML::Mark> psk_file;  // its psk_file value
  bool target_delay = false;           // tunnel.target_delay written in the file
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

bool boolean(const Where& w) {
  const std::string text = scalar(w);
  if (text == "true" || text == "yes" || text == "on") return true;
  if (text == "false" || text == "no" || text == "off") return false;
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

constexpr std::array<Field, 2> kNfqueueFields{{
    {"queue",
     [](const Where& w, Config& c, Seen&) {
       c.nfqueue.queue = static_cast<std::uint16_t>(uint_in(w, 0, 65535));
     }},
    {"fail",
     [](const Where& w, Config& c, Seen&) {
       const std::string text = scalar(w);
       if (text != "open" && text != "closed")
         reject(w.value.Mark(), w.path + ": " + quoted(text) + " is not one of open, closed");
       c.nfqueue.fail_open = text == "open";
     }},
}};

constexpr std::array<Field, 7> kRulesFields{{
    {"lan",
     [](const Where& w, Config& c, Seen&) {
       c.rules.lan.clear();
       each_item(w, [&c](const Where& item) {
         std::string name = scalar(item);
         // IFNAMSIZ is 16 with the NUL; names never hold '/' or spaces.
         if (name.empty() || name.size() > 15 || name.find_first_of("/ \t") != std::string::npos)
           reject(item.value.Mark(), item.path + ": " + quoted(name) + " is not an interface name");
         c.rules.lan.push_back(std::move(name));
       });
     }},
    {"mark", [](const Where& w, Config& c, Seen&) { c.rules.mark = u32_number(w, 1); }},
    {"table", [](const Where& w, Config& c, Seen&) { c.rules.table = u32_number(w, 1); }},
    {"pref", [](const Where& w, Config& c, Seen&) { c.rules.pref = u32_number(w, 1); }},
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

constexpr std::array<Field, 3> kCpeFields{{
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

constexpr std::array<Field, 5> kConcentratorFields{{
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

constexpr std::array<Field, 5> kPathFields{{
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
  for (const auto& n : kDscpNames)
    if (text == n.name) return n.value;
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

constexpr std::array<Field, 9> kTunnelFields{{
    {"keepalive",
     [](const Where& w, Config& c, Seen&) {
       c.tunnel.keepalive = duration_in(w, std::chrono::seconds(1), std::chrono::hours(1));
     }},
    {"queue_bytes",
     [](const Where& w, Config& c, Seen&) {
       c.tunnel.queue_bytes = static_cast<std::size_t>(uint_in(w, 16384, 67108864));
     }},
    {"target_delay",
     [](const Where& w, Config& c, Seen& s) {
       c.tunnel.target_delay = duration_in(w, milliseconds(0), std::chrono::seconds(1));
       s.target_delay = true;
     }},
    {"limit_path_queue",
     [](const Where& w, Config& c, Seen&) { c.tunnel.limit_path_queue = boolean(w); }},
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
    {"congestion_control",
     [](const Where& w, Config& c, Seen&) {
       c.tunnel.congestion_control = congestion_control_in(w);
     }},
}};

constexpr std::array<Field, 1> kAuthFields{{
    {"psk_file",
     [](const Where& w, Config& c, Seen& s) {
       std::string path = scalar(w);
       // Absolute: a relative path would depend on the daemon's working directory.
       if (path.empty() || path.front() != '/')
         reject(w.value.Mark(), w.path + ": " + quoted(path) + " is not an absolute path");
       c.auth.psk_file = std::move(path);
       s.psk_file = w.value.Mark();
     }},
}};

constexpr std::array<Field, 15> kTopFields{{
    {"auth",
     [](const Where& w, Config& c, Seen& s) {
       s.auth = w.key_mark;
       if (w.value.IsScalar()) {
         if (w.value.Scalar() != "none")
           reject(w.value.Mark(), w.path + ": " + quoted(w.value.Scalar()) +
                                      " is not none or a mapping with psk_file");
         c.auth.none = true;
         return;
       }
       walk(w.value, w.path, kAuthFields, c, s);
       if (c.auth.psk_file.empty())
         reject(w.value.IsNull() ? w.key_mark : w.value.Mark(),
                w.path + ": missing required key \"psk_file\" (or write auth: none)");
     }},
    {"role",
     [](const Where& w, Config& c, Seen& s) {
       c.role = one_of(w, kRoles);
       s.role = w.value.Mark();
     }},
    {"log_level", [](const Where& w, Config& c, Seen&) { c.log_level = one_of(w, kLogLevels); }},
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

std::string read_key_file(const std::string& path, const YAML::Mark& mark) {
  const std::string where = "auth.psk_file: " + shown(path);
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) reject(mark, where + ": cannot read: " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    reject(mark, where + ": not a regular file");
  }
  if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
    ::close(fd);
    reject(mark, where + ": refusing a key file that group or others can access (chmod 600 " +
                     shown(path) + ")");
  }
  std::string text;
  char buf[1024];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    text.append(buf, static_cast<std::size_t>(n));
    if (text.size() > kMaxKeyFile) break;
  }
  ::close(fd);
  if (text.size() > kMaxKeyFile)
    reject(mark, where + ": larger than " + std::to_string(kMaxKeyFile) + " bytes");
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
    reject(mark, where + ": the key is " + std::to_string(key.size()) +
                     " bytes; at least 32 are needed (e.g. openssl rand -hex 32)");
  return key;
}

Config validate(const std::string& text, bool read_keys) {
  check_stream(text);
  const YAML::Node root = YAML::Load(text);
  if (root.IsNull()) reject(YAML::Mark(), "empty configuration");
  Config cfg;
  Seen seen;
  walk(root, "", kTopFields, cfg, seen);

  if (!seen.role) reject(root.Mark(), "missing required key \"role\"");
  // The role may come after the paths in the file: the CPE's default flag is set here.
  if (cfg.role == ProxyRole::Cpe)
    for (std::size_t i = 0; i < cfg.paths.size(); ++i)
      if (!seen.path_subflow_set[i]) cfg.paths[i].subflow = true;
  if (cfg.tunnel.limit_path_queue && !seen.target_delay)
    cfg.tunnel.target_delay = Config::Tunnel::kPathQueueTargetDelay;
  if (cfg.role == ProxyRole::Cpe && !seen.cpe_concentrator)
    reject(seen.cpe_key.value_or(*seen.role),
           "missing required key \"cpe.concentrator\" (role is cpe)");
  if (cfg.role == ProxyRole::Concentrator) {
    if (!seen.listen)
      reject(seen.concentrator_key.value_or(*seen.role),
             "missing required key \"concentrator.listen\" (role is concentrator)");
    if (cfg.concentrator.listen.empty())
      reject(*seen.listen, "concentrator.listen: must not be empty (role is concentrator)");
  }
  // Last, so that every other mistake is reported first. Explicit on both roles: an
  // omitted key must not quietly mean an unauthenticated tunnel.
  if (!seen.auth)
    reject(*seen.role, std::string("role ") + to_string(cfg.role) +
                           " needs auth: {psk_file: ...} or auth: none");
  if (read_keys && !cfg.auth.psk_file.empty())
    cfg.auth.psk = read_key_file(cfg.auth.psk_file, *seen.psk_file);
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

ConfigResult load_text(std::string_view yaml, std::string_view name, bool read_keys) {
  if (yaml.size() > kMaxConfigBytes)
    return make_error(name, "configuration is larger than " +
                                std::to_string(kMaxConfigBytes >> 20) + " MiB");
  try {
    return validate(std::string(yaml), read_keys);
  } catch (const Reject& r) {
    return make_error(name, r.mark, r.message);
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

const char* to_string(ProxyRole r) { return name_of(kRoles, r); }
const char* to_string(SessionModeConfig m) { return name_of(kSessionModes, m); }
const char* to_string(LogLevel l) { return name_of(kLogLevels, l); }

}  // namespace mpudp

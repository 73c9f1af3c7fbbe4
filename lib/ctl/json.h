// Just enough JSON for the control socket: a writer for the daemon's reports and a
// reader for mpudpctl. Pure; no IO.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace mpudp::json {

// Appends JSON text; the caller puts commas where they belong via the Writer.
class Writer {
 public:
  Writer& begin_object();
  Writer& end_object();
  Writer& begin_array();
  Writer& end_array();
  Writer& key(std::string_view k);
  Writer& value(std::string_view s);
  Writer& value(const char* s) { return value(std::string_view(s)); }
  Writer& value(std::uint64_t n);
  Writer& value(std::int64_t n);
  Writer& value(int n) { return value(static_cast<std::int64_t>(n)); }
  Writer& value(unsigned n) { return value(static_cast<std::uint64_t>(n)); }
  Writer& value(double d);
  Writer& value(bool b);
  Writer& raw(std::string_view json);  // an already-encoded value
  const std::string& str() const { return out_; }

 private:
  void comma();
  std::string out_;
  bool need_comma_ = false;
};

struct Value;
using Object = std::map<std::string, Value, std::less<>>;
using Array = std::vector<Value>;

struct Value {
  std::variant<std::nullptr_t, bool, double, std::string, Array, Object> v = nullptr;

  bool is_object() const { return std::holds_alternative<Object>(v); }
  bool is_array() const { return std::holds_alternative<Array>(v); }
  // Member access that tolerates absence: a missing key gives a null Value.
  const Value& operator[](std::string_view k) const;
  const Array& array() const;
  double number(double dflt = 0) const;
  std::string string(std::string_view dflt = "") const;
  bool boolean(bool dflt = false) const;
};

// nullopt with `err` describing where parsing stopped.
std::optional<Value> parse(std::string_view text, std::string* err);

}  // namespace mpudp::json

#include "ctl/json.h"

// GCC 12 reports a std::variant member of a moved-from temporary as "maybe used
// uninitialized" at -O2 (a known false positive with recursive variants); nothing here
// reads uninitialized memory, and ASan/UBSan builds check that.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace mpudp::json {

void Writer::comma() {
  if (need_comma_) out_ += ',';
  need_comma_ = true;
}
Writer& Writer::begin_object() {
  comma();
  out_ += '{';
  need_comma_ = false;
  return *this;
}
Writer& Writer::end_object() {
  out_ += '}';
  need_comma_ = true;
  return *this;
}
Writer& Writer::begin_array() {
  comma();
  out_ += '[';
  need_comma_ = false;
  return *this;
}
Writer& Writer::end_array() {
  out_ += ']';
  need_comma_ = true;
  return *this;
}
Writer& Writer::key(std::string_view k) {
  value(k);
  out_ += ':';
  need_comma_ = false;
  return *this;
}
Writer& Writer::value(std::string_view s) {
  comma();
  out_ += '"';
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out_ += '\\';
      out_ += ch;
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out_ += buf;
    } else {
      out_ += ch;
    }
  }
  out_ += '"';
  return *this;
}
Writer& Writer::value(std::uint64_t n) {
  comma();
  out_ += std::to_string(n);
  return *this;
}
Writer& Writer::value(std::int64_t n) {
  comma();
  out_ += std::to_string(n);
  return *this;
}
Writer& Writer::value(double d) {
  comma();
  if (!std::isfinite(d)) {
    out_ += "null";
    return *this;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", d);
  out_ += buf;
  return *this;
}
Writer& Writer::value(bool b) {
  comma();
  out_ += b ? "true" : "false";
  return *this;
}
Writer& Writer::raw(std::string_view json) {
  comma();
  out_ += json;
  return *this;
}

namespace {
const Value kNull{};
const Array kEmptyArray{};

class Parser {
 public:
  explicit Parser(std::string_view t) : t_(t) {}
  std::optional<Value> run(std::string* err) {
    auto v = parse_value(0);
    skip_ws();
    if (v && p_ != t_.size()) fail("trailing characters");
    if (!err_.empty()) {
      if (err) *err = err_ + " at offset " + std::to_string(p_);
      return std::nullopt;
    }
    return v;
  }

 private:
  static constexpr int kMaxDepth = 64;
  void fail(const char* what) {
    if (err_.empty()) err_ = what;
  }
  void skip_ws() {
    while (p_ < t_.size() && (t_[p_] == ' ' || t_[p_] == '\n' || t_[p_] == '\t' || t_[p_] == '\r'))
      ++p_;
  }
  bool eat(char c) {
    skip_ws();
    if (p_ < t_.size() && t_[p_] == c) {
      ++p_;
      return true;
    }
    return false;
  }
  bool literal(std::string_view w) {
    if (t_.substr(p_, w.size()) != w) return false;
    p_ += w.size();
    return true;
  }
  std::optional<std::string> parse_string() {
    if (!eat('"')) {
      fail("expected a string");
      return std::nullopt;
    }
    std::string s;
    while (p_ < t_.size()) {
      char c = t_[p_++];
      if (c == '"') return s;
      if (c != '\\') {
        s += c;
        continue;
      }
      if (p_ >= t_.size()) break;
      char e = t_[p_++];
      switch (e) {
        case 'n': s += '\n'; break;
        case 't': s += '\t'; break;
        case 'r': s += '\r'; break;
        case 'b': s += '\b'; break;
        case 'f': s += '\f'; break;
        case 'u': {
          if (p_ + 4 > t_.size()) {
            fail("short \\u escape");
            return std::nullopt;
          }
          const unsigned long cp = std::strtoul(std::string(t_.substr(p_, 4)).c_str(), nullptr, 16);
          p_ += 4;
          // The daemon only escapes control characters; anything else is kept as '?'.
          s += cp < 0x80 ? static_cast<char>(cp) : '?';
          break;
        }
        default: s += e;
      }
    }
    fail("unterminated string");
    return std::nullopt;
  }
  std::optional<Value> parse_value(int depth) {
    if (depth > kMaxDepth) {
      fail("nested too deeply");
      return std::nullopt;
    }
    skip_ws();
    if (p_ >= t_.size()) {
      fail("unexpected end");
      return std::nullopt;
    }
    const char c = t_[p_];
    if (c == '{') {
      ++p_;
      Object o;
      if (eat('}')) return Value{std::move(o)};
      do {
        auto k = parse_string();
        if (!k || !eat(':')) {
          fail("expected key:value");
          return std::nullopt;
        }
        auto v = parse_value(depth + 1);
        if (!v) return std::nullopt;
        o.insert_or_assign(std::move(*k), std::move(*v));
      } while (eat(','));
      if (!eat('}')) {
        fail("expected '}'");
        return std::nullopt;
      }
      return Value{std::move(o)};
    }
    if (c == '[') {
      ++p_;
      Array a;
      if (eat(']')) return Value{std::move(a)};
      do {
        auto v = parse_value(depth + 1);
        if (!v) return std::nullopt;
        a.push_back(std::move(*v));
      } while (eat(','));
      if (!eat(']')) {
        fail("expected ']'");
        return std::nullopt;
      }
      return Value{std::move(a)};
    }
    if (c == '"') {
      auto s = parse_string();
      if (!s) return std::nullopt;
      return Value{std::move(*s)};
    }
    if (literal("true")) return Value{true};
    if (literal("false")) return Value{false};
    if (literal("null")) return Value{nullptr};
    const std::string rest(t_.substr(p_, 40));
    char* end = nullptr;
    const double d = std::strtod(rest.c_str(), &end);
    if (end == rest.c_str()) {
      fail("unexpected character");
      return std::nullopt;
    }
    p_ += static_cast<std::size_t>(end - rest.c_str());
    return Value{d};
  }

  std::string_view t_;
  std::size_t p_ = 0;
  std::string err_;
};
}  // namespace

const Value& Value::operator[](std::string_view k) const {
  if (const auto* o = std::get_if<Object>(&v)) {
    auto it = o->find(k);
    if (it != o->end()) return it->second;
  }
  return kNull;
}
const Array& Value::array() const {
  const auto* a = std::get_if<Array>(&v);
  return a ? *a : kEmptyArray;
}
double Value::number(double dflt) const {
  const auto* d = std::get_if<double>(&v);
  return d ? *d : dflt;
}
std::string Value::string(std::string_view dflt) const {
  const auto* s = std::get_if<std::string>(&v);
  return s ? *s : std::string(dflt);
}
bool Value::boolean(bool dflt) const {
  const auto* b = std::get_if<bool>(&v);
  return b ? *b : dflt;
}

std::optional<Value> parse(std::string_view text, std::string* err) {
  return Parser(text).run(err);
}

}  // namespace mpudp::json

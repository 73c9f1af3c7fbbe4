// libFuzzer entry for the configuration loader: whatever the bytes, load_config_string
// and load_rules_fragment (mpudp-rules' command line) must return (never crash, never
// throw) and an error must say something; what print_rules prints from an accepted
// file is one KEY=value per line, nothing that could start another line.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <variant>

#include "config/config.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  const mpudp::ConfigResult r = mpudp::load_config_string(text, "fuzz.yaml");
  if (const auto* e = std::get_if<mpudp::ConfigError>(&r)) {
    if (e->message.empty() || e->str().empty()) std::abort();
    // A string error has a position unless it is about the input as a whole.
    if (e->line < 0 || e->column < 0) std::abort();
  } else {
    const auto& c = std::get<mpudp::Config>(r);
    // Whatever was accepted must satisfy the documented invariants.
    if (c.role == mpudp::ProxyRole::Cpe &&
        (!c.cpe.concentrator.valid() || c.cpe.concentrator.port == 0))
      std::abort();
    if (c.role == mpudp::ProxyRole::Concentrator && c.concentrator.listen.empty()) std::abort();
    if (c.bindings.max == 0 || c.bindings.max_remotes == 0 || c.cpe.tproxy_port == 0) std::abort();
  }
  const mpudp::ConfigResult f = mpudp::load_rules_fragment(text, "fuzz.yaml");
  for (const mpudp::ConfigResult* res : {&r, &f}) {
    if (const auto* c = std::get_if<mpudp::Config>(res)) {
      if ((c->rules.mark & ~c->rules.mask) != 0) std::abort();
      if (c->rules.pref == 0 || c->rules.pref > 32765) std::abort();
      if (c->rules.table >= 253 && c->rules.table <= 255) std::abort();
      const std::string lines = mpudp::print_rules(*c);
      std::size_t start = 0;
      while (start < lines.size()) {
        const std::size_t nl = lines.find('\n', start);
        if (nl == std::string::npos) std::abort();  // every line ends
        const std::string_view line(lines.data() + start, nl - start);
        if (line.find('=') == std::string_view::npos) std::abort();
        for (char ch : line)
          if (static_cast<unsigned char>(ch) < 0x20 || ch == '\'' || ch == '"' || ch == ' ')
            std::abort();  // mpudp-rules reads these lines with `read`, unquoted
        start = nl + 1;
      }
    }
  }
  return 0;
}

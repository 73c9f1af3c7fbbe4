// libFuzzer entry for the configuration loader: whatever the bytes, load_config_string
// must return (never crash, never throw) and an error must say something.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <variant>

#include "config/config.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  mpudp::ConfigResult r = mpudp::load_config_string(text, "fuzz.yaml");
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
  return 0;
}

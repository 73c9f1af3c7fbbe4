// What the path manager is told to do: one entry per uplink, flags named as the kernel
// names them. Kept as a plain value in this room so the planner and its tests need
// nothing from the config loader.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "net/endpoint.h"

namespace mpudp::pm {

struct PathConfig {
  std::string interface;
  bool subflow = false;
  bool signal = false;
  bool backup = false;
  bool fullmesh = false;
  // Linux 6.18: a subflow from this endpoint to an address the peer announces, unless a
  // subflow already uses it (one endpoint per announced address).
  bool laminar = false;
  // Set (port 0): the endpoint is this address, on whichever interface holds it, and
  // `interface` is empty. The concentrator's direct_address becomes such a path.
  Endpoint address{};
  friend bool operator==(const PathConfig&, const PathConfig&) = default;
};

struct PmLimits {
  std::optional<std::uint32_t> subflows;
  std::optional<std::uint32_t> add_addr_accepted;
  friend bool operator==(const PmLimits&, const PmLimits&) = default;
};

enum class PmRole : std::uint8_t { Cpe, Concentrator };

struct PmSettings {
  PmRole role = PmRole::Cpe;
  std::vector<PathConfig> paths;
  PmLimits limits;
  friend bool operator==(const PmSettings&, const PmSettings&) = default;
};

// The kernel's MPTCP_PM_ADDR_FLAG_* values (linux/mptcp.h), repeated so that this pure
// header needs no kernel header.
inline constexpr std::uint32_t kFlagSignal = 1u << 0;
inline constexpr std::uint32_t kFlagSubflow = 1u << 1;
inline constexpr std::uint32_t kFlagBackup = 1u << 2;
inline constexpr std::uint32_t kFlagFullmesh = 1u << 3;
inline constexpr std::uint32_t kFlagLaminar = 1u << 5;  // Linux 6.18; ignored before
// The kernel keeps at most this many subflows / accepted ADD_ADDRs (MPTCP_PM_ADDR_MAX).
inline constexpr std::uint32_t kMaxLimit = 8;

std::uint32_t kernel_flags(const PathConfig& p);
// "subflow,backup"; "" without flags.
std::string flags_str(std::uint32_t flags);
// Empty when the path is acceptable; else why not (signal with fullmesh, no interface
// and no address).
std::string path_error(const PathConfig& p);

struct Limits {
  std::uint32_t subflows = 0;
  std::uint32_t add_addr_accepted = 0;
  friend bool operator==(const Limits&, const Limits&) = default;
};
// Explicit limits win. Otherwise the CPE gets room for two subflows per path (IPv4 and
// IPv6, and a returning uplink's new subflow before the old one is gone) and accepts
// one ADD_ADDR per path; the concentrator accepts the most joins the kernel allows,
// since how many the CPEs open is theirs to decide.
Limits effective_limits(const PmSettings& s);

}  // namespace mpudp::pm

// The operator's binding log (docs/CONFIG.md, "concentrator.binding_log"): one line when a
// binding is made and one when it ends, so that an operator can say which CPE used which
// public address:port when (abuse handling). Pure: the daemon fills a record, this turns
// it into the documented line; writing it is ctl/binding_log_writer.h's job.
//
// A line is space-separated key=value pairs in a fixed order. A value is written bare
// when it is printable ASCII without spaces, '"', '\' or '='; otherwise in double quotes
// with '"' and '\' escaped by a backslash and any other byte outside 0x20..0x7e as \xNN.
// An empty value is "" (a connection without identity has identity="").
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "binding/binding_table.h"
#include "net/endpoint.h"

namespace mpudp {

using WallTime = std::chrono::system_clock::time_point;

struct BindingLogRecord {
  std::string_view identity;  // the CPE's authenticated identity; empty without one
  std::string_view peer;      // the address its tunnel connection came from
  std::uint32_t session = 0;  // the session id the daemon's own log lines use
  Endpoint client;            // the client endpoint, as the CPE reported it
  Endpoint external;          // the concentrator's address:port the remotes see
  WallTime start{};
  WallTime end{};             // close lines only
  RemoveReason reason = RemoveReason::Expired;  // close lines only
  DirectionStats up;          // client -> remote (close lines only)
  DirectionStats down;        // remote -> client (close lines only)
};

// "2026-12-03T07:45:12.345Z": RFC 3339, UTC, milliseconds.
std::string rfc3339_ms(WallTime t);
// `value` as the line writes it (see the top of this file), appended to `out`.
void append_log_value(std::string& out, std::string_view value);

// time=START event=open identity= peer= session= client= external=
std::string format_binding_open(const BindingLogRecord& r);
// time=END event=close identity= peer= session= client= external= start= end=
// duration_ms= reason= up_datagrams= up_bytes= down_datagrams= down_bytes=
std::string format_binding_close(const BindingLogRecord& r);

}  // namespace mpudp

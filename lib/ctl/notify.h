// The systemd notification protocol (sd_notify), written by hand so the daemon needs no
// libsystemd: one datagram to $NOTIFY_SOCKET. A no-op when not run by systemd.
#pragma once

#include <string_view>

namespace mpudp {

// Sends `state` ("READY=1", "RELOADING=1", "STOPPING=1", "STATUS=..."); false only when
// $NOTIFY_SOCKET is set and the message could not be delivered.
bool sd_notify_state(std::string_view state);

}  // namespace mpudp

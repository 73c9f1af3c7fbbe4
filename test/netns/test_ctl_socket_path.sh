#!/usr/bin/env bash
# The control socket's path (issue 21): the daemon creates every missing directory above
# it (the socket's own 0700), and a socket that cannot be bound is logged while the
# daemon keeps serving (it would otherwise stop the LAN's UDP and, under procd or
# systemd, restart in a loop); a second daemon on a live socket still refuses to start.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
tb_require_root_and_tools
tb_require_built daemon/mpudpd daemon/mpudpctl
tb_setup
CTL=$MPUDP_BUILD/daemon/mpudpctl
fail=0

conc_config() {  # FILE SOCKET
  cat >"$1" <<YAML
role: concentrator
auth: none
control_socket: "$2"
concentrator:
  listen: ["0.0.0.0:$TB_CONC_PORT"]
YAML
}

# 1. Nested directories that do not exist yet.
sock=$TB_DIR/run/deeper/mpudp/mpudpd.sock
conc_config "$TB_DIR/nested.yaml" "$sock"
tb_start_daemon nested conc "$TB_DIR/nested.yaml" || exit 1
tb_wait_listen conc tcp "$TB_CONC_PORT" 1 10 || { tb_fail "nested: not listening"; fail=1; }
tb_poll 5 test -S "$sock" || { tb_fail "nested: no socket at $sock"; fail=1; }
[[ $(stat -c %a "$TB_DIR/run/deeper/mpudp") == 700 ]] || { tb_fail "socket directory not 0700"; fail=1; }
"$CTL" -s "$sock" status >/dev/null || { tb_fail "mpudpctl on the nested socket"; fail=1; }

# 2. A second daemon on the live socket: refused, exit 1 (another instance).
conc_config "$TB_DIR/second.yaml" "$sock"
sed -i "s/:$TB_CONC_PORT/:$((TB_CONC_PORT + 1))/" "$TB_DIR/second.yaml"
rc=0; out=$(tb_conc "$TB_DAEMON" -c "$TB_DIR/second.yaml" 2>&1) || rc=$?
[[ $rc == 1 && $out == *"another daemon answers on $sock"* ]] ||
  { tb_fail "second daemon on a live socket: rc $rc: $out"; fail=1; }
tb_stop_daemon nested || { tb_fail "nested daemon exit status"; fail=1; }

# 3. A path that can never be bound (no directory can be made under /proc): logged, and
# the daemon serves anyway and stops cleanly.
conc_config "$TB_DIR/bad.yaml" /proc/mpudp-no-such-dir/mpudpd.sock
tb_start_daemon bad conc "$TB_DIR/bad.yaml" || exit 1
tb_wait_listen conc tcp "$TB_CONC_PORT" 1 10 || { tb_fail "unbindable socket: daemon not serving"; fail=1; }
tb_wait_log bad 'control socket: .*running without it' 5 || fail=1
tb_running bad || { tb_fail "unbindable socket: daemon exited"; fail=1; }
tb_stop_daemon bad || { tb_fail "unbindable socket: exit status"; fail=1; }

((fail)) && exit 1
echo "PASS: test_ctl_socket_path"

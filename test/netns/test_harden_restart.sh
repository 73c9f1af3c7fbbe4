#!/usr/bin/env bash
# The concentrator is killed with SIGKILL in the middle of a flow and started again: the
# CPE notices, counts what it cannot carry meanwhile (tunnel_down), reconnects with
# backoff and re-opens the flow, which resumes.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
tb_require_root_and_tools
tb_require_built
CTL=$MPUDP_BUILD/daemon/mpudpctl
tb_setup || exit 1
tb_tproxy_rules || exit 1
tb_start_echo || exit 1
tb_start_proxies multiplexed || exit 1

fail=0
counter() {  # DAEMON SECTION NAME
  "$CTL" -s "$TB_DIR/$1.sock" status --json |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["stats"][sys.argv[1]][sys.argv[2]])' "$2" "$3"
}
# 100 pps for 9 s; the concentrator is gone for about 2 s of it.
tb_cli "$TB_PROBE" --json --sizes 300 --rate 100 --duration 9 --timeout 3000 --min-ok 0.5 \
  198.18.4.2:7 >"$TB_DIR/probe.json" 2>"$TB_DIR/probe.err" &
probe=$!
sleep 2
kill -KILL "${TB_PIDS[conc]}"
wait "${TB_PIDS[conc]}" 2>/dev/null
unset "TB_PIDS[conc]"
tb_wait_log cpe 'tunnel to .* lost' 5 || { echo "FAIL: the CPE did not notice the loss"; fail=1; }
sleep 1.5
tb_start_daemon conc conc "$TB_DIR/conc.yaml" || exit 1
tb_wait_listen conc tcp "$TB_CONC_PORT" 1 10 || exit 1
wait "$probe" || { echo "FAIL: probe (less than half came back)"; cat "$TB_DIR/probe.err"; fail=1; }

connects=$(counter cpe counters tunnel_connects)
down=$(counter cpe drops tunnel_down)
reopened=$(counter conc counters flows_opened)
echoed_after=$(counter conc counters wan_rx_datagrams)
echo "restart: cpe tunnel_connects $connects, tunnel_down drops $down; new concentrator opened $reopened flows, relayed $echoed_after replies"
# The main connection's own line: tunnel_connects also counts express connections.
ups=$(grep -c 'tunnel up to' "$TB_DIR/cpe.log")
((connects >= 2 && ups >= 2)) || { echo "FAIL: the CPE did not reconnect ($ups main connections)"; fail=1; }
((down > 0)) || { echo "FAIL: datagrams during the outage were not counted as tunnel_down"; fail=1; }
((reopened >= 1)) || { echo "FAIL: the flow was not re-opened on the new connection"; fail=1; }
((echoed_after >= 200)) || { echo "FAIL: the flow did not resume (only $echoed_after replies after the restart)"; fail=1; }
tb_stop_proxies || fail=1
((fail)) && exit 1
echo "PASS: test_harden_restart"

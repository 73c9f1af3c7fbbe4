#!/usr/bin/env bash
# A concentrator with a small open-file limit (512) under a flood of new flows: its
# bindings stop at the descriptor budget (the limit less a quarter, docs/HARDENING.md),
# each refused OPEN is counted (descriptor_limit) and answered with RESET, the refusal is
# logged once per 10 s rather than per flow, `mpudpctl status` still answers at the bound,
# a flow that was running before keeps working, and the daemon does not spin. Without the
# budget the concentrator ran out of descriptors: the control socket could no longer
# accept (mpudpctl failed) and the listeners woke on their pending connections in a loop.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
tb_require_root_and_tools
tb_require_built daemon/mpudpd daemon/mpudpctl tools/udpflood tools/udpprobe
CTL=$MPUDP_BUILD/daemon/mpudpctl
FLOOD=$MPUDP_BUILD/tools/udpflood
LIMIT=512
BUDGET=$((LIMIT - LIMIT / 4))
FLOWS=1500
tb_setup || exit 1
tb_tproxy_rules || exit 1
tb_start_echo || exit 1
tb_cli ip addr add 198.18.0.3/24 dev lan0 || exit 1
tb_write_configs multiplexed || exit 1
sed -i 's/^log_level: debug$/log_level: info/' "$TB_DIR/cpe.yaml" "$TB_DIR/conc.yaml"
# Soft and hard limit both: the daemon raises its soft limit to the hard one at start.
tb_bg conc conc prlimit --nofile="$LIMIT:$LIMIT" -- "$TB_DAEMON" -c "$TB_DIR/conc.yaml"
tb_wait_listen conc tcp "$TB_CONC_PORT" 1 10 || exit 1
tb_start_daemon cpe cpe "$TB_DIR/cpe.yaml" || exit 1
tb_wait_listen cpe udp 5555 1 10 || exit 1
conc_pid=${TB_PIDS[conc]}
nofile=$(awk '/^Max open files/ { print $4 }' "/proc/$conc_pid/limits")
[[ $nofile == "$LIMIT" ]] || { echo "FAIL: the concentrator runs with $nofile open files, not $LIMIT"; exit 1; }

fail=0
status() { "$CTL" -s "$TB_DIR/$1.sock" status --json; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$conc_pid/stat"; }

# Bound to its own address: the flood's source is .3.
tb_cli "$TB_PROBE" --bind 198.18.0.2 --sizes 200 --rate 40 --duration 8 --timeout 3000 --min-ok 0.9 \
  198.18.4.2:7 >"$TB_DIR/steady.log" 2>&1 &
steady=$!
sleep 1
tb_cli "$FLOOD" --src 198.18.0.3 --flows "$FLOWS" --size 32 --pps 1000 198.18.4.2:7 \
  >"$TB_DIR/flood.log" 2>&1 || { echo "FAIL: udpflood"; cat "$TB_DIR/flood.log"; fail=1; }
sleep 0.5
# At the bound: the control socket answers, and the daemon rests while nothing arrives.
status conc >"$TB_DIR/conc.json" || { echo "FAIL: mpudpctl status got no answer at the bound"; fail=1; }
t0=$(cpu_ticks)
sleep 2
t1=$(cpu_ticks)
wait "$steady" || { echo "FAIL: the running flow suffered at the bound"; cat "$TB_DIR/steady.log"; fail=1; }
open_fds=$(ls "/proc/$conc_pid/fd" | wc -l)
refusals=$(grep -c "new bindings refused" "$TB_DIR/conc.log")
grep -m1 "new bindings refused" "$TB_DIR/conc.log"

[[ -s $TB_DIR/conc.json ]] && python3 - "$TB_DIR/conc.json" "$BUDGET" "$FLOWS" "$((t1 - t0))" "$(getconf CLK_TCK)" \
  "$open_fds" "$LIMIT" "$refusals" <<'PY' || fail=1
import json, sys
st = json.load(open(sys.argv[1]))
budget, flows, ticks, hz, fds, limit, logged = (int(a) for a in sys.argv[2:])
c, d = st["stats"]["counters"], st["stats"]["drops"]
ok = True
def need(cond, what):
    global ok
    print(("ok   " if cond else "FAIL ") + what)
    ok = ok and cond
n = st["bindings"]["count"]
need(budget - 20 <= n < budget, f"bindings {n}: up to the descriptor budget {budget} (with sessions)")
need(d["descriptor_limit"] > flows - budget - 50,
     f"refused at the budget and counted: descriptor_limit {d['descriptor_limit']} of {flows} new flows")
need(fds < limit, f"{fds} descriptors open of {limit}: the reserve is left for control and CPEs")
need(1 <= logged <= 2, f"the refusal logged {logged} time(s), not once per flow")
need(ticks / hz < 0.3, f"{ticks / hz:.2f} s of CPU in 2 s at the bound (no busy loop)")
taken = c["tunnel_rx_datagrams"] + c["wan_rx_datagrams"]
passed = c["wan_tx_datagrams"] + c["tunnel_tx_datagrams"]
dropped = sum(d.values())
queued = sum(x.get("queued_datagrams", 0) for x in st.get("connections", []))
need(taken == passed + dropped + queued,
     f"concentrator: taken in {taken} = passed on {passed} + dropped {dropped} + queued {queued}")
sys.exit(0 if ok else 1)
PY
tb_stop_proxies || fail=1
((fail)) && exit 1
echo "PASS: test_harden_fd_limit"

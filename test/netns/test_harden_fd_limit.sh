#!/usr/bin/env bash
# A concentrator with a small open-file limit (512) under a flood of new flows: its
# bindings stop at the descriptor budget (the limit less a quarter, docs/HARDENING.md),
# each refused OPEN is counted (descriptor_limit) and answered with RESET, the refusal is
# logged once per 10 s rather than per flow, `mpudpctl status` still answers at the bound,
# a flow that was running before keeps working, and the daemon does not spin. Without the
# budget the concentrator ran out of descriptors: the control socket could no longer
# accept (mpudpctl failed) and the listeners woke on their pending connections in a loop.
# Then the same for a CPE in per-binding mode, which holds a connection per binding.
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

[[ -s $TB_DIR/conc.json ]] && BUDGET=$BUDGET FLOWS=$FLOWS TICKS=$((t1 - t0)) HZ=$(getconf CLK_TCK) \
  FDS=$open_fds LIMIT=$LIMIT LOGGED=$refusals tb_check "$TB_DIR/conc.json" <<'PY'
import os
budget, flows, ticks, hz, fds, limit, logged = (
    int(os.environ[k]) for k in ("BUDGET", "FLOWS", "TICKS", "HZ", "FDS", "LIMIT", "LOGGED"))
st = d["conc"]
dr = st["stats"]["drops"]
n = st["bindings"]["count"]
need(budget - 20 <= n < budget, f"bindings {n}: up to the descriptor budget {budget} (with sessions)")
need(dr["descriptor_limit"] > flows - budget - 50,
     f"refused at the budget and counted: descriptor_limit {dr['descriptor_limit']} of {flows} new flows")
need(fds < limit, f"{fds} descriptors open of {limit}: the reserve is left for control and CPEs")
need(1 <= logged <= 2, f"the refusal logged {logged} time(s), not once per flow")
need(ticks / hz < 0.3, f"{ticks / hz:.2f} s of CPU in 2 s at the bound (no busy loop)")
balance("concentrator", st)
PY
tb_stop_proxies || fail=1

# A CPE in per-binding mode holds a connection per binding: limited to 256 descriptors,
# its bindings stop at its budget (192, less the cached reply sockets) and it answers
# mpudpctl there.
CPE_LIMIT=256
CPE_BUDGET=$((CPE_LIMIT - CPE_LIMIT / 4))
tb_write_configs per-binding || exit 1
sed -i 's/^log_level: debug$/log_level: info/' "$TB_DIR/cpe.yaml" "$TB_DIR/conc.yaml"
tb_start_daemon conc conc "$TB_DIR/conc.yaml" || exit 1
tb_wait_listen conc tcp "$TB_CONC_PORT" 1 10 || exit 1
mv "$TB_DIR/cpe.log" "$TB_DIR/cpe.1.log"
tb_bg cpe cpe prlimit --nofile="$CPE_LIMIT:$CPE_LIMIT" -- "$TB_DAEMON" -c "$TB_DIR/cpe.yaml"
tb_wait_listen cpe udp 5555 1 10 || exit 1
tb_cli "$FLOOD" --src 198.18.0.3 --flows 400 --size 32 --pps 1000 198.18.4.2:7 \
  >"$TB_DIR/flood2.log" 2>&1 || { echo "FAIL: udpflood"; cat "$TB_DIR/flood2.log"; fail=1; }
sleep 0.5
status cpe >"$TB_DIR/cpe.json" || { echo "FAIL: the CPE's mpudpctl status got no answer at the bound"; fail=1; }
[[ -s $TB_DIR/cpe.json ]] && BUDGET=$CPE_BUDGET tb_check "$TB_DIR/cpe.json" <<'PY'
import os
budget = int(os.environ["BUDGET"])
n, dr = d["cpe"]["bindings"]["count"], d["cpe"]["stats"]["drops"]
# At most the budget (bindings + cached reply sockets): exactly it when the flood filled
# the table before any reply needed a reply socket (a slow, sanitized build).
need(budget - 10 <= n <= budget, f"CPE bindings {n}: up to its descriptor budget {budget}")
need(dr["descriptor_limit"] > 400 - budget - 20,
     f"the CPE refused the rest and counted them: descriptor_limit {dr['descriptor_limit']}")
PY
tb_stop_proxies || fail=1
((fail)) && exit 1
echo "PASS: test_harden_fd_limit"

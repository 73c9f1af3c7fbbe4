#!/usr/bin/env bash
# One LAN host cannot push the others out of the CPE's table: with
# cpe.max_bindings_per_host, host .2 churning through 5000 source ports evicts only its
# own oldest bindings on the CPE, while host .3's 100 bindings stay the same bindings and
# keep carrying datagrams.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
tb_require_root_and_tools
tb_require_built daemon/mpudpd daemon/mpudpctl tools/udpecho
CTL=$MPUDP_BUILD/daemon/mpudpctl
PORTS=$(dirname "$0")/udp_ports.py
CAP=1000
CHURN=5000
KEEP=100
tb_setup || exit 1
tb_tproxy_rules || exit 1
tb_start_echo || exit 1
tb_cli ip addr add 198.18.0.3/24 dev lan0 nodad || exit 1
tb_write_configs multiplexed || exit 1
# The cap, and a table with room for both hosts: only the cap evicts.
python3 - "$TB_DIR/cpe.yaml" "$CAP" <<'PY' || exit 1
import sys
p, cap = sys.argv[1], sys.argv[2]
s = open(p).read()
s = s.replace("cpe:\n", f"cpe:\n  max_bindings_per_host: {cap}\n", 1)
s = s.replace("bindings:\n", "bindings:\n  max: 3000\n", 1)
open(p, "w").write(s)
PY
tb_start_daemon conc conc "$TB_DIR/conc.yaml" || exit 1
tb_wait_listen conc tcp "$TB_CONC_PORT" 1 10 || exit 1
tb_start_daemon cpe cpe "$TB_DIR/cpe.yaml" || exit 1
tb_wait_listen cpe udp "$TB_TPROXY_PORT" 1 10 || exit 1
tb_wait_log cpe "tunnel up" 10 || exit 1
fail=0

got=$(tb_cli python3 "$PORTS" round 40000 "$KEEP" "$TB_SRV4" "$TB_ECHO_PORT" 198.18.0.3)
[[ $got == "$KEEP" ]] || { echo "FAIL: host .3's first round: $got of $KEEP echoes"; fail=1; }
tb_cli python3 "$PORTS" churn 20000 "$CHURN" "$TB_SRV4" "$TB_ECHO_PORT" 198.18.0.2 >/dev/null ||
  { echo "FAIL: churn"; fail=1; }
created() { tb_counter cpe bindings_created; }
_all_created() { (( $(created) >= KEEP + CHURN )); }
tb_poll 20 _all_created || { echo "FAIL: the CPE created $(created) bindings"; fail=1; }
got=$(tb_cli python3 "$PORTS" round 40000 "$KEEP" "$TB_SRV4" "$TB_ECHO_PORT" 198.18.0.3)
[[ $got == "$KEEP" ]] || { echo "FAIL: host .3's second round: $got of $KEEP echoes"; fail=1; }

"$CTL" -s "$TB_DIR/cpe.sock" status --json >"$TB_DIR/cpe.json"
"$CTL" -s "$TB_DIR/cpe.sock" bindings --json >"$TB_DIR/cpe_bindings.json"
"$CTL" -s "$TB_DIR/conc.sock" status --json >"$TB_DIR/conc.json"
tb_check "$TB_DIR/cpe.json" "$TB_DIR/cpe_bindings.json" "$TB_DIR/conc.json" <<PY
cap, churn, keep = $CAP, $CHURN, $KEEP
by_host = {}
for b in d["cpe_bindings"]["bindings"]:
    by_host.setdefault(b["tenant"], []).append(b)
two, three = by_host.get("198.18.0.2", []), by_host.get("198.18.0.3", [])
need(len(three) == keep, f"host .3 keeps its {keep} bindings ({len(three)})")
need(all(x["up_datagrams"] == 2 and x["down_datagrams"] == 2 for x in three),
     "each of them carried both rounds (never replaced)")
need(0 < len(two) <= cap, f"host .2 holds at most its cap of {cap} ({len(two)})")
c = d["cpe"]["stats"]["counters"]
need(c["bindings_evicted_quota"] >= churn - cap - 100,
     f"host .2's churn evicted its own bindings ({c['bindings_evicted_quota']})")
need(c["bindings_evicted"] == 0, f"none evicted for a full table ({c['bindings_evicted']})")
balance("cpe", d["cpe"])
balance("conc", d["conc"])
PY
tb_stop_proxies || fail=1
((fail)) && exit 1
echo "PASS: test_harden_host_quota"

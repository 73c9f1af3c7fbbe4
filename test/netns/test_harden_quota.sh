#!/usr/bin/env bash
# Tenants cannot hurt each other: CPE A's client churns through 20 000 source ports while
# CPE B holds 300 bindings. The concentrator keeps A within its quota
# (concentrator.max_bindings_per_cpe) by evicting A's own oldest bindings; B's bindings
# are never evicted, stay the same bindings (not re-created) and keep carrying datagrams.
# A tenant is a TLS identity: each CPE has its own key (home-a, home-b).
set -uo pipefail
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/tls_lib.sh"
tb_require_root_and_tools
tb_require_built daemon/mpudpd daemon/mpudpctl tools/udpecho
CTL=$MPUDP_BUILD/daemon/mpudpctl
PORTS=$(dirname "$0")/udp_ports.py
QUOTA=1000
CHURN=${CHURN:-20000}
B_PORTS=300
tb_setup || exit 1
tb_tproxy_rules || exit 1
tb_add_cpe2 || exit 1
tb_start_echo || exit 1
tls_peers "$TB_DIR/peers" home-a home-b || exit 1
TB_CONC_AUTH="{peers_file: \"$TB_DIR/peers\"}"
TB_CPE_AUTH=$(tls_psk_auth home-a)
TB_CPE2_AUTH=$(tls_psk_auth home-b)
export TB_CONC_AUTH TB_CPE_AUTH TB_CPE2_AUTH
tb_write_configs multiplexed || exit 1
# The quota, and a table with room for both tenants: only the quota evicts here.
python3 - "$TB_DIR/conc.yaml" "$QUOTA" <<'PY' || exit 1
import sys
p, q = sys.argv[1], sys.argv[2]
s = open(p).read()
s = s.replace("concentrator:\n", f"concentrator:\n  max_bindings_per_cpe: {q}\n", 1)
s = s.replace("bindings:\n", "bindings:\n  max: 1500\n", 1)
open(p, "w").write(s)
PY
tb_start_daemon conc conc "$TB_DIR/conc.yaml" || exit 1
tb_wait_listen conc tcp "$TB_CONC_PORT" 1 10 || exit 1
tb_start_daemon cpe cpe "$TB_DIR/cpe.yaml" || exit 1
tb_wait_listen cpe udp "$TB_TPROXY_PORT" 1 10 || exit 1
tb_start_cpe2 || exit 1
tb_wait_log cpe "tunnel up" 10 && tb_wait_log cpe2 "tunnel up" 10 || exit 1

status() { "$CTL" -s "$TB_DIR/$1.sock" "${2:-status}" --json >"$TB_DIR/$3.json"; }
fail=0

# B's bindings, echoed once.
got=$(tb_ns_exec cli2 python3 "$PORTS" round 40000 "$B_PORTS" "$TB_SRV4" "$TB_ECHO_PORT")
[[ $got == "$B_PORTS" ]] || { echo "FAIL: CPE B's first round: $got of $B_PORTS echoes"; fail=1; }

# A churns.
start=$(date +%s)
tb_cli python3 "$PORTS" churn 20000 "$CHURN" "$TB_SRV4" "$TB_ECHO_PORT" >/dev/null ||
  { echo "FAIL: churn"; fail=1; }
# Until the concentrator has seen (nearly) all of it: created bindings stop growing.
created() { tb_counter conc bindings_created; }
prev=-1
for _ in $(seq 40); do
  now=$(created); [[ $now == "$prev" ]] && break; prev=$now; sleep 0.5
done
echo "churn: $CHURN ports in $(( $(date +%s) - start )) s, concentrator created $prev bindings"

# B's bindings again: the same bindings, still carrying.
got=$(tb_ns_exec cli2 python3 "$PORTS" round 40000 "$B_PORTS" "$TB_SRV4" "$TB_ECHO_PORT")
[[ $got == "$B_PORTS" ]] || { echo "FAIL: CPE B's second round: $got of $B_PORTS echoes"; fail=1; }

status conc status conc; status conc bindings conc_bindings
status cpe status cpe; status cpe2 status cpe2
tb_check "$TB_DIR/conc.json" "$TB_DIR/conc_bindings.json" "$TB_DIR/cpe.json" "$TB_DIR/cpe2.json" <<PY
quota, b_ports, churn = $QUOTA, $B_PORTS, $CHURN
by_tenant = {}
for b in d["conc_bindings"]["bindings"]:
    by_tenant.setdefault(b["tenant"], []).append(b)
a, b = by_tenant.get("id:home-a", []), by_tenant.get("id:home-b", [])
need(len(b) == b_ports, f"CPE B holds its {b_ports} bindings at the concentrator ({len(b)})")
need(0 < len(a) <= quota, f"CPE A holds at most its quota of {quota} ({len(a)})")
need(sorted(x["client"] for x in b) == sorted(f"198.18.6.2:{p}" for p in range(40000, 40000 + b_ports)),
     "B's bindings are its own clients' endpoints")
need(all(x["up_datagrams"] == 2 and x["down_datagrams"] == 2 for x in b),
     "each of B's bindings carried both rounds (created once, never replaced)")
c = d["conc"]["stats"]["counters"]
need(c["bindings_evicted_quota"] >= churn // 2,
     f"A's churn evicted A's own bindings ({c['bindings_evicted_quota']})")
need(c["bindings_evicted"] == 0, f"no binding evicted for a full table ({c['bindings_evicted']})")
c2 = d["cpe2"]["stats"]["counters"]
need(c2["bindings_created"] == b_ports, f"CPE B created each binding once ({c2['bindings_created']})")
need(c2["bindings_closed_by_peer"] == 0 and c2["bindings_reset_by_peer"] == 0,
     "the concentrator never closed or reset one of B's bindings")
need(d["cpe"]["stats"]["counters"]["bindings_closed_by_peer"] >= churn // 2,
     "CPE A heard of its evicted bindings (CLOSE)")
for name in ("conc", "cpe", "cpe2"):
    balance(name, d[name])
PY
tb_stop_proxies || fail=1
((fail)) && exit 1
echo "PASS: test_harden_quota"

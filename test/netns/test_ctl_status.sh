#!/usr/bin/env bash
# mpudpctl status --json while a flow runs: the CPE's tunnel connection reports subflows
# on both uplinks, and the datagram counters match what the probe sent and got back.
# Also: bindings lists the flow's client, reload answers, and the socket is root-only.
set -u
source "$(dirname "$0")/lib.sh"
tb_require_root_and_tools
tb_require_built
command -v python3 >/dev/null || { echo "SKIP: python3 missing"; exit 4; }
CTL=$MPUDP_BUILD/daemon/mpudpctl
[[ -x $CTL ]] || { echo "FAIL: mpudpctl not built"; exit 1; }
tb_setup || exit 1
tb_tproxy_rules || exit 1
tb_start_echo || exit 1
TB_CPE_EXTRA='metrics_listen: 9464'
tb_start_proxies multiplexed || exit 1
tb_wait_subflows cpe 2 10 || exit 1

fail=0
check() { "$@" || { echo "FAIL: $*"; fail=1; }; }

# A flow the two shaped uplinks can carry only together, so both carry data.
tb_shape_uplinks 3mbit || exit 1
tb_cli "$TB_PROBE" --json --sizes 1000 --rate 600 --duration 3 --timeout 5000 --min-ok 0.95 \
  198.18.4.2:7 >"$TB_DIR/probe.json" 2>/dev/null || { echo "FAIL: probe"; fail=1; }
"$CTL" -s "$TB_DIR/cpe.sock" status --json >"$TB_DIR/status.json" || { echo "FAIL: status --json"; fail=1; }
"$CTL" -s "$TB_DIR/cpe.sock" bindings --json >"$TB_DIR/bindings.json" || fail=1

python3 - "$TB_DIR/probe.json" "$TB_DIR/status.json" "$TB_DIR/bindings.json" <<'PY' || fail=1
import json, sys
probe = json.load(open(sys.argv[1]))
st = json.load(open(sys.argv[2]))
bd = json.load(open(sys.argv[3]))
ok = True
def need(cond, what):
    global ok
    if not cond:
        print("FAIL:", what); ok = False
c = st["stats"]["counters"]
need(st["role"] == "cpe", "role is cpe")
need(c["lan_rx_datagrams"] == probe["sent"], f"lan_rx_datagrams {c['lan_rx_datagrams']} == sent {probe['sent']}")
drops = sum(st["stats"]["drops"].values())
# Every reply the CPE sent reached the probe: tx = echoed (+ late ones the probe gave up on).
need(c["lan_tx_datagrams"] >= probe["echoed"], f"lan_tx_datagrams {c['lan_tx_datagrams']} >= echoed {probe['echoed']}")
need(c["lan_rx_datagrams"] >= c["lan_tx_datagrams"] + 0, "no more replies than requests")
conns = [c for c in st["connections"] if not c["express_connection"]]
need(len(conns) == 1 and conns[0]["mptcp"], "one main MPTCP tunnel connection")
need(len(st["connections"]) - len(conns) <= 1, "at most one express connection beside it")
for x in st["connections"]:
    need(0 < x["buffer_bytes"] < 1 << 20, f"connection {x['id']}: buffer_bytes {x['buffer_bytes']}")
sfs = conns[0]["subflows"] if conns else []
ifs = sorted(s["interface"] for s in sfs)
need(ifs == ["up0", "up1"], f"subflows on up0 and up1, got {ifs}")
for s in sfs:
    need(s["tx_bytes"] > 100000, f"subflow on {s['interface']} carried data ({s['tx_bytes']} bytes sent)")
    need(s["min_rtt_us"] > 0 and s["rtt_us"] > 0 and s["path_queued_bytes"] >= 0,
         f"subflow on {s['interface']}: rtt {s['rtt_us']} us, min {s['min_rtt_us']} us")
need(len(bd["bindings"]) == 1, f"one binding listed, got {len(bd['bindings'])}")
if bd["bindings"]:
    b = bd["bindings"][0]
    need(b["client"].startswith("198.18.0.2:") and b["remotes"] == ["198.18.4.2:7"], f"binding {b}")
    need(b["up_datagrams"] == probe["sent"], "binding counted every datagram upstream")
print("status:", "drops", drops, "subflows", [(s["interface"], s["tx_bytes"]) for s in sfs])
sys.exit(0 if ok else 1)
PY

# Prometheus exposition on loopback: the same counters, drops labelled by reason.
tb_cpe python3 -c 'import urllib.request; print(urllib.request.urlopen("http://127.0.0.1:9464/metrics", timeout=5).read().decode())' >"$TB_DIR/metrics.txt" ||
  { echo "FAIL: GET /metrics"; fail=1; }
sent=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["sent"])' "$TB_DIR/probe.json")
check grep -qx "mpudp_lan_rx_datagrams_total $sent" "$TB_DIR/metrics.txt"
check grep -q '^# TYPE mpudp_lan_rx_datagrams_total counter' "$TB_DIR/metrics.txt"
check grep -q '^mpudp_dropped_datagrams_total{reason="tunnel_queue_full"} ' "$TB_DIR/metrics.txt"
check grep -qx 'mpudp_bindings 1' "$TB_DIR/metrics.txt"

# The live view: two refreshes, per-path bars for both uplinks.
top_out=$("$CTL" -s "$TB_DIR/cpe.sock" top --count 2) || { echo "FAIL: mpudpctl top"; fail=1; }
check grep -q "throughput per path" <<<"$top_out"
check grep -q "up0 " <<<"$top_out"
check grep -q "up1 " <<<"$top_out"
check grep -q "busiest bindings" <<<"$top_out"

mode=$(stat -c %a "$TB_DIR/cpe.sock")
check test "$mode" = 600
out=$("$CTL" -s "$TB_DIR/cpe.sock" reload) || { echo "FAIL: reload"; fail=1; }
check grep -q "reloaded" <<<"$out"
out=$("$CTL" -s "$TB_DIR/nonexistent.sock" status 2>&1); rc=$?
check test "$rc" = 1
check grep -q "cannot reach mpudpd" <<<"$out"
tb_unshape_uplinks
tb_stop_proxies || fail=1
((fail)) && exit 1
echo "PASS: test_ctl_status"

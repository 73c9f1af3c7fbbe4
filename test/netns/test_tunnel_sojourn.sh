#!/usr/bin/env bash
# Tunnel queues bounded by waiting time, not bytes alone (issue 20, item 5), with the
# default configuration:
# - A page load's reply burst: new flows 256 at a time, each answered at once with 1200 B
#   (300 KB in flight toward the CPE). Every flow gets its reply; nothing is dropped as
#   tunnel_queue_full on either end (with the old 256 KiB bound, 7-35 replies of such a
#   burst were).
# - A sustained overload the paths cannot carry (24 Mbit/s offered to 2 x 4 Mbit/s,
#   unresponsive): the excess is dropped because it waited too long (tunnel_queue_sojourn),
#   not at the memory bound (no tunnel_queue_full); the queue holds at most the last
#   400 ms of arrivals (the ceiling, four intervals) and the round trips stay bounded;
#   every datagram is accounted for.
set -u
source "$(dirname "$0")/lib.sh"
tb_require_root_and_tools
tb_require_built daemon/mpudpd daemon/mpudpctl tools/udpecho tools/udpload
LOAD=$MPUDP_BUILD/tools/udpload
tb_setup || exit 1
tb_tproxy_rules || exit 1
tb_start_echo || exit 1
tb_start_proxies multiplexed || exit 1
tb_wait_subflows cpe 2 10 || exit 1

fail=0
status() { "$MPUDP_BUILD/daemon/mpudpctl" -s "$TB_DIR/$1.sock" status --json >"$TB_DIR/$2.json" || fail=1; }

echo "== reply bursts: 2048 new flows, 256 at a time, 1200 B each way"
tb_cli "$LOAD" --json --new-flows 2048 --concurrency 256 --size 1200 --timeout 3000 \
  198.18.4.2:7 >"$TB_DIR/churn.json" 2>"$TB_DIR/churn.err" || fail=1
cat "$TB_DIR/churn.err"
sleep 0.5
status cpe cpe-churn
status conc conc-churn
tb_check "$TB_DIR/churn.json" "$TB_DIR/cpe-churn.json" "$TB_DIR/conc-churn.json" <<'PY'
r = d["churn"]
need(r["ok"] + r["failed"] == 2048, f"{r['ok'] + r['failed']} of 2048 flows ran")
need(r["failed"] == 0, f"every flow got its reply: {r['failed']} failed "
     f"(first reply p99 {r['first_reply_us']['p99'] / 1e3:.1f} ms)")
for name in ("cpe-churn", "conc-churn"):
    dr = d[name]["stats"]["drops"]
    need(dr["tunnel_queue_full"] == 0, f"{name}: nothing dropped at the memory bound "
         f"(tunnel_queue_full {dr['tunnel_queue_full']}); all drops "
         f"{ {k: v for k, v in dr.items() if v} }")
PY

echo "== sustained overload on shaped paths: dropped by waiting time, queue bounded"
tb_shape_uplinks 4mbit || exit 1
tb_cli "$LOAD" --json --size 1200 --mbit 24 --duration 5 --timeout 2000 --late-ms 1500 \
  198.18.4.2:7 >"$TB_DIR/bulk.json" 2>"$TB_DIR/bulk.err" &
bulk=$!
n=0
while kill -0 "$bulk" 2>/dev/null; do  # the CPE's queues while the overload lasts
  sleep 0.2
  "$MPUDP_BUILD/daemon/mpudpctl" -s "$TB_DIR/cpe.sock" status --json >"$TB_DIR/busy$n.json" &&
    n=$((n + 1))
  # What MPTCP did meanwhile, shown if the round trips fail (a stalled byte stream).
  for ns in cpe conc; do
    { echo "== $ns at $n"; tb_ns_exec "$ns" ss -Mtin; } >>"$TB_DIR/ss-$ns.txt" 2>&1
  done
done
wait "$bulk" || fail=1
cat "$TB_DIR/bulk.err"
sleep 2.5  # let the tunnel drain before the counters are read
status cpe cpe
tb_check "$TB_DIR/bulk.json" "$TB_DIR/cpe.json" "$TB_DIR"/busy*.json <<'PY'
bulk, cpe = d["bulk"], d["cpe"]
dr = cpe["stats"]["drops"]
need(bulk["lost"] > 0, f"the overload lost {bulk['lost']} of {bulk['sent']} (three times the paths)")
need(dr["tunnel_queue_sojourn"] > 0,
     f"the excess waited too long and was dropped for it: tunnel_queue_sojourn {dr['tunnel_queue_sojourn']}")
need(dr["tunnel_queue_full"] == 0,
     f"not at the memory bound: tunnel_queue_full {dr['tunnel_queue_full']}")
# What waits is what came in the last 400 ms at most (the ceiling: 1.2 MB at 24 Mbit/s),
# not the memory bound (2 MiB); with slack for arrivals in batches.
peak = max(sum(c["queued_bytes"] for c in v["connections"])
           for k, v in d.items() if k.startswith("busy"))
need(len([k for k in d if k.startswith("busy")]) >= 2, "the CPE answered while overloaded")
need(0 < peak <= 1500000, f"the CPE's queues peaked at {peak} B while the overload lasted")
# Each way: at most 400 ms in our queue, 100 ms in a shaped link's, and what the TCP
# subflows below add (their losses at the shaped links hold the byte stream up). A queue
# bounded by bytes alone would stand at 2 MiB, 2.1 s at 8 Mbit/s, in the CPE alone.
need(bulk["rtt_us"]["p50"] < 1.8e6,
     f"round trips stayed bounded: p50 {bulk['rtt_us']['p50'] / 1e3:.0f} ms "
     f"(p99 {bulk['rtt_us']['p99'] / 1e3:.0f} ms)")
balance("CPE", cpe)
PY
if ((fail)); then
  for ns in cpe conc; do
    echo "== $ns: MPTCP counters"
    tb_ns_exec "$ns" env NSTAT_HISTORY=/dev/null nstat -asz | grep -E '^MPTcpExt' | awk '$2 > 0'
    echo "== $ns: sockets during the overload (every 0.2 s)"
    cat "$TB_DIR/ss-$ns.txt"
  done
fi
tb_unshape_uplinks
tb_stop_proxies || fail=1
((fail)) && exit 1
echo "PASS: test_tunnel_sojourn"

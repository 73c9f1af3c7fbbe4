#!/usr/bin/env bash
# The express connection of a multiplexed session (issue 7, docs/PROTOCOL.md "Express
# connection"): light flows ride a second MPTCP connection so that they never wait
# behind, or for the retransmissions of, bulk data in the main connection's byte stream.
# - Both ends show two connections with subflows on both paths; the concentrator
#   joined one express connection to the session.
# - Beside a bulk flow that offers three times what the paths carry, the light flow's
#   datagrams go over the express connection and the bulk flow's (past its first
#   burst) over the main one.
# - Losing the express connection loses no binding: light flows go over the main
#   connection meanwhile, and the CPE dials a new express connection.
# - With `tunnel.express: false` on the concentrator the CPE stays on one connection.
# - tunnel.express_rate decides what is light: a video call is at 4mbit, not at the
#   default 512kbit (applied by a reload).
# - Marks (tunnel.express_priority, default 6, and tunnel.express_dscp): the express
#   connection's packets leave both ends with them, on every subflow (joins included);
#   the main connection's packets carry neither.
set -u
source "$(dirname "$0")/lib.sh"
tb_require_root_and_tools
tb_require_built daemon/mpudpd daemon/mpudpctl tools/udpecho tools/udpload
LOAD=$MPUDP_BUILD/tools/udpload
CTL=$MPUDP_BUILD/daemon/mpudpctl
tb_setup || exit 1
tb_tproxy_rules || exit 1
tb_start_echo || exit 1
# What leaves each end towards the other, by mark (IPv4 tunnel: `ip dscp`).
tb_cpe nft -f - <<'NFT' || exit 1
table inet tbmark {
  counter ef_up0 {}
  counter ef_up1 {}
  counter prio6 {}
  counter main_all {}
  counter main_marked {}
  chain post {
    type filter hook postrouting priority 0; policy accept;
    oifname "up0" tcp dport 7000 ip dscp ef counter name ef_up0
    oifname "up1" tcp dport 7000 ip dscp ef counter name ef_up1
    tcp dport 7000 meta priority 0:6 counter name prio6
  }
}
NFT
tb_conc nft -f - <<'NFT' || exit 1
table inet tbmark {
  counter ef {}
  counter prio6 {}
  counter main_all {}
  counter main_marked {}
  chain post {
    type filter hook postrouting priority 0; policy accept;
    tcp sport 7000 ip dscp ef counter name ef
    tcp sport 7000 meta priority 0:6 counter name prio6
  }
}
NFT
# nft_counters NS FILE: the tbmark counters' packet counts as one JSON object.
nft_counters() {
  tb_ns_exec "$1" nft -j list counters table inet tbmark | python3 -c 'import json, sys
print(json.dumps({o["counter"]["name"]: o["counter"]["packets"]
                  for o in json.load(sys.stdin)["nftables"] if "counter" in o}))' >"$2"
}
# Keepalives every second: the CPE gives up a connection that lost its subflows after
# 3 s. The concentrator waits for 4 periods of silence (20 s), so step 3 shows that its
# replies do not wait for that.
TB_CPE_EXTRA=$'tunnel:\n  keepalive: 1s\n  express_dscp: ef' \
  TB_CONC_EXTRA=$'tunnel:\n  keepalive: 5s\n  express_dscp: ef' \
  tb_start_proxies multiplexed || exit 1
tb_wait_log cpe "express connection up" 10 || exit 1
tb_wait_subflows cpe 2 10 || exit 1

fail=0
status() { "$CTL" -s "$TB_DIR/$1.sock" status --json >"$TB_DIR/$2.json" || fail=1; }

# 1. Two connections, each over both paths (the path manager's subflows join both).
sleep 1  # the express connection's second subflow
status cpe cpe-up
status conc conc-up
tb_check "$TB_DIR/cpe-up.json" "$TB_DIR/conc-up.json" <<'PY'
for side in ("cpe-up", "conc-up"):
    m, x = conns(side, False), conns(side, True)
    need(len(m) == 1 and len(x) == 1, f"{side}: one main and one express connection ({len(m)}, {len(x)})")
    need(all(len(c['subflows']) >= 2 for c in m + x),
         f"{side}: subflows per connection: {[len(c['subflows']) for c in m + x]}")
need(counter("conc-up", "express_connects") == 1, "the concentrator joined one express connection")
PY
# The main connection's subflows, by their CPE-side ports: never marked.
main_ports=$(python3 -c 'import json,sys
print(", ".join(s["local"].rsplit(":", 1)[1] for c in json.load(open(sys.argv[1]))["connections"]
                if not c["express_connection"] for s in c["subflows"]))' "$TB_DIR/cpe-up.json")
for rule in "counter name main_all" "ip dscp != cs0 counter name main_marked" \
  "meta priority != none counter name main_marked"; do
  # shellcheck disable=SC2086 # a rule is words
  tb_cpe nft add rule inet tbmark post tcp sport "{ $main_ports }" $rule &&
    tb_conc nft add rule inet tbmark post tcp dport "{ $main_ports }" $rule || exit 1
done

# 2. Light beside bulk: who rides which connection.
tb_shape_uplinks 10mbit || exit 1
tb_cli "$LOAD" --json --size 1200 --mbit 60 --duration 5 --timeout 1000 198.18.4.2:7 \
  >"$TB_DIR/bulk.json" 2>/dev/null &
bulk=$!
sleep 1
tb_cli "$LOAD" --json --size 64 --rate 50 --duration 3 --timeout 3000 198.18.4.2:7 \
  >"$TB_DIR/light.json" 2>/dev/null || fail=1
wait "$bulk" || fail=1
sleep 1.5  # drain
status cpe cpe-load
nft_counters cpe "$TB_DIR/marks-cpe.json"
nft_counters conc "$TB_DIR/marks-conc.json"
tb_check "$TB_DIR/light.json" "$TB_DIR/bulk.json" "$TB_DIR/cpe-up.json" "$TB_DIR/cpe-load.json" <<'PY'
light, bulk = d['light'], d['bulk']
x = counter("cpe-load", "express_tx_datagrams") - counter("cpe-up", "express_tx_datagrams")
need(light['sent'] >= 100 and light['lost'] <= 2,
     f"light flow: {light['lost']} of {light['sent']} lost beside the overload")
need(bulk['lost'] > 0, f"the bulk flow overloaded the paths: {bulk['lost']} of {bulk['sent']} lost")
# Every light datagram, plus the bulk flow first burst (16 KiB: 13 datagrams).
need(light['sent'] <= x <= light['sent'] + 20,
     f"express connection carried {x} datagrams: the light flow {light['sent']} + the bulk burst")
PY
tb_check "$TB_DIR/light.json" "$TB_DIR/marks-cpe.json" "$TB_DIR/marks-conc.json" <<'PY'
cpe, conc, n = d['marks-cpe'], d['marks-conc'], d['light']['sent']
# The CPE marks its socket before connecting: every subflow's handshake carries EF too.
need(cpe['ef_up0'] > 0 and cpe['ef_up1'] > 0,
     f"CPE: express packets marked EF on both paths (up0 {cpe['ef_up0']}, up1 {cpe['ef_up1']})")
need(cpe['ef_up0'] + cpe['ef_up1'] >= n, f"CPE: {cpe['ef_up0'] + cpe['ef_up1']} EF packets for {n} light datagrams")
need(cpe['prio6'] >= n, f"CPE: {cpe['prio6']} packets at priority 6 for {n} light datagrams")
# Echoes of light datagrams that came in together may share a segment.
need(conc['ef'] >= n // 2 and conc['prio6'] >= n // 2,
     f"concentrator: {conc['ef']} EF and {conc['prio6']} priority-6 packets for {n} echoes")
for side, m in (("CPE", cpe), ("concentrator", conc)):
    need(m['main_all'] > 1000 and m['main_marked'] == 0,
         f"{side}: main connection unmarked ({m['main_marked']} of {m['main_all']} packets marked)")
PY
tb_unshape_uplinks

# 3. Kill the express connection's subflows on the CPE (a dead path, as far as that
#    connection can tell): its keepalives go unanswered and it is given up; the bindings
#    stay, light datagrams still get through, and a new express connection replaces it.
#    The concentrator's end of the old one is still open, with no subflow: light replies
#    take the main connection until the new one joins, 200 ms on.
ports=$(python3 -c 'import json,sys
for c in json.load(open(sys.argv[1]))["connections"]:
    if c["express_connection"]:
        print(" ".join(s["local"].rsplit(":", 1)[1] for s in c["subflows"]))' "$TB_DIR/cpe-load.json")
"$CTL" -s "$TB_DIR/cpe.sock" bindings --json >"$TB_DIR/bind-before.json" || fail=1
for p in $ports; do tb_cpe ss -K state established "( sport = :$p )" >/dev/null; done
tb_wait_log cpe "express connection to .* lost" 10 || { echo "FAIL: express connection not given up"; fail=1; }
tb_cli "$LOAD" --json --size 64 --rate 50 --duration 1 --timeout 2000 198.18.4.2:7 \
  >"$TB_DIR/light2.json" 2>/dev/null || fail=1
two_joins() {
  "$CTL" -s "$TB_DIR/conc.sock" status --json | python3 -c 'import json, sys
sys.exit(json.load(sys.stdin)["stats"]["counters"]["express_connects"] < 2)'
}
tb_poll 10 two_joins  # the CPE redials after its backoff (200 ms at first)
"$CTL" -s "$TB_DIR/cpe.sock" bindings --json >"$TB_DIR/bind-after.json" || fail=1
status conc conc-again
status cpe cpe-again
tb_check "$TB_DIR/light2.json" "$TB_DIR/bind-before.json" "$TB_DIR/bind-after.json" \
  "$TB_DIR/conc-again.json" "$TB_DIR/cpe-again.json" <<'PY'
need(d['light2']['echoed'] >= d['light2']['sent'] - 1,
     f"without the express connection: {d['light2']['echoed']} of {d['light2']['sent']} echoed")
b0 = {b['client'] for b in d['bind-before']['bindings']}
b1 = {b['client'] for b in d['bind-after']['bindings']}
need(b0 and b0 <= b1, f"no binding lost with the express connection ({len(b0)} before, {len(b1)} after)")
need(counter("conc-again", "express_connects") == 2, "the CPE dialled a new express connection")
need(len(conns("cpe-again", True)) == 1, "the CPE holds one express connection again")
PY
((fail)) && grep -h "express" "$TB_DIR/cpe.log" "$TB_DIR/conc.log" | tail -n 12
tb_stop_proxies || fail=1

# 4. A concentrator that does not offer it: one connection, everything on it.
TB_CONC_EXTRA=$'tunnel:\n  express: false' tb_start_proxies multiplexed || exit 1
tb_cli "$LOAD" --json --size 64 --rate 100 --duration 1 --timeout 2000 198.18.4.2:7 \
  >"$TB_DIR/plain.json" 2>/dev/null || fail=1
status cpe cpe-plain
tb_check "$TB_DIR/plain.json" "$TB_DIR/cpe-plain.json" <<'PY'
need(d['plain']['echoed'] == d['plain']['sent'], f"{d['plain']['echoed']} of {d['plain']['sent']} echoed")
need(len(d['cpe-plain']['connections']) == 1 and not conns("cpe-plain", True),
     "express not offered: the CPE holds one connection")
need(counter("cpe-plain", "express_tx_datagrams") == 0, "nothing went express")
PY
tb_stop_proxies || fail=1

# 5. tunnel.express_rate: a 2 Mbit/s video call is light at 4mbit (all of it express) and,
#    after a reload to the default 512kbit, heavy (only its first burst goes express).
TB_CPE_EXTRA=$'tunnel:\n  express_rate: 4mbit' tb_start_proxies multiplexed || exit 1
tb_wait_log cpe "express connection up" 10 || exit 1
video() {  # NAME: 2 Mbit/s of 1100-byte datagrams for 2 s, and the CPE's status after
  status cpe "$1-before"
  tb_cli "$LOAD" --json --size 1100 --mbit 2 --duration 2 --timeout 2000 198.18.4.2:7 \
    >"$TB_DIR/$1.json" 2>/dev/null || fail=1
  status cpe "$1-after"
}
video fast
sed -i '/^  express_rate: 4mbit$/d' "$TB_DIR/cpe.yaml"
"$CTL" -s "$TB_DIR/cpe.sock" reload >/dev/null || { echo "FAIL: reload"; fail=1; }
video slow
tb_check "$TB_DIR/fast.json" "$TB_DIR/fast-before.json" "$TB_DIR/fast-after.json" \
  "$TB_DIR/slow.json" "$TB_DIR/slow-before.json" "$TB_DIR/slow-after.json" <<'PY'
def went_express(run):
    return counter(run + "-after", "express_tx_datagrams") - counter(run + "-before", "express_tx_datagrams")
fast, slow = d['fast']['sent'], d['slow']['sent']
need(fast >= 400 and went_express("fast") == fast,
     f"express_rate 4mbit: {went_express('fast')} of the video call's {fast} datagrams went express")
need(went_express("slow") <= 20,
     f"after a reload to 512kbit: {went_express('slow')} of {slow} went express (its first burst)")
PY
tb_stop_proxies || fail=1
((fail)) && exit 1
echo "PASS: test_express"

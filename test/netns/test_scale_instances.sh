#!/usr/bin/env bash
# All cores of one machine (issue 19, docs/SCALE.md): two concentrator daemons share
# the listen addresses with concentrator.reuse_port. The kernel spreads a per-binding
# CPE's connections (one per binding) over both; every binding's join over the second
# uplink reaches its connection whichever daemon's listener the join's SYN hits (the
# kernel matches MP_JOIN by token), so every connection has its two subflows. A reload
# reaches each daemon through its own control socket. A third daemon without
# reuse_port is refused the address. Hairpinning across the daemons: a client whose
# binding is in one daemon reaches a client whose binding is in the other at its public
# mapping, and the answer comes back from that mapping; a port of the concentrator's
# address outside the ephemeral range stays a loop. When one daemon dies, the CPE's
# bindings it held end (session_lost) and come back at once on the survivor. Multiplexed
# sessions of two CPEs (retried until they sit on different daemons): each daemon names
# its concentrator.instance_port in the HELLO, so each CPE's express connection reaches
# the daemon holding its session (express_connects, no express_refused).
set -uo pipefail
source "$(dirname "$0")/lib.sh"
tb_require_root_and_tools
tb_require_built daemon/mpudpd daemon/mpudpctl tools/udpecho tools/udpprobe
PEER=$(dirname "$0")/nat_peer.py
CONC_EXT=198.18.4.1  # the concentrator's address towards the server
tb_setup || exit 1
tb_tproxy_rules || exit 1
tb_start_echo || exit 1
tb_bg reflector srv python3 "$PEER" reflect 198.18.4.2 3478
tb_wait_listen srv udp 3478 1 5 || { echo "FAIL: reflector"; exit 1; }

PORTS=16
fail=0
say() { echo "$1 $2"; [[ $1 == FAIL* ]] && fail=1; return 0; }

tb_write_configs per-binding || exit 1
sed -i 's/^concentrator:$/concentrator:\n  reuse_port: true/' "$TB_DIR/conc.yaml"
grep -q 'reuse_port: true' "$TB_DIR/conc.yaml" || { echo "FAIL: config"; exit 1; }
sed "s|$TB_DIR/conc.sock|$TB_DIR/conc2.sock|" "$TB_DIR/conc.yaml" >"$TB_DIR/conc2.yaml"
tb_start_daemon conc conc "$TB_DIR/conc.yaml" || exit 1
tb_wait_listen conc tcp "$TB_CONC_PORT" 2 10 || { echo "FAIL: conc does not listen"; exit 1; }
tb_start_daemon conc2 conc "$TB_DIR/conc2.yaml" || exit 1
tb_wait_listen conc tcp "$TB_CONC_PORT" 4 10 ||
  { echo "FAIL: conc2 does not listen beside conc"; tail -n 20 "$TB_DIR/conc2.log"; exit 1; }
tb_wait_log conc2 'listening on 0\.0\.0\.0:[0-9]+ \(shared: reuse_port\)' 5 || fail=1

echo "--- a third daemon without reuse_port is refused the address"
sed -e '/reuse_port: true/d' -e "s|$TB_DIR/conc.sock|$TB_DIR/conc3.sock|" \
  "$TB_DIR/conc.yaml" >"$TB_DIR/conc3.yaml"
tb_start_daemon conc3 conc "$TB_DIR/conc3.yaml" || exit 1
if tb_poll 5 _tb_gone "${TB_PIDS[conc3]}"; then
  rc=0
  tb_stop conc3 || rc=$?
  ((rc != 0)) && say ok "conc3 exited with $rc" || say FAIL "conc3 exited with 0"
  grep -q 'Address already in use' "$TB_DIR/conc3.log" &&
    say ok "conc3 said: $(grep -m1 -o 'listen.*Address already in use' "$TB_DIR/conc3.log")" ||
    say FAIL "conc3's log does not name the taken address: $(tail -n 3 "$TB_DIR/conc3.log")"
else
  say FAIL "conc3 started beside two reuse_port daemons"
  tb_stop conc3
fi

tb_start_daemon cpe cpe "$TB_DIR/cpe.yaml" || exit 1
tb_wait_listen cpe udp "${TB_TPROXY_PORT:-5555}" 1 10 || { echo "FAIL: cpe"; exit 1; }

echo "--- $PORTS bindings, one connection each, spread over the two daemons"
joins0=$(tb_nstat conc MPTcpExtMPJoinAckRx)
tb_cli "$TB_PROBE" --ports "$PORTS" --count 3 --sizes 64,1200 198.18.4.2:7 ||
  say FAIL "probe through two daemons"
n1=$(tb_counter conc bindings_created)
n2=$(tb_counter conc2 bindings_created)
echo "bindings: conc $n1, conc2 $n2"
((n1 + n2 == PORTS)) && say ok "$PORTS bindings in all" || say FAIL "bindings $n1 + $n2 != $PORTS"
((n1 >= 1 && n2 >= 1)) && say ok "both daemons hold bindings" ||
  say FAIL "the kernel gave every connection to one daemon"
_joined() { (($(tb_nstat conc MPTcpExtMPJoinAckRx) - joins0 >= PORTS)); }
joins() { echo $(($(tb_nstat conc MPTcpExtMPJoinAckRx) - joins0)); }
tb_poll 5 _joined && say ok "every connection joined over up1 ($(joins) joins)" ||
  say FAIL "joins: $(joins) of $PORTS"
# Each established connection on the concentrator's side has its second subflow.
subs=$(tb_conc ss -MtiHn state established "( sport = :$TB_CONC_PORT )" |
  grep -o 'subflows:[0-9]*' | sort | uniq -c | tr -s ' ' | paste -sd, -)
[[ $subs == " $PORTS subflows:1" ]] && say ok "every MPTCP connection has 1 extra subflow" ||
  say FAIL "subflows per connection: '$subs'"

echo "--- a reload reaches each daemon"
for d in conc conc2; do
  tb_ctl "$d" reload >/dev/null && tb_wait_log "$d" 'configuration reloaded' 3 &&
    say ok "$d reloaded" || say FAIL "$d reload"
done

echo "--- hairpinning from a binding in one daemon to a binding in the other"
# Each client port is a binding, and so a connection of its own: learn the mappings, then
# find one port held by each daemon.
declare -A MAP=()
for p in $(seq 41001 41012); do
  MAP[$p]=$(tb_cli python3 "$PEER" probe 198.18.0.2 "$p" 198.18.4.2:3478)
done
held_by() {  # DAEMON: the client ports it holds bindings of, among 41001..41012
  tb_ctl "$1" bindings --json | python3 -c 'import json, sys
for b in json.load(sys.stdin)["bindings"]:
    port = int(b["client"].rsplit(":", 1)[1])
    if 41001 <= port <= 41012: print(port)' | sort -n
}
p1=$(held_by conc | head -n1)
p2=$(held_by conc2 | head -n1)
echo "client port $p1 (mapping ${MAP[$p1]:-?}) in conc, $p2 (mapping ${MAP[$p2]:-?}) in conc2"
if [[ -n $p1 && -n $p2 && ${MAP[$p1]} == "$CONC_EXT":* && ${MAP[$p2]} == "$CONC_EXT":* ]]; then
  rm -f "$TB_DIR/c2.ready" "$TB_DIR/c2.out"
  tb_bg c2 cli python3 "$PEER" serve 198.18.0.2 "$p2" "$TB_DIR/c2.ready" "$TB_DIR/c2.out" 10
  tb_poll 5 test -e "$TB_DIR/c2.ready" || say FAIL "client $p2 did not start"
  reply=$(tb_cli python3 "$PEER" ping 198.18.0.2 "$p1" 5 "${MAP[$p2]}")
  tb_poll 10 _tb_gone "${TB_PIDS[c2]}"
  heard=$(cat "$TB_DIR/c2.out" 2>/dev/null)
  [[ $heard == "${MAP[$p1]} ping" ]] && say ok "conc2's client heard conc's client from its mapping: $heard" ||
    say FAIL "conc2's client heard '$heard', want '${MAP[$p1]} ping'"
  [[ $reply == "${MAP[$p2]} pong:ping" ]] && say ok "the answer came back from conc2's mapping: $reply" ||
    say FAIL "the answer was '$reply', want '${MAP[$p2]} pong:ping'"
else
  say FAIL "no client port held by each daemon, or a mapping not on $CONC_EXT"
fi
loops0=$(($(tb_stat conc drops loop_refused) + $(tb_stat conc2 drops loop_refused)))
tb_cli python3 "$PEER" ping 198.18.0.2 41020 0.3 "$CONC_EXT:9" >/dev/null
_looped() { (($(tb_stat conc drops loop_refused) + $(tb_stat conc2 drops loop_refused) > loops0)); }
tb_poll 3 _looped && say ok "a port outside the ephemeral range is still a loop (loop_refused)" ||
  say FAIL "$CONC_EXT:9 was not refused as a loop"

echo "--- one daemon dies: its bindings come back on the other"
tb_stop conc KILL 5
tb_poll 5 grep -q 'reason=session_lost' "$TB_DIR/cpe.log" &&
  say ok "the CPE saw $(grep -c 'reason=session_lost' "$TB_DIR/cpe.log") bindings lost" ||
  say FAIL "the CPE did not notice the dead daemon's connections"
t0=$(date +%s%N)
tb_cli "$TB_PROBE" --ports "$PORTS" --count 3 --sizes 64 198.18.4.2:7 ||
  say FAIL "probe after conc died"
echo "all $PORTS clients answered again in $((($(date +%s%N) - t0) / 1000000)) ms"
n2b=$(tb_counter conc2 bindings_created)
((n2b >= n2 + PORTS)) && say ok "conc2 took every binding ($n2 -> $n2b)" ||
  say FAIL "conc2 bindings_created $n2 -> $n2b, expected +$PORTS"

tb_stop_daemon cpe || say FAIL "cpe exit"
tb_stop_daemon conc2 || say FAIL "conc2 exit"

echo "--- multiplexed: express connections reach their own daemon at its instance_port"
tb_add_cpe2 || exit 1
tb_write_configs multiplexed || exit 1
sed -i 's/^concentrator:$/concentrator:\n  reuse_port: true\n  instance_port: 7101/' "$TB_DIR/conc.yaml"
sed -e "s|$TB_DIR/conc.sock|$TB_DIR/conc2.sock|" -e 's/instance_port: 7101/instance_port: 7102/' \
  "$TB_DIR/conc.yaml" >"$TB_DIR/conc2.yaml"
tb_start_daemon conc conc "$TB_DIR/conc.yaml" || exit 1
tb_wait_log conc 'listening on 0\.0\.0\.0:7101 \(instance_port\)' 10 || fail=1
tb_start_daemon conc2 conc "$TB_DIR/conc2.yaml" || exit 1
tb_wait_log conc2 'listening on 0\.0\.0\.0:7102 \(instance_port\)' 10 || fail=1
sessions_of() { tb_ctl "$1" status --json | python3 -c 'import json, sys
print(sum(1 for c in json.load(sys.stdin)["connections"] if not c.get("express_connection")))'; }
# The kernel hashes each CPE's main connection to a daemon: restart the second CPE until
# the two sit on different daemons (each try is a new source port, a new hash).
tb_start_daemon cpe cpe "$TB_DIR/cpe.yaml" || exit 1
tb_wait_log cpe 'tunnel up' 10 || exit 1
spread=0
for try in 1 2 3 4 5 6 7 8; do
  tb_start_cpe2 || exit 1
  tb_wait_log cpe2 'tunnel up' 10 || exit 1
  sleep 0.3
  a=$(sessions_of conc) b=$(sessions_of conc2)
  ((a == 1 && b == 1)) && { spread=1; break; }
  tb_stop_daemon cpe2 >/dev/null 2>&1
done
((spread)) && say ok "one session on each daemon (try $try)" || say FAIL "sessions conc $a, conc2 $b after 8 tries"
for d in cpe cpe2; do
  tb_wait_log "$d" 'express connection.*(up|established|joined)' 10 >/dev/null 2>&1 || true
done
tb_cli "$TB_PROBE" --ports 3 --count 3 --sizes 64 198.18.4.2:7 || say FAIL "probe through cpe"
tb_ns_exec cli2 "$TB_PROBE" --ports 3 --count 3 --sizes 64 198.18.4.2:7 || say FAIL "probe through cpe2"
for d in conc conc2; do
  xc=$(tb_counter "$d" express_connects) xr=$(tb_counter "$d" express_refused)
  ((xc >= 1 && xr == 0)) && say ok "$d: express_connects $xc, express_refused 0" ||
    say FAIL "$d: express_connects $xc, express_refused $xr"
done
grep -q 'the concentrator.s own address is 198\.18\.2\.2:710[12]' "$TB_DIR/cpe.log" &&
  say ok "the CPE was named its daemon's own port" || say FAIL "the CPE was not named an instance port"
! grep -q 'will not join it over every uplink' "$TB_DIR/cpe.log" "$TB_DIR/cpe2.log" &&
  say ok "no fullmesh warning for a daemon of the same host" || say FAIL "a fullmesh warning"
tb_stop_daemon cpe || say FAIL "cpe exit"
tb_stop_daemon cpe2 || say FAIL "cpe2 exit"
tb_stop_daemon conc || say FAIL "conc exit"
tb_stop_daemon conc2 || say FAIL "conc2 exit"
((fail)) && exit 1
echo "PASS: test_scale_instances"

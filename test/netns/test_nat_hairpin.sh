#!/usr/bin/env bash
# NAT behaviour within one concentrator (docs/NAT.md). Two remotes see a client at the
# same public mapping (endpoint-independent mapping, RFC 4787 REQ-1). Hairpinning (REQ-9,
# IPv4, and IPv6 between the two CPEs):
# client 1 reaches client 2 (another host behind the same CPE) and client 3 (behind a
# second CPE) at their public mappings, as a STUN-like reflector on the server told
# them; each sees client 1's public mapping as the source, and their replies come back
# from their own mappings. A port of the concentrator's address that is no live mapping
# is still refused as a loop. Filtering: a remote the binding never sent to reaches it
# with the default (endpoint-independent); with concentrator.filtering:
# address-dependent, set by a reload, it is dropped and counted (filtered).
set -uo pipefail
source "$(dirname "$0")/lib.sh"
tb_require_root_and_tools
tb_require_built daemon/mpudpd daemon/mpudpctl tools/udpecho
PEER=$(dirname "$0")/nat_peer.py
REFLECTOR=198.18.4.2:3478
CONC_EXT=198.18.4.1  # the concentrator's address towards the server
tb_setup || exit 1
tb_tproxy_rules || exit 1
tb_add_cpe2 || exit 1
# Client 2 is a second host on CPE 1's LAN.
tb_cli ip addr add 198.18.0.3/24 dev lan0 || exit 1
# Unrelated remotes: more server addresses (client 1 answers the first, so it is no
# longer unrelated once filtering changes).
tb_srv ip addr add 198.18.4.3/24 dev eth0 || exit 1
tb_srv ip addr add 198.18.4.4/24 dev eth0 || exit 1
# A second reflector on another address: the mapping must not depend on the remote.
tb_srv ip addr add 198.18.4.5/24 dev eth0 || exit 1
tb_bg reflector srv python3 "$PEER" reflect 198.18.4.2 3478
tb_bg reflector2 srv python3 "$PEER" reflect 198.18.4.5 3478
tb_bg reflector6 srv python3 "$PEER" reflect 2001:db8:4::2 3478
tb_wait_listen srv udp 3478 3 5 || { echo "FAIL: reflectors"; exit 1; }
tb_start_proxies multiplexed || exit 1
tb_start_cpe2 || exit 1
tb_wait_log cpe "tunnel up" 10 && tb_wait_log cpe2 "tunnel up" 10 || exit 1

fail=0
check() {  # WHAT GOT WANT
  if [[ $2 == "$3" ]]; then echo "ok   $1: $2"; else echo "FAIL $1: got '$2', want '$3'"; fail=1; fi
}
# serve NAME NS IP PORT [TIMEOUT]: a client waiting for one datagram, in the background.
serve() {
  rm -f "$TB_DIR/$1.ready" "$TB_DIR/$1.out"
  tb_bg "$1" "$2" python3 "$PEER" serve "$3" "$4" "$TB_DIR/$1.ready" "$TB_DIR/$1.out" "${5:-10}"
  tb_poll 5 test -e "$TB_DIR/$1.ready" || { echo "FAIL: $1 did not start"; fail=1; }
}
served() {  # NAME: what it received ("SOURCE PAYLOAD"), once it ended
  tb_poll 10 _tb_gone "${TB_PIDS[$1]}"
  wait "${TB_PIDS[$1]}" 2>/dev/null
  unset "TB_PIDS[$1]"
  cat "$TB_DIR/$1.out" 2>/dev/null
}

echo "--- each client learns its public mapping"
m1=$(tb_cli python3 "$PEER" probe 198.18.0.2 41001 "$REFLECTOR")
m2=$(tb_cli python3 "$PEER" probe 198.18.0.3 41002 "$REFLECTOR")
m3=$(tb_ns_exec cli2 python3 "$PEER" probe 198.18.6.2 41003 "$REFLECTOR")
echo "client 1 198.18.0.2:41001 -> $m1; client 2 198.18.0.3:41002 -> $m2;" \
  "client 3 198.18.6.2:41003 -> $m3"
for m in "$m1" "$m2" "$m3"; do
  [[ $m == "$CONC_EXT":* ]] || { echo "FAIL: mapping '$m' is not on $CONC_EXT"; fail=1; }
done
[[ $m1 != "$m2" && $m1 != "$m3" && $m2 != "$m3" ]] || { echo "FAIL: mappings not distinct"; fail=1; }
check "endpoint-independent mapping: another remote sees client 1 at the same mapping" \
  "$(tb_cli python3 "$PEER" probe 198.18.0.2 41001 198.18.4.5:3478)" "$m1"
((fail)) && { tb_stop_proxies; exit 1; }
tb_expect conc counters hairpin_datagrams 0 "nothing hairpinned yet"

echo "--- client 1 to client 2 (same CPE) and client 3 (other CPE) at their mappings"
serve c2 cli 198.18.0.3 41002
serve c3 cli2 198.18.6.2 41003
replies=$(tb_cli python3 "$PEER" ping 198.18.0.2 41001 5 "$m2" "$m3" | sort)
check "client 2 hears client 1 from its public mapping" "$(served c2)" "$m1 ping"
check "client 3 hears client 1 from its public mapping" "$(served c3)" "$m1 ping"
check "the replies come back from clients 2 and 3's mappings" "$replies" \
  "$(printf '%s pong:ping\n%s pong:ping\n' "$m2" "$m3" | sort)"
tb_expect conc counters hairpin_datagrams 4 "two pings and two pongs stayed inside"
tb_expect conc counters wan_tx_datagrams 4 "only the four probes left for the network"

echo "--- the same over IPv6, client 1 and client 3"
m1v6=$(tb_cli python3 "$PEER" probe 2001:db8::2 41011 "[2001:db8:4::2]:3478")
m3v6=$(tb_ns_exec cli2 python3 "$PEER" probe 2001:db8:6::2 41013 "[2001:db8:4::2]:3478")
echo "client 1 -> $m1v6; client 3 -> $m3v6"
serve c3v6 cli2 2001:db8:6::2 41013
replies=$(tb_cli python3 "$PEER" ping 2001:db8::2 41011 5 "$m3v6")
check "IPv6: client 3 hears client 1 from its public mapping" "$(served c3v6)" "$m1v6 ping"
check "IPv6: the reply comes back from client 3's mapping" "$replies" "$m3v6 pong:ping"
tb_expect conc counters hairpin_datagrams 6 "IPv6 hairpins stayed inside too"

echo "--- a client to its own mapping"
own=$(tb_cli python3 "$PEER" ping 198.18.0.2 41001 3 "$m1")
check "client 1 hears itself from its own mapping" "$own" "$m1 ping"
tb_expect conc counters hairpin_datagrams 7 "and that one stayed inside too"

echo "--- the concentrator's address at a port that is no mapping"
# From another client port: a refused destination ends its binding (the RESET).
tb_cli python3 "$PEER" ping 198.18.0.2 41009 0.3 "$CONC_EXT:9" >/dev/null
tb_expect conc drops loop_refused 1 "still a loop, refused"

echo "--- filtering: an unrelated remote to client 1's mapping"
serve c1 cli 198.18.0.2 41001 3
tb_srv python3 "$PEER" ping 198.18.4.3 5000 0.3 "$m1" >/dev/null
check "endpoint-independent (default): delivered" "$(served c1)" "198.18.4.3:5000 ping"
tb_expect conc drops filtered 0 "nothing filtered"
python3 - "$TB_DIR/conc.yaml" <<'PY' || exit 1
import sys
p = sys.argv[1]
s = open(p).read()
open(p, "w").write(s.replace("concentrator:\n", "concentrator:\n  filtering: address-dependent\n", 1))
PY
tb_ctl conc reload >/dev/null || { echo "FAIL: reload"; fail=1; }
serve c1 cli 198.18.0.2 41001 2
tb_srv python3 "$PEER" ping 198.18.4.4 5001 0.3 "$m1" >/dev/null
check "address-dependent: not delivered" "$(served c1)" ""
tb_expect conc drops filtered 1 "dropped and counted as filtered"
serve c1 cli 198.18.0.2 41001 3
tb_srv python3 "$PEER" ping 198.18.4.2 5002 0.3 "$m1" >/dev/null
check "address-dependent: an address client 1 sent to, another port, passes" "$(served c1)" \
  "198.18.4.2:5002 ping"
serve c1 cli 198.18.0.2 41001 3
back=$(tb_ns_exec cli2 python3 "$PEER" ping 198.18.6.2 41003 3 "$m1")
check "address-dependent: a hairpin passes, client 1 sent to the concentrator's address" \
  "$(served c1)" "$m3 ping"
check "and client 3 hears the answer from client 1's mapping" "$back" "$m1 pong:ping"
tb_expect conc counters hairpin_datagrams 9 "hairpinned in all"

echo "--- every datagram accounted for"
tb_stop reflector TERM 5 >/dev/null 2>&1
tb_stop reflector2 TERM 5 >/dev/null 2>&1
tb_stop reflector6 TERM 5 >/dev/null 2>&1
tb_ctl cpe status --json >"$TB_DIR/cpe.json"
tb_ctl cpe2 status --json >"$TB_DIR/cpe2.json"
tb_ctl conc status --json >"$TB_DIR/conc.json"
tb_check "$TB_DIR/cpe.json" "$TB_DIR/cpe2.json" "$TB_DIR/conc.json" <<'PY'
balance("cpe", d["cpe"])
balance("cpe2", d["cpe2"])
balance("conc", d["conc"])
PY
tb_stop_proxies || fail=1
((fail)) && exit 1
echo "PASS: test_nat_hairpin"

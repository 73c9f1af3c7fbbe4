#!/usr/bin/env bash
# An on-path attacker on one uplink (issue 18). tools/tamper sits where path 1 enters the
# concentrator (PREROUTING on wan1, from an NFQUEUE): it sees and rewrites exactly what a
# router on that link could. Path 0 is a backup path, so the MPTCP scheduler sends the
# data over path 1's subflows. While a UDP echo flow runs through the tunnel:
#  1. TLS (the default, `auth: {psk_file}` on both sides): the relay flips one byte of a
#     record, injects an OPEN + DATA frame (keeping the segment's length, so TCP and MPTCP
#     accept it) in clear and inside a forged record header, replays an earlier segment, and flips a byte towards the CPE (the same
#     relay on the CPE's side of path 1). Each time: the connection is torn down, both
#     ends log why, `tls_record_failures` counts it, the injected datagram is delivered to
#     nobody, and the CPE reconnects and the flow goes on.
#  2. `encryption: none` on both sides, the tunnel over IPv6 this time, the same relay: the injected datagram IS delivered
#     (the attack is real and the test can fail), and a flipped byte reaches the echo
#     server unnoticed (udpprobe sees its echo come back corrupted).
set -uo pipefail
source "$(dirname "$0")/lib.sh"
tb_require_root_and_tools
tb_require_built daemon/mpudpd daemon/mpudpctl tools/udpecho tools/udpprobe tools/tamper
for t in iptables ip6tables; do
  command -v "$t" >/dev/null 2>&1 || { echo "[tb] SKIP: '$t' is not installed" >&2; exit 4; }
done

fail=0
bad() { echo "FAIL: $*" >&2; fail=1; }
TAMPER=$MPUDP_BUILD/tools/tamper
CTL=$MPUDP_BUILD/daemon/mpudpctl
SINK=198.18.4.2:9999   # where the injected DATA wants to go
QUEUE_UP=7             # conc, segments CPE -> concentrator on path 1
QUEUE_DOWN=8           # cpe, segments concentrator -> CPE on path 1

tb_setup || exit 1
tb_tproxy_rules || exit 1
tb_start_echo || exit 1

# Path 0's address a backup endpoint: its subflow (the first one) carries the
# handshake, and the data goes over path 1's subflow both ways once it has joined.
tb_cpe ip mptcp endpoint add 198.18.1.1 dev up0 backup || exit 1
tb_cpe ip mptcp endpoint add 2001:db8:1::1 dev up0 backup || exit 1

# The relay's hooks: the rules stay for the whole test; while no tamper process holds
# the queue, --queue-bypass lets the segments through.
for ipt in iptables ip6tables; do
  tb_conc "$ipt" -t mangle -A PREROUTING -i wan1 -p tcp --dport "$TB_CONC_PORT" \
    -j NFQUEUE --queue-num "$QUEUE_UP" --queue-bypass || exit 1
  tb_cpe "$ipt" -t mangle -A PREROUTING -i up1 -p tcp --sport "$TB_CONC_PORT" \
    -j NFQUEUE --queue-num "$QUEUE_DOWN" --queue-bypass || exit 1
done

# A UDP listener at the injected DATA's destination, logging what it receives.
cat >"$TB_DIR/sink.py" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("198.18.4.2", 9999))
out = open(sys.argv[1], "a", buffering=1)
print("ready", file=out)
while True:
    data, peer = s.recvfrom(65535)
    print(f"got {len(data)} from {peer[0]}:{peer[1]}: {data[:24]!r}", file=out)
EOF
tb_bg sink srv python3 "$TB_DIR/sink.py" "$TB_DIR/sink.out"
tb_poll 5 grep -qs ready "$TB_DIR/sink.out" || { tb_fail "sink did not start"; exit 1; }
sink_got() { grep -c '^got ' "$TB_DIR/sink.out"; }
_sink_above() { (( $(sink_got) > $1 )); }

# counter NAME SIDE: a counter of a running daemon (0 when it has none).
counter() {
  "$CTL" -s "$TB_DIR/$2.sock" status --json 2>/dev/null | python3 -c '
import json, sys
d = json.load(sys.stdin)["stats"]["counters"]
print(d.get(sys.argv[1], 0))' "$1" 2>/dev/null || echo 0
}

# sessions: how many tunnel connections the concentrator has seen complete a handshake.
sessions() { grep -Ec 'session [0-9]+ from .*: (multiplexed|express connection) over ' "$TB_DIR/conc.log"; }
_sessions_above() { (( $(sessions) > $1 )); }
_tamper_acted() { grep -Eq '^(flip|inject|replay):' "$TB_DIR/$1.log"; }

# The flow of the tests: paced, so that each datagram is one frame and one segment.
flow() {  # SECONDS [udpprobe options...]
  local s=$1
  shift
  tb_cli "$TB_PROBE" --sizes 600 --rate 40 --duration "$s" --timeout 1500 "$@" 198.18.4.2:7
}

# flow_goes_on LABEL: within 10 s, a probe run passes in full again.
flow_goes_on() {
  local i
  for i in 1 2 3 4 5; do
    if tb_cli "$TB_PROBE" --sizes 64,600 --count 5 --timeout 1500 198.18.4.2:7 \
      >"$TB_DIR/after-$1.log" 2>&1; then
      echo "ok   $1: the flow goes on"
      return 0
    fi
    sleep 1
  done
  bad "$1: the flow does not recover"
  sed 's/^/    /' "$TB_DIR/after-$1.log" >&2
}

# attack NAME SIDE QUEUE DIR TAMPER_ARGS...: start the relay in SIDE's namespace on
# QUEUE, run the flow until it has acted (at most 8 s), stop it. Returns non-zero when
# the relay never acted (no data crossed path 1).
attack() {
  local name=$1 side=$2 queue=$3 dir=$4
  shift 4
  tb_bg "$name" "$side" "$TAMPER" --queue "$queue" --port "$TB_CONC_PORT" \
    --dir "$dir" "$@"
  tb_wait_log "$name" 'ready on queue' 5 >/dev/null || { bad "$name: tamper did not start"; return 1; }
  local i
  for i in 1 2 3 4; do
    flow 2 --min-ok 0 >>"$TB_DIR/flow-$name.log" 2>&1
    _tamper_acted "$name" && break
  done
  tb_stop "$name" TERM 3 >/dev/null
  grep -E '^(flip|inject|replay|tamper): [^r]' "$TB_DIR/$name.log" | sed "s/^/    $name: /"
  _tamper_acted "$name" || { bad "$name: the relay never acted (no data on path 1?)"; return 1; }
}

# start CONCENTRATOR YAML: both daemons (multiplexed) with YAML appended to both configs,
# the CPE dialling CONCENTRATOR (IPv4 or IPv6: the relay sees one or the other); then a
# flow, and path 1's subflow.
start() {
  tb_write_configs multiplexed || exit 1
  sed -i "s|^  concentrator: .*|  concentrator: \"$1\"|" "$TB_DIR/cpe.yaml" || exit 1
  printf '%s\n' "$2" >>"$TB_DIR/cpe.yaml"
  printf '%s\n' "$2" >>"$TB_DIR/conc.yaml"
  tb_start_daemon conc conc "$TB_DIR/conc.yaml" || exit 1
  tb_wait_listen conc tcp "$TB_CONC_PORT" 2 10 || { tb_fail "concentrator does not listen"; exit 1; }
  tb_start_daemon cpe cpe "$TB_DIR/cpe.yaml" || exit 1
  tb_wait_listen cpe udp "$TB_TPROXY_PORT" 1 10 || { tb_fail "CPE does not listen"; exit 1; }
  flow 2 >"$TB_DIR/flow-start.log" 2>&1 || { bad "no flow before the attacks"; cat "$TB_DIR/flow-start.log" >&2; }
  tb_wait_subflows cpe 2 5 || bad "no second subflow (path 1)"
}

# tls_case NAME SIDE QUEUE DIR TAMPER_ARGS...: one attack against the TLS tunnel and
# what must follow it.
tls_case() {
  local name=$1
  local s0 g0 r0 c0
  s0=$(sessions) g0=$(sink_got)
  r0=$(counter tls_record_failures "$2")
  c0=$(grep -c 'TLS failed: ' "$TB_DIR/$2.log")
  attack "$@" || return 1
  # The side that received the rewritten record names the cause; the other sees the
  # connection go away (or the alert the receiver sent).
  local receiver=$2 last
  if tb_poll 3 _log_count_above "$receiver" 'TLS failed: ' "$c0"; then
    last=$(grep 'TLS failed: ' "$TB_DIR/$receiver.log" | tail -n 1 | sed -E 's/^.*(session|tunnel)/\1/')
    echo "ok   $name: torn down, $receiver logged: $last"
    [[ $last == *'TLS failed: record failed authentication (tampered or replayed)'* ]] ||
      bad "$name: $receiver names another cause than 'record failed authentication (tampered or replayed)'"
  else
    bad "$name: $receiver logged no 'TLS failed: ' line"
    grep -E 'TLS|ended|closed|reconnect' "$TB_DIR/$receiver.log" | tail -n 5 | sed 's/^/    /' >&2
  fi
  local r1
  r1=$(counter tls_record_failures "$receiver")
  (( r1 > r0 )) && echo "ok   $name: $receiver's tls_record_failures $r0 -> $r1" ||
    bad "$name: $receiver's tls_record_failures did not grow ($r0 -> $r1)"
  # Torn down: the CPE comes back with a new connection.
  if tb_poll 10 _sessions_above "$s0"; then
    echo "ok   $name: the CPE reconnected (sessions $s0 -> $(sessions))"
  else
    bad "$name: no new session after the attack"
  fi
  flow_goes_on "$name"
  sleep 0.5
  local g1
  g1=$(sink_got)
  (( g1 == g0 )) && echo "ok   $name: nothing delivered to $SINK" ||
    bad "$name: $SINK received $((g1 - g0)) datagram(s)"
}

_log_count_above() { (( $(grep -Ec -- "$2" "$TB_DIR/$1.log") > $3 )); }

ATTACK=(--min-len 200 --after 3000)

# --- 1. TLS -----------------------------------------------------------------------------
if [[ ${TAMPER_CASES:-all} != clear ]]; then
  start "198.18.2.2:$TB_CONC_PORT" ""
  tls_case tls-flip conc "$QUEUE_UP" to --flip-after 3000 --min-len 200
  tls_case tls-inject conc "$QUEUE_UP" to --inject "$SINK" "${ATTACK[@]}"
  tls_case tls-inject-record conc "$QUEUE_UP" to --inject "$SINK" --in-record "${ATTACK[@]}"
  tls_case tls-replay conc "$QUEUE_UP" to --replay "${ATTACK[@]}"
  tls_case tls-flip-down cpe "$QUEUE_DOWN" from --flip-after 3000 --min-len 200
  tb_stop_proxies || bad "tls: daemons exited non-zero"
fi

# --- 2. cleartext: the same relay succeeds ------------------------------------------------
if [[ ${TAMPER_CASES:-all} != tls ]]; then
  CLEAR=${TAMPER_CLEAR_YAML-"encryption: none"}
  start "[2001:db8:2::2]:$TB_CONC_PORT" "$CLEAR"
  s0=$(sessions) g0=$(sink_got)
  attack clear-inject conc "$QUEUE_UP" to --inject "$SINK" "${ATTACK[@]}"
  if tb_poll 3 _sink_above "$g0"; then
    echo "ok   cleartext: the injected datagram was delivered: $(grep '^got' "$TB_DIR/sink.out" | tail -n 1)"
  else
    bad "cleartext: the injected datagram was not delivered (the attack did not work)"
  fi
  attack clear-flip conc "$QUEUE_UP" to --flip-after 3000 --min-len 200
  # What happens: the flipped byte is the last of a datagram; it reaches the echo server
  # and comes back corrupted, and the tunnel notices nothing.
  if grep -Eq 'bad [1-9]' "$TB_DIR/flow-clear-flip.log"; then
    echo "ok   cleartext: the flipped byte went through unnoticed ($(grep -Eo 'bad [0-9]+' "$TB_DIR/flow-clear-flip.log" | sort | tail -n 1) echo)"
  else
    bad "cleartext: udpprobe saw no corrupted echo after the flip"
    sed 's/^/    /' "$TB_DIR/flow-clear-flip.log" >&2
  fi
  (( $(sessions) == s0 )) && echo "ok   cleartext: no connection was torn down" ||
    bad "cleartext: sessions $s0 -> $(sessions) (a teardown nobody asked for)"
  flow_goes_on clear
  tb_stop_proxies || bad "cleartext: daemons exited non-zero"
fi

((fail)) && exit 1
echo "PASS: the relay's flips, injections and replays tear the TLS tunnel down and deliver nothing; in cleartext they go through"

#!/usr/bin/env bash
# Several concentrators behind one address and a stateless L4 balancer (issue 19,
# docs/SCALE.md): RFC 8684's C flag (allow_join_initial_addr_port=0) keeps joins off the
# balanced address, each concentrator names and announces its own (direct_address).
#
#   cliJ ── cpeJ ═(up0, up1)═ bal ── concK (K = 1..3, 4 added later)
#                              └──── srv (echo)
#
#   bal   198.18.100.1:7000 (the balanced address): nftables DNAT, jhash over the
#         source address and port, to concK's wan0 198.18.11K.2
#   concK wan0 198.18.11K.2/24 (default via bal), lo 198.18.100.1K/32 = direct_address
#   cpeJ  up0 198.18.2(2J).2/24, up1 198.18.2(2J+1).2/24 (via bal .1 each, source
#         rules), lan0 198.18.3J.1/24; paths up0 and up1 with `fullmesh` (or
#         CPE_PATH_FLAGS="laminar: true": one join, from up1)
#   cliJ  lan0 198.18.3J.2/24
#   srv   eth0 198.18.4.2/24 (default via bal)
#
# Asserts: a concentrator with the sysctl still 1 warns; every session echoes; its joins reach its own concentrator's direct address
# over both uplinks and no other concentrator sees a join; express connections join
# their sessions; sessions spread over two concentrators or more; killing one
# concentrator under a steady probe gets its CPE carrying traffic again within
# FAILOVER_BOUND_MS while the other CPE loses nothing; a concentrator added to the map
# takes new sessions; one cut off silently is replaced within SILENT_BOUND_MS.
set -u
source "$(dirname "$0")/lib.sh"
tb_require_root_and_tools
tb_require_built

NCONC=3
NCPE=2
FAILOVER_BOUND_MS=${FAILOVER_BOUND_MS:-5000}
# A concentrator that vanishes without a word (its link cut): three unanswered keepalives
# (1 s apart here) and maybe one redial hashed to it (5 s) before a survivor takes over.
SILENT_BOUND_MS=${SILENT_BOUND_MS:-12000}
# The CPE's path flags (docs/SCALE.md says why fullmesh); other values for experiments.
CPE_PATH_FLAGS=${CPE_PATH_FLAGS:-"fullmesh: true"}
# What the kernel makes of them (6.18): fullmesh joins the direct address from both
# uplinks, laminar only from the one the connection does not use yet.
JOINS=2
[[ $CPE_PATH_FLAGS == *laminar* ]] && JOINS=1
WANT_UP0=$JOINS  # subflows from up0 to the direct address: JOINS - 1 joins, the express one
VIP=198.18.100.1
PORT=7000
# shellcheck disable=SC2034  # read by lib.sh (tb_mptcp_max_subflows and kin; cleanup)
TB_CONC_PORT=$PORT

_tb_reap_stale
# shellcheck disable=SC2034
TB_CLEANED=
TB_SUFFIX=$$-$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
TB_DIR=$(mktemp -d "${TMPDIR:-/tmp}/mpudp-tb.$TB_SUFFIX.XXXXXX") || exit 1
trap tb_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
export TB_DIR
NS_BAL=mpudp-bal-$TB_SUFFIX
TB_NS_SRV=mpudp-srv-$TB_SUFFIX
# Index digits after the suffix keep the names inside _tb_reap_stale's pattern.
conc_ns() { echo "mpudp-conc-$TB_SUFFIX$1"; }
cpe_ns() { echo "mpudp-cpe-$TB_SUFFIX$1"; }
cli_ns() { echo "mpudp-cli-$TB_SUFFIX$1"; }
conc_int() { echo "198.18.11$1.2"; }      # where the balancer sends it
conc_direct() { echo "198.18.100.1$1"; }  # its own, announced address
cpe_up() { echo "198.18.$((20 + 2 * $1 + $2)).2"; }  # cpe_up J PATH

new_ns() {
  ip netns add "$1" && TB_NAMESPACES+=("$1") && ip -n "$1" link set lo up &&
    _tb_sysctls "$1" "$2"
}

# ---------------------------------------------------------------------------------------
# Topology

setup_bal() {
  new_ns "$NS_BAL" 1 && new_ns "$TB_NS_SRV" 0 || return 1
  ip -n "$NS_BAL" link add srv0 type veth peer name eth0 netns "$TB_NS_SRV" &&
    _tb_addr "$NS_BAL" srv0 198.18.4.1/24 2001:db8:4::1/64 &&
    _tb_addr "$TB_NS_SRV" eth0 198.18.4.2/24 2001:db8:4::2/64 &&
    ip -n "$TB_NS_SRV" route add default via 198.18.4.1 &&
    ip -n "$TB_NS_SRV" -6 route add default via 2001:db8:4::1
}

# add_conc K: its namespace, link and routes, and the C flag.
add_conc() {
  local k=$1 ns
  ns=$(conc_ns "$k")
  new_ns "$ns" 0 || return 1
  ip netns exec "$ns" sysctl -qw net.mptcp.allow_join_initial_addr_port=0 || return 1
  ip -n "$NS_BAL" link add "k$k" type veth peer name wan0 netns "$ns" &&
    _tb_addr "$NS_BAL" "k$k" "198.18.11$k.1/24" "2001:db8:11$k::1/64" &&
    _tb_addr "$ns" wan0 "$(conc_int "$k")/24" "2001:db8:11$k::2/64" &&
    ip -n "$ns" addr add "$(conc_direct "$k")/32" dev lo &&
    ip -n "$ns" route add default via "198.18.11$k.1" &&
    ip -n "$NS_BAL" route add "$(conc_direct "$k")/32" via "$(conc_int "$k")"
}

# add_cpe J: cpe and client namespaces, two uplinks to the balancer, TPROXY.
add_cpe() {
  local j=$1 p c t
  p=$(cpe_ns "$j")
  c=$(cli_ns "$j")
  new_ns "$p" 0 && new_ns "$c" 0 || return 1
  ip -n "$c" link add lan0 type veth peer name lan0 netns "$p" &&
    _tb_addr "$c" lan0 "198.18.3$j.2/24" "2001:db8:3$j::2/64" &&
    _tb_addr "$p" lan0 "198.18.3$j.1/24" "2001:db8:3$j::1/64" &&
    ip -n "$c" route add default via "198.18.3$j.1" || return 1
  for t in 0 1; do
    local net=198.18.$((20 + 2 * j + t))
    ip -n "$p" link add "up$t" type veth peer name "c${j}u$t" netns "$NS_BAL" &&
      _tb_addr "$p" "up$t" "$net.2/24" "2001:db8:$((20 + 2 * j + t))::2/64" &&
      _tb_addr "$NS_BAL" "c${j}u$t" "$net.1/24" "2001:db8:$((20 + 2 * j + t))::1/64" &&
      # A subflow bound to an uplink's address leaves on that uplink.
      ip -n "$p" rule add from "$net.2" lookup $((101 + t)) pref $((1001 + t)) &&
      ip -n "$p" route add "$net.0/24" dev "up$t" src "$net.2" table $((101 + t)) &&
      ip -n "$p" route add default via "$net.1" dev "up$t" table $((101 + t)) || return 1
  done
  ip -n "$p" route add default via "198.18.$((20 + 2 * j)).1" dev up0 metric 100 &&
    tb_tproxy_rules "$p"
}

# balance CONC...: the DNAT map over these concentrators (jhash of source address and
# port: a new connection, a new source port, maybe another concentrator).
balance() {
  local map="" i=0 k
  for k in "$@"; do
    map+="${map:+, }$i : $(conc_int "$k")"
    i=$((i + 1))
  done
  ip netns exec "$NS_BAL" nft -f - <<EOF
table ip mpudp_lb
delete table ip mpudp_lb
table ip mpudp_lb {
  chain pre {
    type nat hook prerouting priority dstnat; policy accept;
    ip daddr $VIP tcp dport $PORT dnat to jhash ip saddr . tcp sport mod $# map { $map }
  }
}
EOF
}

# ---------------------------------------------------------------------------------------
# Daemons

[[ -s $TB_DIR/psk ]] || tb_write_psk "$TB_DIR/psk" || exit 1

start_conc() {
  local k=$1
  cat >"$TB_DIR/conc$k.yaml" <<EOF
role: concentrator
log_level: debug
control_socket: "$TB_DIR/conc$k.sock"
concentrator:
  listen: ["0.0.0.0:$PORT"]
  direct_address: $(conc_direct "$k")
auth: {psk_file: "$TB_DIR/psk"}
EOF
  tb_start_daemon "conc$k" "$(conc_ns "$k")" "$TB_DIR/conc$k.yaml" &&
    tb_wait_listen "$(conc_ns "$k")" tcp "$PORT" 1 10 &&
    tb_wait_log "conc$k" 'naming .* as this concentrator' 5
}

start_cpe() {
  local j=$1
  cat >"$TB_DIR/cpe$j.yaml" <<EOF
role: cpe
log_level: debug
control_socket: "$TB_DIR/cpe$j.sock"
cpe:
  concentrator: "$VIP:$PORT"
tunnel:
  keepalive: 1s
paths:
  - {interface: up0, $CPE_PATH_FLAGS}
  - {interface: up1, $CPE_PATH_FLAGS}
auth: {psk_file: "$TB_DIR/psk"}
EOF
  tb_start_daemon "cpe$j" "$(cpe_ns "$j")" "$TB_DIR/cpe$j.yaml" &&
    tb_wait_listen "$(cpe_ns "$j")" udp "$TB_TPROXY_PORT" 1 10
}

# holder J: the concentrator holding CPE J's main session (its initial subflow came in
# through the balancer, to concK's wan0 address); empty if none.
holder() {
  local k
  for k in "${LIVE[@]}"; do
    if ip netns exec "$(conc_ns "$k")" ss -tnH state established \
      "( sport = :$PORT and src $(conc_int "$k") and dst $(cpe_up "$1" 0) )" | grep -q .; then
      echo "$k"
      return 0
    fi
  done
}
_has_holder() { [[ -n $(holder "$1") ]]; }

# direct_subflows K J PATH: established subflows from cpeJ's uplink PATH to concK's direct
# address.
direct_subflows() {
  ip netns exec "$(conc_ns "$1")" ss -tnH state established \
    "( sport = :$PORT and src $(conc_direct "$1") and dst $(cpe_up "$2" "$3") )" | wc -l
}
# Joins (over both uplinks with fullmesh, over the unused one with laminar) and the
# express connection (over up0, the default route).
_session_direct() {
  local n0 n1
  n0=$(direct_subflows "$1" "$2" 0)
  n1=$(direct_subflows "$1" "$2" 1)
  ((n0 >= WANT_UP0 && n1 >= 1))
}

# A steady probe: a datagram every 20 ms for DURATION s; "echoing" at the first echo, then
# JSON with the longest silence between two echoes and the losses.
cat >"$TB_DIR/steady.py" <<'EOF'
import json, socket, sys, time
dest, dur = (sys.argv[1], int(sys.argv[2])), float(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect(dest)
s.setblocking(False)
start = time.monotonic()
nxt, seq, got, last, gap, gap_at = start, 0, set(), None, 0.0, 0.0
while True:
    now = time.monotonic()
    if now - start >= dur + 1.0:
        break
    if now >= nxt and now - start < dur:
        s.send(seq.to_bytes(4, "big") * 16)
        seq += 1
        nxt += 0.02
    try:
        d = s.recv(2048)
        t = time.monotonic()
        if last is not None and t - last > gap:
            gap, gap_at = t - last, last - start
        if last is None:
            print("echoing", flush=True)  # the test cuts nothing before this
        last = t
        got.add(int.from_bytes(d[:4], "big"))
        continue
    except BlockingIOError:
        pass
    time.sleep(0.002)
print(json.dumps({"sent": seq, "echoed": len(got), "max_gap_ms": round(gap * 1000),
                  "gap_at_s": round(gap_at, 2)}))
EOF

fail=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fail=1; }

# ---------------------------------------------------------------------------------------

tb_log "setup: namespaces *-$TB_SUFFIX*, files in $TB_DIR"
setup_bal || exit 1
for k in $(seq 1 "$NCONC"); do add_conc "$k" || exit 1; done
for j in $(seq 1 "$NCPE"); do add_cpe "$j" || exit 1; done
tb_poll 10 _tb_links_ready || { tb_fail "links not ready"; exit 1; }
balance 1 2 3 || exit 1
tb_start_echo || exit 1
LIVE=(1 2 3)
for k in "${LIVE[@]}"; do start_conc "$k" || exit 1; done
grep -q "allow_join_initial_addr_port" "$TB_DIR"/conc*.log &&
  bad "a concentrator warned about allow_join_initial_addr_port though it is 0"
# Where the sysctl is still 1 (the balancer's namespace), the daemon says so.
sed -e "s|conc1.sock|warn.sock|; s|:$PORT\"|:7999\"|; s|direct_address: .*|direct_address: 198.18.4.1|" \
  "$TB_DIR/conc1.yaml" >"$TB_DIR/warn.yaml"
tb_start_daemon warn "$NS_BAL" "$TB_DIR/warn.yaml" &&
  tb_wait_log warn 'allow_join_initial_addr_port is 1' 5 &&
  ok "a concentrator warns when allow_join_initial_addr_port is 1" ||
  bad "no warning about allow_join_initial_addr_port = 1"
tb_stop_daemon warn >/dev/null

# Sessions over two concentrators at least: a CPE that landed where another already is
# starts again (a new connection, a new source port, another hash).
declare -A HOLDER=() MADE=()  # MADE[K]: sessions concK got, tries started again included
for j in $(seq 1 "$NCPE"); do
  for try in $(seq 1 10); do
    start_cpe "$j" || exit 1
    tb_poll 10 _has_holder "$j" || { bad "cpe$j: no session after 10 s"; exit 1; }
    HOLDER[$j]=$(holder "$j")
    MADE[${HOLDER[$j]}]=$((${MADE[${HOLDER[$j]}]:-0} + 1))
    # Its express connection and joins complete before a new try, so the counts below
    # are exact.
    tb_wait_log "cpe$j" "express connection up to $(conc_direct "${HOLDER[$j]}")" 5 || true
    tb_poll 10 _session_direct "${HOLDER[$j]}" "$j" || true
    taken=0
    for i in $(seq 1 $((j - 1))); do [[ ${HOLDER[$i]} == "${HOLDER[$j]}" ]] && taken=1; done
    ((taken && try < 10)) || break
    tb_log "cpe$j landed on conc${HOLDER[$j]} like another CPE: again (try $try)"
    tb_stop_daemon "cpe$j" >/dev/null
  done
  ok "cpe$j: session on conc${HOLDER[$j]}"
done
distinct=$(printf '%s\n' "${HOLDER[@]}" | sort -u | wc -l)
((distinct >= 2)) && ok "sessions on $distinct concentrators" ||
  bad "all sessions on one concentrator"

for j in $(seq 1 "$NCPE"); do
  k=${HOLDER[$j]}
  tb_ns_exec "$(cli_ns "$j")" "$TB_PROBE" --sizes 64,1200 --count 20 "198.18.4.2:$TB_ECHO_PORT" \
    >"$TB_DIR/probe$j.out" 2>&1 && ok "cpe$j: datagrams echoed" ||
    { bad "cpe$j: probe failed"; cat "$TB_DIR/probe$j.out"; }
  if tb_poll 10 _session_direct "$k" "$j"; then
    ok "cpe$j: subflows to conc$k's direct address over up0 ($(direct_subflows "$k" "$j" 0), with the express connection) and up1 ($(direct_subflows "$k" "$j" 1))"
  else
    n0=$(direct_subflows "$k" "$j" 0)
    n1=$(direct_subflows "$k" "$j" 1)
    bad "cpe$j: subflows to the direct address of conc$k: $n0 over up0 ($WANT_UP0 expected, with the express connection), $n1 over up1 (1 expected)"
    ip netns exec "$(conc_ns "$k")" ss -tn
  fi
  n=$(tb_mptcp_max_subflows "$(cpe_ns "$j")")
  ((n >= 1 + JOINS)) && ok "cpe$j: $n subflows on its main connection" ||
    bad "cpe$j: $n subflows, expected $((1 + JOINS)) (the balanced one and the joins)"
  tb_wait_log "cpe$j" "express connection up to $(conc_direct "$k"):$PORT" 5 &&
    ok "cpe$j: express connection to conc$k's direct address" || bad "cpe$j: no express connection"
  if [[ $CPE_PATH_FLAGS == *fullmesh* || $CPE_PATH_FLAGS == *laminar* ]]; then
    grep -q 'paths without fullmesh' "$TB_DIR/cpe$j.log" && bad "cpe$j: warned about fullmesh"
  else
    grep -q 'paths without fullmesh' "$TB_DIR/cpe$j.log" && ok "cpe$j: warns that its paths lack fullmesh"
  fi
  echo "     cpe$j: MPTCP connections (extra subflows): $(ip netns exec "$(cpe_ns "$j")" ss -MtiHn state established | grep -oE '(^| )(subflows:[0-9]+|[0-9.]+:[0-9]+ +[0-9.]+:[0-9]+)' | tr -s ' ' | paste -sd' ')"
done
for k in "${LIVE[@]}"; do
  sessions=${MADE[$k]:-0}
  joins=$(tb_nstat "$(conc_ns "$k")" MPTcpExtMPJoinSynRx)
  notoken=$(tb_nstat "$(conc_ns "$k")" MPTcpExtMPJoinNoTokenFound)
  xc=$(tb_counter "conc$k" express_connects)
  xr=$(tb_counter "conc$k" express_refused)
  echo "     conc$k: sessions $sessions, MPJoinSynRx $joins, MPJoinNoTokenFound $notoken, express_connects $xc, express_refused $xr"
  ((joins >= JOINS * sessions)) || bad "conc$k: $joins joins for $sessions sessions"
  ((sessions > 0 || joins == 0)) || bad "conc$k: joins without a session of its own"
  ((notoken == 0)) || bad "conc$k: a join for a session it does not hold"
  ((xc == sessions)) || bad "conc$k: express_connects $xc, sessions $sessions"
  ((xr == 0)) || bad "conc$k: express connections refused"
done

# Failover: kill the concentrator of cpe1 under a steady probe on every client. It stays
# in the balancer's map: some redials are sent to it and refused.
dead=${HOLDER[1]}
for j in $(seq 1 "$NCPE"); do
  tb_bg "steady$j" "$(cli_ns "$j")" python3 "$TB_DIR/steady.py" 198.18.4.2 "$TB_ECHO_PORT" 8
done
for j in $(seq 1 "$NCPE"); do tb_wait_log "steady$j" '^echoing' 10 || exit 1; done
sleep 1
tb_log "killing conc$dead"
tb_stop "conc$dead" KILL 2 >/dev/null
for j in $(seq 1 "$NCPE"); do tb_poll 12 _tb_gone "${TB_PIDS[steady$j]}"; done
for j in $(seq 1 "$NCPE"); do
  r=$(grep '^{' "$TB_DIR/steady$j.log")
  echo "     cpe$j (was on conc${HOLDER[$j]}): $r"
  gap=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["max_gap_ms"])' "$r")
  lost=$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(d["sent"]-d["echoed"])' "$r")
  if [[ ${HOLDER[$j]} == "$dead" ]]; then
    ((gap <= FAILOVER_BOUND_MS)) && ok "cpe$j: traffic again after $gap ms (bound $FAILOVER_BOUND_MS ms)" ||
      bad "cpe$j: $gap ms without traffic (bound $FAILOVER_BOUND_MS ms)"
  else
    ((lost == 0)) && ok "cpe$j: on a surviving concentrator, nothing lost (longest silence $gap ms)" ||
      bad "cpe$j: lost $lost datagrams though its concentrator lives"
  fi
done
LIVE=()
for k in 1 2 3; do [[ $k == "$dead" ]] || LIVE+=("$k"); done
k=$(holder 1)
[[ -n $k && $k != "$dead" ]] && ok "cpe1: new session on conc$k" || bad "cpe1: no new session"
tb_poll 10 _session_direct "$k" 1 && ok "cpe1: its joins reach conc$k's direct address" ||
  bad "cpe1: no joins to conc$k's direct address after failover"

# A new concentrator in the map (the dead one out, as an operator or a health check
# would): new sessions reach it. Round-robin (numgen) so that three new sessions in a
# row cover all three.
add_conc 4 && tb_poll 10 _tb_links_ready && start_conc 4 || exit 1
LIVE+=(4)
map="0 : $(conc_int "${LIVE[0]}"), 1 : $(conc_int "${LIVE[1]}"), 2 : $(conc_int 4)"
ip netns exec "$NS_BAL" nft -f - <<EOF || exit 1
delete table ip mpudp_lb
table ip mpudp_lb {
  chain pre {
    type nat hook prerouting priority dstnat; policy accept;
    ip daddr $VIP tcp dport $PORT dnat to numgen inc mod 3 map { $map }
  }
}
EOF
reached=0
for try in 1 2 3; do
  tb_stop_daemon cpe2 >/dev/null
  start_cpe 2 || exit 1
  tb_poll 10 _has_holder 2 || continue
  if [[ $(holder 2) == 4 ]]; then reached=1; break; fi
done
if ((reached)); then
  ok "conc4 takes a new session (try $try)"
  tb_ns_exec "$(cli_ns 2)" "$TB_PROBE" --sizes 64 --count 10 "198.18.4.2:$TB_ECHO_PORT" \
    >/dev/null 2>&1 && ok "cpe2: datagrams echoed through conc4" || bad "cpe2: no echo through conc4"
  tb_poll 10 _session_direct 4 2 && ok "cpe2: joins reach conc4's direct address" ||
    bad "cpe2: no joins to conc4's direct address"
else
  bad "conc4 took none of three new sessions"
fi

# A concentrator that vanishes silently (its link cut: no RST, no FIN): its CPE notices by
# its keepalives, and redials hashed to it go unanswered.
k=$(holder 1)
other=$(holder 2)
if [[ -n $k && $k != "$other" ]]; then
  for j in 1 2; do
    tb_bg "quiet$j" "$(cli_ns "$j")" python3 "$TB_DIR/steady.py" 198.18.4.2 "$TB_ECHO_PORT" 16
  done
  for j in 1 2; do tb_wait_log "quiet$j" '^echoing' 10 || exit 1; done
  sleep 1
  tb_log "cutting conc$k off"
  ip -n "$(conc_ns "$k")" link set wan0 down
  for j in 1 2; do tb_poll 20 _tb_gone "${TB_PIDS[quiet$j]}"; done
  r=$(grep '^{' "$TB_DIR/quiet1.log")
  echo "     cpe1 (was on conc$k, cut off): $r"
  gap=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["max_gap_ms"])' "$r")
  ((gap <= SILENT_BOUND_MS)) && ok "cpe1: traffic again $gap ms after its concentrator vanished (bound $SILENT_BOUND_MS ms)" ||
    bad "cpe1: $gap ms without traffic after its concentrator vanished (bound $SILENT_BOUND_MS ms)"
  r=$(grep '^{' "$TB_DIR/quiet2.log")
  lost=$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(d["sent"]-d["echoed"])' "$r")
  ((lost == 0)) && ok "cpe2: on conc$other, nothing lost" || bad "cpe2: lost $lost datagrams on conc$other"
  LIVE=("${LIVE[@]/$k/}")
  tb_stop "conc$k" KILL 2 >/dev/null
else
  bad "cpe1 and cpe2 share a concentrator before the silent failure"
fi

for j in $(seq 1 "$NCPE"); do tb_stop_daemon "cpe$j" || bad "cpe$j exited non-zero"; done
for k in "${LIVE[@]}"; do
  [[ -n $k ]] || continue
  tb_stop_daemon "conc$k" || bad "conc$k exited non-zero"
done
((fail)) && exit 1
echo "PASS: sessions spread over concentrators behind one balanced address, joins and express connections reach their own, failover and a new concentrator work"

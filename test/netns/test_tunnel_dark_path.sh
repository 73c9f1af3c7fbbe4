#!/usr/bin/env bash
# A light flow across an uplink that goes dark (issue 20, part 3): a "call" of 50
# datagrams/s × 160 B through the tunnel (multiplexed, TLS: it rides the express
# connection), path 0 at 20 ms one way and path 1 at 40 ms, then path 0 dark for 3 s.
# test/netns/callprobe.py times every datagram one way in each direction and tells from
# its delay which path carried it. Reported, per direction: datagrams not delivered within
# 150 ms ("late"), the longest gap at the receiver, when the call was on time again, when
# it was back on path 0 after the outage; the kernel's MPTCP counters that moved.
#
# Three runs, each with fresh daemons:
#  1. the default configuration (tunnel.path_recovery: kernel): both connections (main
#     and express) have a subflow on each path; nothing is lost and the call recovers at
#     the latest shortly after the path returns (no gap longer than the outage and 1.5 s).
#     When it is back on path 0, and whether datagrams sent after the outage's window
#     come late, depends on where the stale subflow's backed-off retransmission timer
#     stands when the path returns: reported only. Taking path 0 back is the kernel's
#     scheduler's choice in both runs: a light flow leaves both subflows idle, their
#     "linger times" tie, and the first in its list wins; reported only in both.
#     Measured on a 2-core host: 169-243 datagrams late in all, longest gap 1.3-2.7 s;
#  2. tunnel.path_recovery: fast on both daemons: they set the namespaces' settings while
#     they run and put them back when they stop, and the stall is bounded: at most 25
#     datagrams sent outside the outage late per direction, at most 150
#     datagrams late in all and no gap over 1.5 s. Measured: 45-126 late, longest gap
#     0.43-1.13 s (6 runs); the bounds leave room for a loaded CI host, and the late
#     count is what the defaults never got under (169 at best);
#  3. tunnel.copies on both daemons (redundant delivery, kernel's recovery settings): a
#     plain TCP carrier per uplink, the call on both; the copy on path 1 carries it
#     through the outage: at most 10 late in all, no gap over 400 ms, duplicates dropped
#     on both sides and first copies counted on both carriers; path 0's carrier stalls
#     in the outage and the spares (tunnel.copy_spares) take its copies. Measured: 0
#     late, 36 ms.
#
# Environment, for measuring rather than testing (docs/CONFIG.md has the numbers):
# DARK_RUNS ("kernel fast copies": which runs), DARK_SYSCTL ("net.mptcp.stale_loss_cnt=1 ...",
# set in cpe and conc before the daemons start), DARK_FOR (3 s), DARK_BULK (1: bulk beside
# the call, DARK_BULK_MBIT, 150, uplinks shaped to DARK_SHAPE, 50mbit, or none; reported,
# not asserted), DARK_ASSERT (0: report only).
set -u
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/delay_lib.sh"
tb_require_root_and_tools
tb_require_built daemon/mpudpd daemon/mpudpctl tools/udpecho tools/udpload
tb_path_require
[[ -e /proc/sys/net/mptcp/stale_loss_cnt ]] ||
  { echo "[tb] SKIP: the kernel has no net.mptcp.stale_loss_cnt" >&2; exit 4; }
CALL=$(dirname "$0")/callprobe.py
LOAD=$MPUDP_BUILD/tools/udpload
BULK=${DARK_BULK:-0}
DARK_FOR=${DARK_FOR:-3}
ASSERT=${DARK_ASSERT:-1}
((BULK)) && ASSERT=0
FAST_MS=20
SLOW_MS=40
RECOVERY_KEYS=(net.mptcp.stale_loss_cnt net.ipv4.tcp_thin_linear_timeouts net.ipv4.tcp_rto_min_us)

tb_setup || exit 1
tb_tproxy_rules || exit 1
tb_start_echo || exit 1
for ns in cpe conc; do
  for kv in ${DARK_SYSCTL:-}; do
    tb_ns_exec "$ns" sysctl -qw "$kv" || { tb_fail "sysctl $kv"; exit 1; }
  done
done
tb_bg callecho srv python3 -u "$CALL" echo "$TB_SRV4" 9
tb_poll 5 grep -qs ready "$TB_DIR/callecho.log" || { tb_fail "callprobe echo did not start"; exit 1; }
tb_path_delay 0 "$FAST_MS" || exit 1
tb_path_delay 1 "$SLOW_MS" || exit 1
if ((BULK)) && [[ ${DARK_SHAPE:-50mbit} != none ]]; then
  tb_shape_uplinks "${DARK_SHAPE:-50mbit}" || exit 1
fi
fail=0
declare -A RUN_SETTINGS=()

# recovery_settings NS: the three settings tunnel.path_recovery: fast changes, on a line.
recovery_settings() {
  local k out=
  for k in "${RECOVERY_KEYS[@]}"; do out+="$(tb_ns_exec "$1" sysctl -n "$k") "; done
  echo "${out% }"
}
nstat_all() {  # NS FILE
  tb_ns_exec "$1" env NSTAT_HISTORY=/dev/null nstat -asz |
    grep -E 'MPTcpExt|TcpExtTCPTimeouts|TcpRetransSegs' >"$2"
}

# outage RUN: daemons up (with the run's configuration), a call across path 0's outage,
# daemons stopped; $TB_DIR/outage-RUN.json has callprobe.py's verdict.
outage() {
  local run=$1 yaml='' call_pid bulk_pid t_dark t_light side
  local cpe_yaml
  [[ $run == fast ]] && yaml=$'tunnel:\n  path_recovery: fast'
  [[ $run == copies ]] && yaml=$'tunnel:\n  copies: true'
  cpe_yaml=$yaml
  [[ $run == copies ]] && cpe_yaml+=$'\npaths:\n  - interface: up0\n  - interface: up1'
  TB_CPE_EXTRA=$cpe_yaml TB_CONC_EXTRA=$yaml tb_start_proxies multiplexed || return 1
  tb_wait_log cpe "express connection up" 10 || return 1
  if [[ $run == copies ]]; then
    tb_wait_log cpe "copy carrier up to .* over up0" 10 || return 1
    tb_wait_log cpe "copy carrier up to .* over up1" 10 || return 1
    tb_wait_log cpe "spare copy carrier up to .* over up0" 10 || return 1
    tb_wait_log cpe "spare copy carrier up to .* over up1" 10 || return 1
  fi
  tb_wait_subflows cpe 2 10 || return 1
  sleep 1.5  # the express connection's second subflow
  tb_ctl cpe status --json >"$TB_DIR/status-$run.json" || fail=1
  if [[ $run == copies ]]; then
    tb_check "$TB_DIR/status-$run.json" <<PY
ks = carriers("status-$run")
need(sorted((k["carrier_interface"], k["copy_spare"]) for k in ks) ==
     [("up0", False), ("up0", True), ("up1", False), ("up1", True)] and
     all(k["state"] == "open" and not k["mptcp"] and not k["stalled"] for k in ks),
     f"copies: a plain TCP carrier and a spare on each uplink: "
     f"{[(k['carrier_interface'], k['copy_spare'], k['state'], k['mptcp']) for k in ks]}")
PY
  fi
  tb_check "$TB_DIR/status-$run.json" <<PY
for express in (False, True):
    cs = conns("status-$run", express)
    need(len(cs) == 1 and {s["interface"] for s in cs[0]["subflows"]} == {"up0", "up1"},
         f"$run: {'express' if express else 'main'} connection has a subflow on each path: "
         f"{[[s['interface'] for s in c['subflows']] for c in cs]}")
PY
  for side in cpe conc; do
    RUN_SETTINGS[$side]=$(recovery_settings "$side")
    echo "$run: $side settings (${RECOVERY_KEYS[*]}): ${RUN_SETTINGS[$side]}"
    nstat_all "$side" "$TB_DIR/nstat-$side-$run-0"
  done

  tb_cli python3 "$CALL" call "$TB_SRV4" 9 50 160 $((DARK_FOR + 9)) 8 >"$TB_DIR/call-$run.json" &
  call_pid=$!
  if ((BULK)); then
    tb_cli "$LOAD" --json --size 1200 --mbit "${DARK_BULK_MBIT:-150}" --duration $((DARK_FOR + 8)) \
      --timeout 2000 "$TB_SRV4:$TB_ECHO_PORT" >"$TB_DIR/bulk-$run.json" 2>/dev/null &
    bulk_pid=$!
  fi
  sleep 4
  t_dark=$EPOCHREALTIME
  tb_path_dark 0 || return 1
  sleep "$DARK_FOR"
  t_light=$EPOCHREALTIME
  tb_path_light 0 || return 1
  wait "$call_pid" || fail=1
  if ((BULK)); then wait "$bulk_pid" || fail=1; fi
  for side in cpe conc; do nstat_all "$side" "$TB_DIR/nstat-$side-$run-1"; done
  for side in cpe conc; do
    tb_ctl "$side" status --json >"$TB_DIR/end-$side-$run.json" || fail=1
  done
  tb_stop_proxies || fail=1

  python3 "$CALL" outage "$TB_DIR/call-$run.json" "$t_dark" "$t_light" "$FAST_MS" "$SLOW_MS" \
    >"$TB_DIR/outage-$run.json" || return 1
  echo "$run: $(cat "$TB_DIR/outage-$run.json")"
  if ((BULK)); then
    python3 -c 'import json, sys
b = json.load(open(sys.argv[1]))
print("bulk: sent", b["sent"], "lost", b["lost"], "goodput_mbit", b["goodput_mbit"])' \
      "$TB_DIR/bulk-$run.json"
  fi
  for side in cpe conc; do
    echo "$run: $side counters that moved: $(join -a 2 -e 0 -o 2.1,1.2,2.2 \
      "$TB_DIR/nstat-$side-$run-0" "$TB_DIR/nstat-$side-$run-1" |
      awk '$3 != $2 { printf "%s %d ", $1, $3 - $2 }')"
  done
}

for run in ${DARK_RUNS:-kernel fast copies}; do
  echo "--- $run"
  before_cpe=$(recovery_settings cpe)
  before_conc=$(recovery_settings conc)
  outage "$run" || exit 1
  ((ASSERT)) || continue
  if [[ $run == fast ]]; then
    # The daemons set the settings while they ran and put them back when they stopped.
    for side in cpe conc; do
      grep -q "tunnel.path_recovery: net.mptcp.stale_loss_cnt .* -> 1" "$TB_DIR/$side.log" ||
        { echo "FAIL fast: $side did not set net.mptcp.stale_loss_cnt"; fail=1; }
    done
    for side in cpe conc; do
      [[ ${RUN_SETTINGS[$side]} == "1 1 50000" ]] ||
        { echo "FAIL fast: $side ran with ${RUN_SETTINGS[$side]}, not 1 1 50000"; fail=1; }
    done
    [[ $(recovery_settings cpe) == "$before_cpe" && $(recovery_settings conc) == "$before_conc" ]] ||
      { echo "FAIL fast: settings not put back ($(recovery_settings cpe) / $(recovery_settings conc))"; fail=1; }
    # Back on path 0 is reported here too: in one CI run of four the fast run's upstream
    # stayed on path 1 for the 5 s the call had left (see below).
    # Datagrams sent after the outage's window may still come late while the kernel takes
    # path 0 back (13 downstream in one CI run, its subflow back 1.4 s after the path):
    # at most 25 per direction, half a second of the call.
    max_gap=1500 max_late=150 max_back= strict_on_time=25
  elif [[ $run == copies ]]; then
    # Every datagram of the call goes on both carriers: while path 0 is dark the copy on
    # path 1 is the one delivered, 20 ms later than usual, with nothing to wait for.
    # Measured: 0 late, longest gap 35-36 ms; the bounds leave room for a loaded host.
    max_gap=400 max_late=10 max_back= strict_on_time=10
    tb_check "$TB_DIR/end-cpe-$run.json" "$TB_DIR/end-conc-$run.json" <<PY
for side, other in (("cpe", "conc"), ("conc", "cpe")):
    st = d[f"end-{side}-$run"]
    dup = counter(f"end-{side}-$run", "duplicates_dropped")
    sent = counter(f"end-{other}-$run", "duplicates_tx")
    need(dup > 0 and dup <= sent, f"copies, {side}: {dup} duplicates dropped of {sent} sent")
    firsts = {k["carrier_interface"] or k["peer"]: k["first_arrivals"]
              for k in carriers(f"end-{side}-$run") if not k["copy_spare"]}
    need(len(firsts) == 2 and all(v > 0 for v in firsts.values()),
         f"copies, {side}: first copies arrived on both uplinks' carriers: {firsts}")
    # Path 0 dark: its carrier stalled (TCP's timer fired), got no more copies, and the
    # spares took them meanwhile.
    stalled, spared = counter(f"end-{side}-$run", "copies_stalled"), counter(f"end-{side}-$run", "spare_copies_tx")
    need(stalled > 0 and spared > 0,
         f"copies, {side}: a stalled carrier skipped ({stalled} copies) and spares used ({spared})")
    balance(side, st)
need(counter("end-conc-$run", "tunnel_fallbacks") == 0,
     f"copies: the carriers (plain TCP on purpose) are no fallback at the concentrator: "
     f"tunnel_fallbacks {counter('end-conc-$run', 'tunnel_fallbacks')}")
PY
  else
    # The kernel alone takes path 0 back at its subflow's next retransmission, whose
    # timer backed off during the outage (to 1.6 s or 3.2 s from a 200 ms floor): after
    # 1 s in one run, not within the 5 s the call has left in another. Reported only.
    # Datagrams that waited on path 0's stale subflow until that retransmission come late
    # after the outage's window too (3 down, in a CI run): reported as well.
    max_gap=$((DARK_FOR * 1000 + 1500)) max_late= max_back= strict_on_time=
  fi
  tb_check "$TB_DIR/outage-$run.json" <<PY
o = d["outage-$run"]
for k in ("up", "down"):
    x = o[k]
    need(x["lost"] == 0, f"$run, {k}: none lost ({x['lost']})")
    if "$strict_on_time":
        need(x["late"] - x["late_in_outage"] <= int("$strict_on_time" or 0),
             f"$run, {k}: datagrams sent outside the outage late: {x['late'] - x['late_in_outage']} "
             f"(at most $strict_on_time)")
    else:
        print(f"     $run, {k}: {x['late'] - x['late_in_outage']} datagrams sent outside the outage late")
    need(x["gap_ms"] is not None and x["gap_ms"] <= $max_gap,
         f"$run, {k}: longest gap {x['gap_ms']} ms (at most $max_gap)")
    if "$max_back":
        need(x["back_ms"] is not None and x["back_ms"] <= int("$max_back" or 0),
             f"$run, {k}: back on path 0 {x['back_ms']} ms after it returned")
    else:
        print(f"     $run, {k}: back on path 0 {x['back_ms']} ms after it returned")
late = o["up"]["late"] + o["down"]["late"]
if "$max_late":
    need(late <= int("$max_late" or 0), f"$run: {late} datagrams late in all (at most $max_late)")
else:
    print(f"     $run: {late} datagrams late in all")
PY
done
((fail)) && exit 1
echo "PASS: test_tunnel_dark_path"

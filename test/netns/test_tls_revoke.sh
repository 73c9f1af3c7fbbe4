#!/usr/bin/env bash
# Revocation by reload cuts that CPE only (issue 18; docs/CONFIG.md "auth", the reload
# paragraph). Two CPEs with identities of their own (home-a in cpe, home-b in cpe2) both
# carry a steady flow; then CPE A is removed from the concentrator's peers file (per-CPE
# keys), or its certificate goes into the CRL (certificates), and `mpudpctl reload`:
#  - A's session is closed within a second of the reload (log "no longer accepted after
#    reload", counter tls_revoked) and A cannot come back (refused, both sides log why);
#  - B's flow loses nothing across the reload, on the same tunnel connection.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/tls_lib.sh"
tb_require_root_and_tools
tls_require_openssl
tb_require_built daemon/mpudpd daemon/mpudpctl tools/udpecho tools/udpprobe tools/udpload
LOAD=$MPUDP_BUILD/tools/udpload
RATE=200       # datagrams per second in each flow
DURATION=10    # seconds of flow; the reload comes 2 s in (on a loaded machine the
               # steps before it took 5 s: the flow must outlast them)

fail=0
bad() { echo "FAIL: $*" >&2; fail=1; }

tb_setup || exit 1
# The metrics name each CPE's identity too (docs/CONTROL.md).
export TB_CONC_EXTRA='metrics_listen: 9464'
metrics() {
  tb_conc python3 -c 'import urllib.request; print(urllib.request.urlopen("http://127.0.0.1:9464/metrics", timeout=5).read().decode())'
}
tb_tproxy_rules || exit 1
tb_add_cpe2 || exit 1
tb_start_echo || exit 1
tls_ca ca && tls_cert ca conc conc && tls_cert ca home-a cpe && tls_cert ca home-b cpe || exit 1

# revocation MODE: one round, per-CPE keys (psk) or certificates (cert).
revocation() {
  # fail counts this round's checks; the rounds before are in `before`.
  local mode=$1 before=$fail
  fail=0
  echo "--- $mode"
  if [[ $mode == psk ]]; then
    tls_peers "$TB_DIR/peers" home-a home-b || exit 1
    TB_CONC_AUTH="{peers_file: \"$TB_DIR/peers\"}"
    TB_CPE_AUTH=$(tls_psk_auth home-a)
    TB_CPE2_AUTH=$(tls_psk_auth home-b)
    refusal="unknown identity"
  else
    TB_CONC_AUTH=$(tls_cert_auth ca conc)
    TB_CPE_AUTH=$(tls_cert_auth ca home-a)
    TB_CPE2_AUTH=$(tls_cert_auth ca home-b)
    refusal="certificate revoked"
  fi
  export TB_CONC_AUTH TB_CPE_AUTH TB_CPE2_AUTH
  tb_start_proxies multiplexed || exit 1
  tb_start_cpe2 || exit 1
  tb_wait_log cpe "tunnel up" 10 && tb_wait_log cpe2 "tunnel up" 10 || exit 1
  tb_ctl conc status --json >"$TB_DIR/$mode-before.json" || bad "$mode: conc status"

  # The revocation is written first (openssl ca is slow on a busy machine) and takes
  # effect at the reload only: the daemon reads these files at start and on reload.
  if [[ $mode == psk ]]; then
    tls_peers "$TB_DIR/peers" home-b || exit 1
  else
    tls_revoke ca home-a || exit 1
  fi
  # Both flows, then the reload two seconds in.
  local ta
  ta=$(_tb_now_us)
  tb_cli "$LOAD" --json --size 200 --rate "$RATE" --duration "$DURATION" --timeout 1000 \
    198.18.4.2:7 >"$TB_DIR/$mode-a.json" 2>"$TB_DIR/$mode-a.err" &
  local pid_a=$!
  tb_ns_exec cli2 "$LOAD" --json --size 200 --rate "$RATE" --duration "$DURATION" \
    --timeout 1000 198.18.4.2:7 >"$TB_DIR/$mode-b.json" 2>"$TB_DIR/$mode-b.err" &
  local pid_b=$!
  sleep 2
  local mark revoked0 t0 t1
  mark=$(tls_log_mark conc)
  revoked0=$(tb_counter conc tls_revoked) || bad "$mode: conc counters"
  metrics >"$TB_DIR/$mode-metrics-before.txt" || bad "$mode: GET /metrics"
  local who
  for who in home-a home-b; do
    grep -Eq "^mpudp_tunnel_connections\{identity=\"$who\"\} [1-9]" "$TB_DIR/$mode-metrics-before.txt" ||
      bad "$mode: metrics: no tunnel_connections for $who"
    grep -Eq "^mpudp_tenant_bindings\{tenant=\"id:$who\"\} [1-9]" "$TB_DIR/$mode-metrics-before.txt" ||
      bad "$mode: metrics: no tenant_bindings for id:$who"
  done
  t0=$(_tb_now_us)
  tb_ctl conc reload >/dev/null || bad "$mode: reload"
  if tb_poll 2 _tls_log_after_has conc "$mark" \
    "session [0-9]+ \(home-a\): no longer accepted after reload; closing"; then
    t1=$(_tb_now_us)
    echo "ok   $mode: A's session closed $(((t1 - t0) / 1000)) ms after the reload was sent"
    ((t1 - t0 <= 1000000)) || bad "$mode: A's session closed $(((t1 - t0) / 1000)) ms after the reload (> 1 s)"
  else
    bad "$mode: no \"no longer accepted after reload\" line for home-a within 2 s"
    tail -n "+$((mark + 1))" "$TB_DIR/conc.log" | tail -n 15 >&2
  fi
  # A tries again and is refused: both ends say why.
  tls_wait_log_after conc "$mark" "session [0-9]+ from .*: TLS failed: .*$refusal" 5 ||
    bad "$mode: the concentrator did not log A's refusal ($refusal)"
  tb_wait_log cpe "tunnel to .*: TLS failed: .*$refusal" 5 ||
    bad "$mode: CPE A did not log its refusal ($refusal)"
  wait "$pid_a"
  wait "$pid_b" || bad "$mode: B's udpload failed"
  tb_ctl conc status --json >"$TB_DIR/$mode-after.json" || bad "$mode: conc status"
  metrics >"$TB_DIR/$mode-metrics-after.txt" || bad "$mode: GET /metrics"
  grep -q 'identity="home-a"' "$TB_DIR/$mode-metrics-after.txt" &&
    bad "$mode: metrics still show a connection of home-a"
  tb_check "$TB_DIR/$mode-before.json" "$TB_DIR/$mode-after.json" "$TB_DIR/$mode-a.json" \
    "$TB_DIR/$mode-b.json" <<PY
mode, revoked0 = "$mode", $revoked0
before, after, a, b = d[mode + "-before"], d[mode + "-after"], d[mode + "-a"], d[mode + "-b"]
def ids(s, ident):
    return sorted(c["id"] for c in s["connections"] if c.get("identity") == ident)
need(ids(before, "home-a") and ids(before, "home-b"),
     f"before the reload the concentrator serves home-a {ids(before, 'home-a')} and home-b {ids(before, 'home-b')}")
need(b["sent"] >= $RATE * $DURATION * 9 // 10 and b["echoed"] == b["sent"],
     f"B's flow across the reload: {b['echoed']} of {b['sent']} echoed")
need(ids(after, "home-b") == ids(before, "home-b"),
     f"B kept its tunnel connections {ids(before, 'home-b')} ({ids(after, 'home-b')} now)")
need(not ids(after, "home-a"), f"A has no connection left ({ids(after, 'home-a')})")
# Everything A sent after its session closed is lost: the flow's remaining time after
# the close (measured, the machine may be slow), less a margin for timer slack.
left = $DURATION - (${t1:-0} - $ta) / 1e6
need(left > 1 and a["lost"] >= $RATE * (left - 0.5),
     f"A's flow stopped at the reload: {a['lost']} of {a['sent']} lost ({left:.1f} s of flow after the close)")
c = after["stats"]["counters"]
need(c["tls_revoked"] > revoked0, f"tls_revoked counted it ({revoked0} -> {c['tls_revoked']})")
need(c["tls_handshake_failures"] >= 1, f"A's attempts to return are handshake failures ({c['tls_handshake_failures']})")
PY
  grep -E "tunnel to .* (lost|closed)" "$TB_DIR/cpe2.log" | grep -v 'express' &&
    bad "$mode: CPE B lost its tunnel"
  # A stays out: nothing of its datagrams gets through now.
  if tb_cli "$TB_PROBE" --sizes 64 --count 3 --timeout 1000 --min-ok 0.01 198.18.4.2:7 \
    >"$TB_DIR/$mode-a-after.log" 2>&1; then
    bad "$mode: CPE A's datagrams get through after its revocation"
  fi
  tb_stop_proxies || bad "$mode: a daemon exited non-zero"
  ((fail == 0)) && echo "ok   $mode: A revoked by reload, B untouched"
  fail=$((before | fail))
}

revocation psk
revocation cert

((fail == 0)) || exit 1
echo "PASS: test_tls_revoke"

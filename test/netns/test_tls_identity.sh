#!/usr/bin/env bash
# Each CPE its own identity (issue 18; docs/CONFIG.md "auth", docs/PROTOCOL.md "TLS
# layer"), with real daemons:
#  1. Per-CPE keys: a concentrator with a peers file. The right identity and key carry
#     datagrams (both session modes), and `mpudpctl status` names the identity on both
#     sides. An identity not in the peers file, the right identity with another key, and
#     a cleartext CPE (encryption: none) are refused: nothing reaches the server, nothing
#     is bound, the handshake failure is counted, and both daemons log a line that names
#     the cause.
#  2. With `encryption: {accept_cleartext: true}` the cleartext CPE is served (and a TLS
#     CPE still is).
#  3. Certificates from a CA made here with the openssl CLI (CPE certificates clientAuth,
#     the concentrator's serverAuth, a CRL): the right certificate carries datagrams with
#     its name as identity; an expired one, a revoked one and one from another CA are
#     refused the same way.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/tls_lib.sh"
tb_require_root_and_tools
tls_require_openssl
tb_require_built daemon/mpudpd daemon/mpudpctl tools/udpecho tools/udpprobe

fail=0
bad() { echo "FAIL: $*" >&2; fail=1; }

tb_setup || exit 1
tb_tproxy_rules || exit 1
tb_start_echo || exit 1

# Identities: keys for home-a and home-b in the peers file, one for a stranger, and a
# second key under home-a's name.
tls_peers "$TB_DIR/peers" home-a home-b || exit 1
tls_psk stranger && tb_write_psk "$TB_DIR/home-a-other.psk" || exit 1
# A CA with the concentrator's certificate and CPE certificates: good, expired (valid
# for January 2020), revoked; and a CPE certificate from a CA the concentrator does not
# know.
tls_ca ca && tls_ca other || exit 1
tls_cert ca conc conc && tls_cert ca home-a cpe && tls_cert ca home-rev cpe &&
  tls_cert ca home-old cpe 20200101000000Z 20200201000000Z &&
  tls_cert other home-evil cpe && tls_revoke ca home-rev || exit 1

probe() { tb_cli "$TB_PROBE" --sizes 1,512 --count 3 --timeout 1500 "$@" 198.18.4.2:7; }

# status_json NAME FILE: `mpudpctl status --json` of daemon NAME into $TB_DIR/FILE.json.
status_json() { tb_ctl "$1" status --json >"$TB_DIR/$2.json" || bad "status of $1"; }

# start_conc MODE: (re)start the concentrator with TB_CONC_AUTH and TB_CONC_EXTRA.
start_conc() {
  if tb_running conc; then tb_stop_daemon conc || bad "conc exited non-zero"; fi
  TB_CPE_AUTH=none tb_write_configs "$1" || exit 1
  tb_start_daemon conc conc "$TB_DIR/conc.yaml" || exit 1
  tb_wait_listen conc tcp "$TB_CONC_PORT" 1 10 ||
    { tb_fail "concentrator did not start"; tail -n 20 "$TB_DIR/conc.log" >&2; exit 1; }
}

# start_cpe MODE AUTH [EXTRA]: (re)start the CPE with that auth value (and YAML appended).
start_cpe() {
  if tb_running cpe; then tb_stop_daemon cpe || bad "cpe exited non-zero"; fi
  TB_CPE_AUTH=$2 TB_CPE_EXTRA=${3:-} tb_write_configs "$1" || exit 1
  tb_start_daemon cpe cpe "$TB_DIR/cpe.yaml" || exit 1
  tb_wait_listen cpe udp "$TB_TPROXY_PORT" 1 10 ||
    { tb_fail "CPE did not start"; tail -n 20 "$TB_DIR/cpe.log" >&2; exit 1; }
}

# accepted NAME MODE AUTH EXTRA IDENTITY [CONC_NAME]: the CPE carries datagrams, and the
# concentrator's status names the CPE's IDENTITY (empty: a cleartext CPE, which has
# none); with certificates the CPE's names the concentrator's certificate (CONC_NAME).
accepted() {
  # fail counts this case's checks (an early return leaves it set); the cases before
  # are in `before`.
  local name=$1 mode=$2 auth=$3 extra=$4 identity=$5 conc_name=${6:-} before=$fail mark
  fail=0
  mark=$(tls_log_mark conc)
  start_cpe "$mode" "$auth" "$extra"
  probe --ports 4 >"$TB_DIR/probe-$name.log" 2>&1 ||
    { bad "$name: datagrams lost"; cat "$TB_DIR/probe-$name.log" >&2; }
  status_json conc "conc-$name"
  status_json cpe "cpe-$name"
  tb_check "$TB_DIR/conc-$name.json" "$TB_DIR/cpe-$name.json" <<PY
ident, conc_name, name = "$identity", "$conc_name", "$name"
def ids(side):
    return sorted({c.get("identity", "<no identity key>") for c in d[side + "-" + name]["connections"]})
need(ids("conc") and all(i == ident for i in ids("conc")) if ident else
     all(i in ("", None, "<no identity key>") or ":" in i for i in ids("conc")),
     f"concentrator: its tunnel connections name {ident or 'no identity (an address at most)'}: {ids('conc')}")
if conc_name:
    need(ids("cpe") == [conc_name], f"CPE: its tunnel connection names the concentrator {conc_name}: {ids('cpe')}")
if ident and "$mode" == "multiplexed":
    # A CPE just started holds no session ticket: its one session is a full handshake.
    # (An external PSK is no resumption, though OpenSSL's SSL_session_reused says so.)
    r = [c["tls"]["resumed"] for c in d["conc-" + name]["connections"] if not c["express_connection"]]
    need(r == [False], f"concentrator: the CPE's first session is not a resumption ({r})")
PY
  if [[ -n $identity ]] && ! _tls_log_after_has conc "$mark" "peer=$identity"; then
    bad "$name: no concentrator log line carries peer=$identity"
  fi
  ((fail == 0)) && echo "ok   $name: accepted${identity:+ as $identity}"
  fail=$((before | fail))
}

# refused NAME AUTH EXTRA CPE_REGEX CONC_REGEX: the CPE (multiplexed) gets no datagram
# through: the concentrator delivers nothing to the server and binds nothing, counts a
# handshake failure, and both daemons log the cause.
refused() {
  local name=$1 auth=$2 extra=$3 cpe_re=$4 conc_re=$5 before=$fail mark c wan0 bound0 hs0
  fail=0
  mark=$(tls_log_mark conc)
  c=$(conc_counters) || { bad "$name: conc counters"; return; }
  read -r wan0 bound0 hs0 <<<"$c"
  start_cpe multiplexed "$auth" "$extra"
  if probe --min-ok 0.01 >"$TB_DIR/probe-$name.log" 2>&1; then
    bad "$name: datagrams got through"
  fi
  tb_wait_log cpe "$cpe_re" 5 || bad "$name: the CPE did not log /$cpe_re/"
  tls_wait_log_after conc "$mark" "$conc_re" 5 || bad "$name: the concentrator did not log /$conc_re/"
  local wan bound hs
  c=$(conc_counters) || { bad "$name: conc counters"; return; }
  read -r wan bound hs <<<"$c"
  ((wan == wan0)) || bad "$name: the concentrator sent $((wan - wan0)) datagrams to the server"
  ((bound == bound0)) || bad "$name: the concentrator created $((bound - bound0)) bindings"
  if [[ $conc_re == *TLS* ]]; then
    ((hs > hs0)) || bad "$name: tls_handshake_failures did not grow ($hs0 -> $hs)"
  fi
  tb_stop_daemon cpe || bad "$name: cpe exited non-zero"
  if ((fail == 0)); then
    echo "ok   $name: refused; CPE: $(grep -Em1 -- "$cpe_re" "$TB_DIR/cpe.log" | cut -c1-160)"
    echo "     concentrator: $(tail -n "+$((mark + 1))" "$TB_DIR/conc.log" | grep -Em1 -- "$conc_re" | cut -c1-160)"
  fi
  fail=$((before | fail))
}

# conc_counters: "WAN_TX_DATAGRAMS BINDINGS_CREATED TLS_HANDSHAKE_FAILURES" of the
# concentrator.
conc_counters() {
  tb_ctl conc status --json | python3 -c 'import json, sys
c = json.load(sys.stdin)["stats"]["counters"]
print(c["wan_tx_datagrams"], c["bindings_created"], c["tls_handshake_failures"])'
}

cpe_tls() { echo "tunnel to .*: TLS failed: .*$1"; }
conc_tls() { echo "session [0-9]+ from .*: TLS failed: .*$1"; }

# --- 1. per-CPE keys --------------------------------------------------------------------
TB_CONC_AUTH="{peers_file: \"$TB_DIR/peers\"}"
TB_CONC_EXTRA=
start_conc multiplexed
accepted psk multiplexed "$(tls_psk_auth home-a)" "" home-a
start_conc per-binding
accepted psk-per-binding per-binding "$(tls_psk_auth home-a)" "" home-a
start_conc multiplexed
refused unknown-identity "$(tls_psk_auth stranger)" "" \
  "$(cpe_tls "unknown identity")" "$(conc_tls "unknown identity")"
grep -Eq 'TLS failed: .*unknown identity.*stranger' "$TB_DIR/conc.log" ||
  bad "the concentrator's line does not name the unknown identity \"stranger\""
refused wrong-key "{identity: home-a, psk_file: \"$TB_DIR/home-a-other.psk\"}" "" \
  "$(cpe_tls "wrong key \(PSK binder does not verify\)")" \
  "$(conc_tls "wrong key \(PSK binder does not verify\)")"
# The cleartext CPE speaks version 1: it hears no HELLO, only the connection closing.
refused cleartext none "encryption: none" \
  "tunnel to .*(does not speak TLS|TLS|closed|ended|lost)" \
  "$(conc_tls "peer does not speak TLS")"

# --- 2. accept_cleartext ------------------------------------------------------------------
TB_CONC_EXTRA=$'encryption:\n  accept_cleartext: true'
start_conc multiplexed
accepted cleartext-accepted multiplexed none "encryption: none" ""
accepted psk-beside-cleartext multiplexed "$(tls_psk_auth home-b)" "" home-b
TB_CONC_EXTRA=

# --- 3. certificates ------------------------------------------------------------------
TB_CONC_AUTH=$(tls_cert_auth ca conc)
start_conc multiplexed
accepted cert multiplexed "$(tls_cert_auth ca home-a)" "" home-a conc
refused cert-expired "$(tls_cert_auth ca home-old)" "" \
  "$(cpe_tls "certificate expired or not yet valid")" \
  "$(conc_tls "certificate expired or not yet valid")"
refused cert-revoked "$(tls_cert_auth ca home-rev)" "" \
  "$(cpe_tls "certificate revoked")" "$(conc_tls "certificate revoked")"
# home-evil trusts the right CA (so it accepts the concentrator), but its own
# certificate comes from the other one.
refused cert-other-ca "{cert_file: \"$TB_DIR/home-evil.pem\", key_file: \"$TB_DIR/home-evil.key\", ca_file: \"$TB_DIR/ca/ca.pem\"}" "" \
  "$(cpe_tls "certificate from an unknown CA")" "$(conc_tls "certificate from an unknown CA")"

tb_stop_proxies || bad "a daemon exited non-zero"
((fail == 0)) || exit 1
echo "PASS: test_tls_identity"

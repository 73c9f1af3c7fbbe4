#!/usr/bin/env bash
# The express connection is bound to its session by the session's keys (issue 18;
# docs/PROTOCOL.md "Keys over time, and binding", "Express connection"): its HELLO carries
# 64 bits of the main TLS session's exporter, and the concentrator joins it only to the
# session with that value and the same identity.
#  1. A CPE daemon (home-b, tunnel.express: true) gets its express connection: both ends
#     show it, under its identity, and light datagrams ride it.
#  2. wirepeer, holding the keys of two identities (home-x, home-y), opens a main session
#     as home-x and asks for an express connection. A second connection as home-y that
#     presents home-x's exporter value (a token stolen from another CPE's session) is
#     refused, as is home-x's own identity with a value that is not the exporter's; the
#     same value from home-x itself is joined (so the refusal was the identity's doing).
#     A cleartext connection (the concentrator accepts cleartext CPEs here) presenting
#     the value, as a token that travels in clear would be, is refused too. The daemon's
#     session never notices.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/tls_lib.sh"
tb_require_root_and_tools
tb_require_built daemon/mpudpd daemon/mpudpctl tools/udpecho tools/udpload tools/wirepeer
LOAD=$MPUDP_BUILD/tools/udpload
PEER=$MPUDP_BUILD/tools/wirepeer
CONC=198.18.2.2:$TB_CONC_PORT

fail=0
bad() { echo "FAIL: $*" >&2; fail=1; }

tb_setup || exit 1
tb_tproxy_rules || exit 1
tb_add_cpe2 || exit 1
tb_start_echo || exit 1
tls_peers "$TB_DIR/peers" home-b home-x home-y || exit 1
KEY_X=$(tb_psk_hex "$TB_DIR/home-x.psk")
KEY_Y=$(tb_psk_hex "$TB_DIR/home-y.psk")

# The concentrator, and CPE B in cpe2 (cpe itself runs no daemon: wirepeer speaks there).
export TB_CONC_AUTH="{peers_file: \"$TB_DIR/peers\"}"
export TB_CONC_EXTRA=$'encryption:\n  accept_cleartext: true'
export TB_CPE_AUTH TB_CPE2_AUTH
TB_CPE_AUTH=$(tls_psk_auth home-b)
TB_CPE2_AUTH=$TB_CPE_AUTH
tb_write_configs multiplexed || exit 1
tb_start_daemon conc conc "$TB_DIR/conc.yaml" || exit 1
tb_wait_listen conc tcp "$TB_CONC_PORT" 1 10 || exit 1
TB_CPE2_EXTRA=$'tunnel:\n  express: true\n  keepalive: 1s' tb_start_cpe2 || exit 1
tb_wait_log cpe2 "express connection up" 10 || exit 1

# --- 1. the daemon's express connection -----------------------------------------------
tb_ns_exec cli2 "$LOAD" --json --size 64 --rate 50 --duration 2 --timeout 1000 198.18.4.2:7 \
  >"$TB_DIR/light.json" 2>/dev/null || bad "udpload"
tb_ctl cpe2 status --json >"$TB_DIR/cpe2.json" || bad "cpe2 status"
tb_ctl conc status --json >"$TB_DIR/conc1.json" || bad "conc status"
tb_check "$TB_DIR/light.json" "$TB_DIR/cpe2.json" "$TB_DIR/conc1.json" <<'PY'
need(d["light"]["echoed"] == d["light"]["sent"] > 0,
     f"light flow: {d['light']['echoed']} of {d['light']['sent']} echoed")
for side in ("cpe2", "conc1"):
    m, x = conns(side, False), conns(side, True)
    need(len(m) == 1 and len(x) == 1, f"{side}: one main and one express connection ({len(m)}, {len(x)})")
    need(all(c["tls"] for c in m + x), f"{side}: both inside TLS")
m, x = conns("conc1", False), conns("conc1", True)
need(all(c.get("identity") == "home-b" for c in m + x),
     f"concentrator: both under identity home-b ({[c.get('identity') for c in m + x]})")
need(counter("conc1", "express_connects") == 1, "the concentrator joined one express connection")
need(counter("cpe2", "express_tx_datagrams") >= d["light"]["sent"],
     f"the light flow rode it ({counter('cpe2', 'express_tx_datagrams')} express datagrams)")
PY

# --- 2. who may join whose session ------------------------------------------------------
# Connection 1: home-x's main session, express offered. 2: home-y presents home-x's
# exporter value. 3: home-x with a value of its own making. 4: no TLS, the exporter value
# in clear. 5: home-x with the exporter value: joined, and it answers keepalives.
mark=$(tls_log_mark conc)
if tb_cpe "$PEER" "$CONC" \
  "tls:home-x:$KEY_X" hello-express expect-hello-express \
  connect "tls:home-y:$KEY_Y" join:1 expect-close \
  connect "tls:home-x:$KEY_X" join-token:0123456789abcdef expect-close \
  connect join:1 expect-close \
  connect "tls:home-x:$KEY_X" join:1 expect-hello-express keepalive expect-keepalive \
  >"$TB_DIR/peer.log" 2>&1; then
  echo "ok   wirepeer: stolen exporter value refused, made-up and cleartext ones too, the owner joined"
else
  bad "wirepeer"
  sed 's/^/    /' "$TB_DIR/peer.log" >&2
fi
tb_ctl conc status --json >"$TB_DIR/conc2.json" || bad "conc status"
tb_check "$TB_DIR/conc1.json" "$TB_DIR/conc2.json" <<'PY'
need(counter("conc2", "express_refused") - counter("conc1", "express_refused") == 3,
     f"three joins refused ({counter('conc1', 'express_refused')} -> {counter('conc2', 'express_refused')})")
need(counter("conc2", "express_connects") - counter("conc1", "express_connects") == 1,
     "one join accepted (home-x's own)")
PY
# The refusals are logged, naming the identity that tried.
tail -n "+$((mark + 1))" "$TB_DIR/conc.log" | grep -i 'express' | grep -q 'home-y' ||
  bad "the concentrator did not log home-y's refused join"

# B's session went on untouched.
tb_ns_exec cli2 "$LOAD" --json --size 64 --rate 50 --duration 1 --timeout 1000 198.18.4.2:7 \
  >"$TB_DIR/light2.json" 2>/dev/null || bad "udpload"
tb_check "$TB_DIR/light2.json" <<'PY'
need(d["light2"]["echoed"] == d["light2"]["sent"] > 0,
     f"CPE B afterwards: {d['light2']['echoed']} of {d['light2']['sent']} echoed")
PY
grep -q "express connection to .* lost" "$TB_DIR/cpe2.log" && bad "CPE B lost its express connection"

tb_stop_proxies || bad "a daemon exited non-zero"
((fail == 0)) || exit 1
echo "PASS: test_tls_express"

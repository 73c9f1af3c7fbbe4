#!/usr/bin/env bash
# The concentrator is no open relay: datagrams for its loopback, a link-local address,
# its own addresses, an unlisted private range or a denied prefix never leave it; each is
# counted and answered with RESET, and the connection stays up; an ordinary destination
# passes. (Allow lists for private ranges are unit-tested: no private range is used here.)
set -uo pipefail
source "$(dirname "$0")/lib.sh"
tb_require_root_and_tools
tb_require_built
CTL=$MPUDP_BUILD/daemon/mpudpctl
PEER=$MPUDP_BUILD/tools/wirepeer
tb_setup || exit 1
tb_tproxy_rules || exit 1
tb_start_echo || exit 1
# Something to reach on the concentrator's loopback and own address if policy failed.
tb_bg conc_echo conc "$TB_ECHO" --count-file "$TB_DIR/conc_echo.count" 127.0.0.1:7 198.18.2.2:9
tb_wait_listen conc udp 9 1 5 || exit 1
tb_write_configs multiplexed || exit 1
python3 - "$TB_DIR/conc.yaml" <<'PY'
import sys
p = sys.argv[1]
s = open(p).read().replace("concentrator:\n", "concentrator:\n  allow_destinations: [10.9.0.0/16]\n  deny_destinations: [198.18.4.99/32]\n", 1)
open(p, "w").write(s)
PY
tb_start_daemon conc conc "$TB_DIR/conc.yaml" || exit 1
tb_wait_listen conc tcp "$TB_CONC_PORT" 1 10 || exit 1

fail=0
c=198.18.0.2:40000
steps=("tls:shared:$(tb_psk_hex)" hello expect-hello)  # $TB_DIR/psk: TLS identity "shared"
n=0
for dst in 127.0.0.1:7 169.254.1.1:7 198.18.2.2:9 10.0.0.1:7 192.168.1.1:7 198.18.4.99:7 224.0.0.251:5353; do
  n=$((n + 1))
  steps+=("open:$n:$c:$dst:0102" "expect-reset:$n")
done
steps+=(keepalive expect-keepalive "open:100:$c:198.18.4.2:7:0a0b")
tb_cpe "$PEER" "198.18.2.2:$TB_CONC_PORT" "${steps[@]}" >"$TB_DIR/peer.log" 2>&1 ||
  { echo "FAIL: wirepeer"; cat "$TB_DIR/peer.log"; fail=1; }

json=$("$CTL" -s "$TB_DIR/conc.sock" status --json)
refused=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["stats"]["drops"]["destination_refused"])' "$json")
loops=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["stats"]["drops"]["loop_refused"])' "$json")
wan=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["stats"]["counters"]["wan_tx_datagrams"])' "$json")
[[ $refused == 6 ]] || { echo "FAIL: destination_refused is $refused, expected 6"; fail=1; }
# Its own address would loop: counted apart.
[[ $loops == 1 ]] || { echo "FAIL: loop_refused is $loops, expected 1 (198.18.2.2:9)"; fail=1; }
[[ $wan == 1 ]] || { echo "FAIL: wan_tx_datagrams is $wan, expected 1 (only the allowed one)"; fail=1; }
tb_stop conc_echo TERM 5
read -r got _ <"$TB_DIR/conc_echo.count" || got=x
[[ $got == 0 ]] || { echo "FAIL: the concentrator's own services received $got datagrams"; fail=1; }
tb_stop_daemon conc || fail=1
((fail)) && exit 1
echo "PASS: test_policy_destinations"

#!/usr/bin/env bash
# No forwarding loops, no policy bypass. Datagrams for the CPE itself (its intercept port
# from the WAN side, its addresses from the LAN, a NAT64 form of one, an address added
# while it runs) are refused by the CPE; datagrams for the concentrator's addresses (one
# added while it runs, NAT64 forms included) and for a connected CPE's address are
# refused by the concentrator. None creates a binding there or comes round again; each
# is counted (loop_refused). An OPEN naming the concentrator's address as its client, a
# destination port 0 and a reply from the concentrator's loopback are refused and
# counted too.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
tb_require_root_and_tools
tb_require_built daemon/mpudpd daemon/mpudpctl tools/udpecho tools/wirepeer
CTL=$MPUDP_BUILD/daemon/mpudpctl
PEER=$MPUDP_BUILD/tools/wirepeer
PORTS=$(dirname "$0")/udp_ports.py
tb_setup || exit 1
tb_tproxy_rules || exit 1
tb_start_echo || exit 1
# Listeners on the concentrator's own addresses: they must hear nothing.
tb_bg conc_echo conc "$TB_ECHO" --count-file "$TB_DIR/conc_echo.count" 198.18.2.2:9 \
  198.18.1.2:9 "[2001:db8:2::2]:9"
tb_wait_listen conc udp 9 3 5 || exit 1
tb_start_proxies multiplexed || exit 1
tb_wait_log cpe "tunnel up" 10 || exit 1

fail=0
# send NS HOST PORT: one datagram, from an ephemeral port.
send() {
  tb_ns_exec "$1" python3 -c 'import socket, sys
h, p = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET6 if ":" in h else socket.AF_INET, socket.SOCK_DGRAM)
s.sendto(b"loop?", (h, p))' "$2" "$3"
}

echo "--- to the CPE itself"
send conc 198.18.1.1 "$TB_TPROXY_PORT"            # its intercept port, from the WAN side
send conc 2001:db8:1::1 "$TB_TPROXY_PORT"
send cli 198.18.0.1 "$TB_TPROXY_PORT"             # its LAN address
send cli 198.18.3.1 53                            # its other uplink
send cli 64:ff9b::198.18.1.1 "$TB_TPROXY_PORT"    # NAT64 form of an uplink address
tb_expect cpe drops loop_refused 5 "the CPE refuses its own addresses"
tb_cpe ip addr add 198.18.8.8/32 dev lo || exit 1  # an address that comes later
sleep 0.2
send cli 198.18.8.8 9
tb_expect cpe drops loop_refused 6 "the CPE follows its address changes"
tb_expect cpe counters bindings_created 0 "none of them made a binding"

echo "--- to the concentrator's addresses"
send cli 198.18.2.2 9
send cli 198.18.1.2 9
send cli 2001:db8:2::2 9
send cli 64:ff9b::198.18.2.2 9
tb_expect conc drops loop_refused 4 "the concentrator refuses its own addresses"
tb_conc ip addr add 198.18.7.7/32 dev lo || exit 1
sleep 0.2
send cli 198.18.7.7 9
tb_expect conc drops loop_refused 5 "the concentrator follows its address changes"
tb_expect conc counters bindings_created 0 "none of them made a binding at the concentrator"

echo "--- OPENs a CPE could forge"
steps=("tls:shared:$(tb_psk_hex)" hello expect-hello  # the shared key's TLS identity
  "open:1:198.18.0.2:40000:198.18.1.1:$TB_TPROXY_PORT:0102" "expect-reset:1"  # a CPE's address
  "open:2:198.18.2.2:40001:198.18.4.2:$TB_ECHO_PORT:0102" "expect-reset:2"    # client: its own
  "open:3:198.18.0.2:40002:198.18.4.2:0:0102" "expect-reset:3"                 # port 0
  keepalive expect-keepalive)
tb_cpe "$PEER" "198.18.2.2:$TB_CONC_PORT" "${steps[@]}" >"$TB_DIR/peer.log" 2>&1 ||
  { echo "FAIL: wirepeer"; cat "$TB_DIR/peer.log"; fail=1; }
tb_expect conc drops loop_refused 6 "a connected CPE's address is refused as a destination"
tb_expect conc drops client_refused 1 "an OPEN whose client is the concentrator's address"
tb_expect conc drops port_zero 1 "port 0"
tb_expect conc counters bindings_created 0 "still no binding at the concentrator"

echo "--- a reply from a refused source"
got=$(tb_cli python3 "$PORTS" round 41000 1 "$TB_SRV4" "$TB_ECHO_PORT")
[[ $got == 1 ]] || { echo "FAIL: the ordinary echo did not come back"; fail=1; }
relay=$(tb_conc ss -uanpH | awk '/mpudpd/ { n = split($4, a, ":"); print a[n] }' | head -n 1)
if [[ -z $relay ]]; then
  echo "FAIL: no relay socket at the concentrator"; fail=1
else
  send conc 127.0.0.1 "$relay"
  tb_expect conc drops reply_source_refused 1 "a datagram from the concentrator's loopback"
fi

echo "--- nothing came round"
sleep 1
tb_expect cpe counters lan_rx_datagrams 12 "the CPE took in exactly what was sent to it"
tb_expect cpe counters lan_tx_datagrams 1 "and delivered only the echo"
tb_expect conc counters wan_tx_datagrams 1 "the concentrator sent only the ordinary datagram"
tb_stop conc_echo TERM 5
read -r heard _ <"$TB_DIR/conc_echo.count" || heard=x
[[ $heard == 0 ]] || { echo "FAIL: the concentrator's own services heard $heard datagrams"; fail=1; }
"$CTL" -s "$TB_DIR/cpe.sock" status --json >"$TB_DIR/cpe.json"
"$CTL" -s "$TB_DIR/conc.sock" status --json >"$TB_DIR/conc.json"
tb_check "$TB_DIR/cpe.json" "$TB_DIR/conc.json" <<'PY'
balance("cpe", d["cpe"])
balance("conc", d["conc"])
PY
grep -q "refused: own address" "$TB_DIR/conc.log" ||
  { echo "FAIL: the concentrator did not log a refusal"; fail=1; }
grep -q "refused: the CPE's own address" "$TB_DIR/cpe.log" ||
  { echo "FAIL: the CPE did not log a refusal"; fail=1; }
tb_stop_proxies || fail=1
((fail)) && exit 1
echo "PASS: test_harden_loop"

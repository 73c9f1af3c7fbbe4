#!/usr/bin/env bash
# Mapping refresh (RFC 4787 REQ-6, docs/NAT.md): a remote that keeps sending to a binding
# keeps it alive with concentrator.refresh_on_inbound: true (the default); after a reload
# to false it expires after bindings.idle_timeout all the same, since its client is silent.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
tb_require_root_and_tools
tb_require_built daemon/mpudpd daemon/mpudpctl tools/udpecho
PEER=$(dirname "$0")/nat_peer.py
tb_setup || exit 1
tb_tproxy_rules || exit 1
tb_srv ip addr add 198.18.4.3/24 dev eth0 || exit 1
tb_bg reflector srv python3 "$PEER" reflect 198.18.4.2 3478
tb_wait_listen srv udp 3478 1 5 || { echo "FAIL: reflector"; exit 1; }
tb_start_proxies multiplexed 2s || exit 1
tb_wait_log cpe "tunnel up" 10 || exit 1
fail=0

# push MAPPING SECONDS: a remote the client never answers sends to it every 0.25 s.
push() {
  tb_srv python3 -c 'import socket, sys, time
h, _, p = sys.argv[1].rpartition(":")
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("198.18.4.3", 6000))
end = time.monotonic() + float(sys.argv[2])
while time.monotonic() < end:
    s.sendto(b"keep?", (h, int(p)))
    time.sleep(0.25)' "$1" "$2"
}

echo "--- refresh_on_inbound: true (default)"
m=$(tb_cli python3 "$PEER" probe 198.18.0.2 42001 198.18.4.2:3478)
echo "client 198.18.0.2:42001 -> $m"
push "$m" 5
tb_expect conc counters bindings_expired 0 "inbound traffic kept the binding past its 2 s timeout"
tb_expect conc counters bindings_created 1 "one binding"
tb_expect conc counters bindings_closed_by_peer 0 "the CPE did not end it either"
tb_expect conc counters wan_rx_datagrams "$(tb_stat conc counters tunnel_tx_datagrams)" \
  "every pushed datagram went on to the CPE"

echo "--- refresh_on_inbound: false"
python3 - "$TB_DIR/conc.yaml" <<'PY' || exit 1
import sys
p = sys.argv[1]
s = open(p).read()
open(p, "w").write(s.replace("concentrator:\n", "concentrator:\n  refresh_on_inbound: false\n", 1))
PY
tb_ctl conc reload >/dev/null || { echo "FAIL: reload"; fail=1; }
push "$m" 5
tb_expect conc counters bindings_expired 1 "the binding expired although the remote kept sending"

tb_stop reflector TERM 5 >/dev/null 2>&1
tb_stop_proxies || fail=1
((fail)) && exit 1
echo "PASS: test_nat_refresh"

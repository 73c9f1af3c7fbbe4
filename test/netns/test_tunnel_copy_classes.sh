#!/usr/bin/env bash
# Copy classes (issue 20, part 1: cpe.copy_classes): a flow the operator named is copied
# on every uplink's carrier whatever its rate, and the concentrator copies its replies
# too, though it knows no classes (the CPE's copies ask for it, docs/PROTOCOL.md, DATA
# flag 0x02). Three uplink carriers' worth of evidence, from the daemons' counters, one
# flow at a time, each 2.4 Mbit/s of 1200-byte datagrams (far past tunnel.express_rate,
# so the rate alone never copies it past its first burst):
#  1. to port 5060 (cpe.copy_classes.ports): every datagram in a copy on both carriers,
#     every reply too; the duplicates dropped on both sides;
#  2. to the echo port, marked DSCP EF by the client (cpe.copy_classes.dscp), over IPv4
#     (IP_RECVTOS) and over IPv6 (IPV6_RECVTCLASS): the same;
#  3. to the echo port unmarked: copies of its first burst only (the express meter's
#     light start), at most 2 × 20 either way.
# Every datagram of every flow comes back (the balance holds on both daemons).
set -u
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/delay_lib.sh"
tb_require_root_and_tools
tb_require_built daemon/mpudpd daemon/mpudpctl tools/udpecho
tb_path_require
SIP_PORT=5060
COUNT=400

tb_setup || exit 1
tb_tproxy_rules || exit 1
tb_start_echo || exit 1
tb_bg sipecho srv "$TB_ECHO" "$TB_SRV4:$SIP_PORT" "[$TB_SRV6]:$SIP_PORT"
tb_wait_listen srv udp "$SIP_PORT" 2 5 || { tb_fail "the second udpecho did not come up"; exit 1; }
fail=0

# Budget for all of it: a class is bounded by tunnel.copy_rate, which is not under test.
TB_CPE_KEYS=$'  copy_classes:\n    ports: [5060]\n    dscp: [EF]' \
  TB_CPE_EXTRA=$'tunnel:\n  copies: true\n  copy_rate: 20mbit\npaths:\n  - interface: up0\n  - interface: up1' \
  TB_CONC_EXTRA=$'tunnel:\n  copies: true\n  copy_rate: 20mbit' tb_start_proxies multiplexed || exit 1
tb_wait_log cpe "copy carrier up to .* over up0" 10 || exit 1
tb_wait_log cpe "copy carrier up to .* over up1" 10 || exit 1

# flow NAME DEST PORT TOS: COUNT datagrams of 1200 B at 250/s from one socket with the
# TOS / traffic class byte TOS; the echoes counted. Daemon status before and after.
cat >"$TB_DIR/flow.py" <<'PY'
import json, socket, sys, time
dest, port, tos, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
v6 = ":" in dest
s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_DGRAM)
if v6:
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS, tos)
else:
    s.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, tos)
s.setblocking(False)
got, t0 = 0, time.monotonic()
payload = b"c" * 1200
for i in range(count):
    while time.monotonic() < t0 + i / 250:
        time.sleep(0.001)
    s.sendto(payload, (dest, port))
    try:
        while True:
            s.recv(2048)
            got += 1
    except BlockingIOError:
        pass
end = time.monotonic() + 2
while time.monotonic() < end and got < count:
    try:
        s.recv(2048)
        got += 1
    except BlockingIOError:
        time.sleep(0.005)
print(json.dumps({"sent": count, "echoed": got}))
PY
flow() {
  local name=$1 side
  for side in cpe conc; do tb_ctl "$side" status --json >"$TB_DIR/$name-$side-0.json" || fail=1; done
  tb_cli python3 "$TB_DIR/flow.py" "$2" "$3" "$4" "$COUNT" >"$TB_DIR/$name.json" || fail=1
  sleep 0.5
  for side in cpe conc; do tb_ctl "$side" status --json >"$TB_DIR/$name-$side-1.json" || fail=1; done
  echo "$name: $(cat "$TB_DIR/$name.json")"
}
flow port "$TB_SRV4" "$SIP_PORT" 0
flow ef4 "$TB_SRV4" "$TB_ECHO_PORT" $((46 << 2))
flow ef6 "$TB_SRV6" "$TB_ECHO_PORT" $((46 << 2))
flow plain "$TB_SRV4" "$TB_ECHO_PORT" 0

tb_check "$TB_DIR"/*-cpe-[01].json "$TB_DIR"/*-conc-[01].json "$TB_DIR"/{port,ef4,ef6,plain}.json <<PY
def delta(name, side, key):
    return counter(f"{name}-{side}-1", key) - counter(f"{name}-{side}-0", key)
for name in ("port", "ef4", "ef6", "plain"):
    f = d[name]
    up, down = delta(name, "cpe", "copies_tx"), delta(name, "conc", "copies_tx")
    drop_c, drop_k = delta(name, "conc", "duplicates_dropped"), delta(name, "cpe", "duplicates_dropped")
    print(f"{name}: echoed {f['echoed']}/{f['sent']}; copies up {up}, down {down}; "
          f"duplicates dropped at conc {drop_c}, at cpe {drop_k}")
    need(f["echoed"] == f["sent"], f"{name}: every datagram came back ({f['echoed']}/{f['sent']})")
    if name == "plain":
        need(up <= 40 and down <= 40,
             f"plain: only the light start is copied (up {up}, down {down}; at most 40)")
    else:
        need(up == 2 * f["sent"], f"{name}: every datagram in a copy on both carriers ({up})")
        need(down == 2 * f["echoed"], f"{name}: every reply copied back on both ({down})")
        need(drop_c > 0 and drop_k > 0,
             f"{name}: duplicates dropped on both sides ({drop_c}, {drop_k})")
for side in ("cpe", "conc"):
    balance(side, d[f"plain-{side}-1"])
PY
tb_stop_proxies || fail=1
exit $fail

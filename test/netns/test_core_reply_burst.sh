#!/usr/bin/env bash
# A server answers a burst of datagrams while the concentrator is not reading (stopped
# here; on a real box: busy with a large read from the tunnel, or sharing its core): the
# replies wait in the relay socket's receive buffer (1 MiB), none is dropped by the kernel,
# and each reaches the client or is dropped and counted by the concentrator (the burst is
# larger than its tunnel queue, tunnel.queue_bytes). With the kernel's default buffer
# (212 KiB, ~90 full-size datagrams) most of them were dropped by the kernel, uncounted by
# the daemon (UdpRcvbufErrors).
set -u
source "$(dirname "$0")/lib.sh"
tb_require_root_and_tools
tb_require_built daemon/mpudpd daemon/mpudpctl tools/udpload
N=400
PORT=9
tb_setup || exit 1
tb_tproxy_rules || exit 1
tb_start_proxies multiplexed || exit 1

# The server: takes N datagrams, waits for the go file, then answers them all at once.
cat >"$TB_DIR/burst.py" <<'PY'
import os, socket, sys, time
d, n, port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
s.bind(("198.18.4.2", port))
got = []
s.settimeout(20)
while len(got) < n:
    got.append(s.recvfrom(65536))
open(os.path.join(d, "burst.got"), "w").close()
while not os.path.exists(os.path.join(d, "burst.go")):
    time.sleep(0.01)
for data, peer in got:
    s.sendto(data, peer)
open(os.path.join(d, "burst.sent"), "w").close()
PY
tb_bg burst srv python3 "$TB_DIR/burst.py" "$TB_DIR" "$N" "$PORT"
tb_wait_listen srv udp "$PORT" 1 5 || { echo "FAIL: the burst server did not come up"; exit 1; }

fail=0
tb_cli "$MPUDP_BUILD/tools/udpload" --json --size 1200 --rate 4000 --duration 0.1 \
  --timeout 8000 "198.18.4.2:$PORT" >"$TB_DIR/load.json" 2>"$TB_DIR/load.err" &
load=$!
tb_poll 10 test -e "$TB_DIR/burst.got" || { echo "FAIL: the server did not get $N datagrams"; fail=1; }
drops0=$(tb_nstat conc UdpRcvbufErrors)
kill -STOP "${TB_PIDS[conc]}"
touch "$TB_DIR/burst.go"
tb_poll 5 test -e "$TB_DIR/burst.sent" || { echo "FAIL: the server did not answer"; fail=1; }
sleep 0.3  # the replies are in the concentrator's namespace, waiting for it
kill -CONT "${TB_PIDS[conc]}"
wait "$load"
drops=$(( $(tb_nstat conc UdpRcvbufErrors) - drops0 ))
cat "$TB_DIR/load.err"
"$MPUDP_BUILD/daemon/mpudpctl" -s "$TB_DIR/conc.sock" status --json >"$TB_DIR/conc.json" || fail=1
python3 - "$TB_DIR/load.json" "$N" "$drops" "$TB_DIR/conc.json" <<'PY' || fail=1
import json, sys
r, n, drops = json.load(open(sys.argv[1])), int(sys.argv[2]), int(sys.argv[3])
conc = json.load(open(sys.argv[4]))["stats"]
counted = sum(conc["drops"].values())
ok = True
def need(cond, what):
    global ok
    print(("ok   " if cond else "FAIL ") + what)
    ok = ok and cond
need(r["sent"] == n, f"the client sent {r['sent']} of {n} datagrams")
need(drops == 0, f"the kernel dropped {drops} replies at the concentrator's sockets")
need(r["echoed"] > n // 2, f"{r['echoed']} of {r['sent']} replies reached the client")
need(r["echoed"] + counted == n,
     f"every reply reached the client ({r['echoed']}) or was counted as dropped by the "
     f"concentrator ({counted}: { {k: v for k, v in conc['drops'].items() if v} })")
sys.exit(0 if ok else 1)
PY
tb_stop_proxies || fail=1
((fail)) && exit 1
echo "PASS: test_core_reply_burst"

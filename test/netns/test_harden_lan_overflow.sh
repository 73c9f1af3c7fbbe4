#!/usr/bin/env bash
# LAN clients send more than the intercept socket's receive buffer (4 MiB) holds while the
# CPE is not reading (stopped here; on a router: a scheduling hiccup under a burst): what
# the kernel drops there is counted as lan_rx_overflows, exactly what the kernel says it
# dropped (UdpRcvbufErrors), and every datagram sent is either read or counted so.
set -u
source "$(dirname "$0")/lib.sh"
tb_require_root_and_tools
tb_require_built daemon/mpudpd daemon/mpudpctl tools/udpload tools/udpprobe
CTL=$MPUDP_BUILD/daemon/mpudpctl
tb_setup || exit 1
tb_tproxy_rules || exit 1
tb_start_echo || exit 1
tb_start_proxies multiplexed || exit 1
tb_cli "$TB_PROBE" --sizes 64 --count 3 198.18.4.2:7 >/dev/null || { echo "FAIL: no traffic"; exit 1; }

fail=0
"$CTL" -s "$TB_DIR/cpe.sock" status --json >"$TB_DIR/before.json" || exit 1
drops0=$(tb_nstat cpe UdpRcvbufErrors)
kill -STOP "${TB_PIDS[cpe]}"
# 8000 datagrams of 1200 B (fewer when the sender falls behind its pace), ~18 MiB of
# kernel buffer: under half fits.
tb_cli "$MPUDP_BUILD/tools/udpload" --json --size 1200 --rate 20000 --duration 0.4 \
  --timeout 3000 198.18.4.2:7 >"$TB_DIR/load.json" 2>"$TB_DIR/load.err" &
load=$!
sleep 0.8
kill -CONT "${TB_PIDS[cpe]}"
wait "$load"
cat "$TB_DIR/load.err"
drops=$(($(tb_nstat cpe UdpRcvbufErrors) - drops0))
# The kernel tells the last drops with the socket's next datagram.
tb_cli "$TB_PROBE" --sizes 64 --count 1 198.18.4.2:7 >/dev/null || { echo "FAIL: no traffic after"; fail=1; }
"$CTL" -s "$TB_DIR/cpe.sock" status --json >"$TB_DIR/after.json" || exit 1
echo "{\"drops\": $drops}" >"$TB_DIR/kernel.json"
tb_check "$TB_DIR/load.json" "$TB_DIR/before.json" "$TB_DIR/after.json" "$TB_DIR/kernel.json" <<'PY'
def delta(key):
    return counter("after", key) - counter("before", key)
sent, drops = d["load"]["sent"], d["kernel"]["drops"]
need(sent > 6000, f"the client sent {sent} datagrams (8000 offered)")
need(drops > 0, f"the kernel dropped {drops} at the intercept socket")
need(delta("lan_rx_overflows") == drops,
     f"the CPE counted {delta('lan_rx_overflows')} lan_rx_overflows, the kernel dropped {drops}")
need(delta("lan_rx_datagrams") + delta("lan_rx_overflows") == sent + 1,
     f"read {delta('lan_rx_datagrams')} + overflowed {delta('lan_rx_overflows')} = "
     f"the {sent} sent and the one after")
need(d["load"]["echoed"] > 0, f"{d['load']['echoed']} of them echoed")
balance("cpe", d["after"])
PY
tb_stop_proxies || fail=1
((fail)) && exit 1
echo "PASS: test_harden_lan_overflow"

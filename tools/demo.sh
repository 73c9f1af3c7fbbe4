#!/usr/bin/env bash
# The README's demo: UDP from a LAN client to a server, carried by the CPE and the
# concentrator over one Multipath TCP connection that uses both uplinks.
#
#   sudo tools/demo.sh            (after a build into build/; tools/quickstart-demo.sh
#                                  does both)
#
# It builds nothing. It sets up the namespace testbed (test/netns/lib.sh), gives each
# uplink a 3 Mbit/s bottleneck so that one path alone cannot carry the load, starts both
# daemons in multiplexed mode, sends UDP from the LAN client to 198.18.4.2:7 and then to
# [2001:db8:4::2]:7 for a few seconds each, and shows what crossed, the MPTCP subflows and
# how many bytes each uplink carried. Everything is removed at the end.
#
# Knobs (environment): DEMO_MODE (multiplexed | per-binding), DEMO_SECONDS (4 per
# family), DEMO_RATE (datagrams/s, 400), DEMO_SIZES (64,512,1472,3000), DEMO_PORTS (4),
# DEMO_SHAPE (per-uplink rate, 3mbit; "none" for unshaped paths), MPUDP_BUILD.
#
# Exit status: 0 when every probe passed, 1 when a probe failed, 3 when the datagrams did
# not cross both uplinks, 4 when this host cannot run the testbed.
set -euo pipefail

cd "$(dirname "$0")/.."
if [[ $EUID -ne 0 ]]; then
  echo "demo: needs root (it creates network namespaces); try: sudo $0" >&2
  exit 4
fi

MODE=${DEMO_MODE:-multiplexed}
SECONDS_PER_FAMILY=${DEMO_SECONDS:-4}
RATE=${DEMO_RATE:-400}
SIZES=${DEMO_SIZES:-64,512,1472,3000}
PORTS=${DEMO_PORTS:-4}
SHAPE=${DEMO_SHAPE:-3mbit}

export TB_QUIET=1
# shellcheck source=../test/netns/lib.sh
source test/netns/lib.sh
tb_require_root_and_tools
for f in daemon/mpudpd tools/udpecho tools/udpprobe; do
  if [[ ! -x $MPUDP_BUILD/$f ]]; then
    echo "demo: $MPUDP_BUILD/$f is missing: build first (tools/quickstart-demo.sh does)" >&2
    exit 1
  fi
done

if [[ -t 1 ]]; then B=$'\e[1m' G=$'\e[32m' R=$'\e[31m' N=$'\e[0m'; else B='' G='' R='' N=''; fi
section() { printf '\n%s== %s ==%s\n' "$B" "$*" "$N"; }
indent() { sed 's/^/    /'; }

human() {  # bytes -> "1.2 MB"
  awk -v b="$1" 'BEGIN {
    if (b >= 1e6) printf "%.1f MB", b / 1e6; else if (b >= 1e3) printf "%.1f kB", b / 1e3;
    else printf "%d B", b }'
}

section "Testbed"
tb_setup
cat <<EOF | indent
namespaces  *-$TB_SUFFIX: cli (LAN client), cpe (home router), conc (concentrator), srv (UDP server)
LAN         cli 198.18.0.2, 2001:db8::2  ->  cpe lan0 (TPROXY: every LAN UDP datagram to :$TB_TPROXY_PORT)
uplinks     cpe up0 198.18.1.1 <-> conc wan0   (path 0)
            cpe up1 198.18.3.1 <-> conc wan1   (path 1)
tunnel      MPTCP to the concentrator at 198.18.2.2:$TB_CONC_PORT, second subflow from up1
server      srv 198.18.4.2:7 and [2001:db8:4::2]:7, UDP echo
routing     no IP forwarding in cpe or conc: datagrams cross only through the two proxies
EOF
tb_tproxy_rules
if [[ $SHAPE != none ]]; then
  tb_shape_uplinks "$SHAPE"
  echo "    shaping     $SHAPE per uplink and direction (one path alone is too narrow)"
fi
tb_start_echo

section "Daemons ($MODE)"
if ! tb_start_proxies "$MODE"; then
  echo "${R}demo: the daemons did not come up${N}" >&2
  exit 1
fi
echo "    concentrator listening on :$TB_CONC_PORT (pid ${TB_PIDS[conc]}), CPE on UDP :$TB_TPROXY_PORT (pid ${TB_PIDS[cpe]})"

read -r up0_rx0 up0_tx0 < <(tb_link_bytes cpe up0)
read -r up1_rx0 up1_tx0 < <(tb_link_bytes cpe up1)

probe_rc=0
run_probe() {  # DEST LABEL
  local out=$TB_DIR/probe-$2.txt rc=0
  tb_cli "$TB_PROBE" --sizes "$SIZES" --ports "$PORTS" --rate "$RATE" \
    --duration "$SECONDS_PER_FAMILY" --timeout 5000 --min-ok 0.99 "$1" >"$out" 2>&1 || rc=$?
  indent <"$out"
  if ((rc == 0)); then
    echo "    ${G}PASS${N}: every echo came back intact, on its own socket, from $1"
  else
    echo "    ${R}FAIL${N} (udpprobe exit $rc)"
    probe_rc=1
  fi
}

section "IPv4: cli -> 198.18.4.2:7 (${SECONDS_PER_FAMILY}s at $RATE datagrams/s, sizes $SIZES, $PORTS source ports)"
run_probe "198.18.4.2:$TB_ECHO_PORT" v4
section "IPv6: cli -> [2001:db8:4::2]:7 (${SECONDS_PER_FAMILY}s at $RATE datagrams/s, sizes $SIZES, $PORTS source ports)"
run_probe "[2001:db8:4::2]:$TB_ECHO_PORT" v6

read -r up0_rx1 up0_tx1 < <(tb_link_bytes cpe up0)
read -r up1_rx1 up1_tx1 < <(tb_link_bytes cpe up1)

section "MPTCP in cpe (ss -Mti)"
echo "    MPTCP connection(s):"
tb_cpe ss -MniH | tr -s ' \t' ' ' | sed 's/^ //' | fold -s -w 100 | indent | indent
echo "    their subflows (TCP):"
tb_cpe ss -tniH state established "( dport = :$TB_CONC_PORT )" | awk '
  /^[0-9]/ { local = $3; peer = $4; next }
  {
    sent = "0"; recv = "0"
    for (i = 1; i <= NF; i++) {
      if ($i ~ /^bytes_sent:/) { split($i, a, ":"); sent = a[2] }
      if ($i ~ /^bytes_received:/) { split($i, a, ":"); recv = a[2] }
    }
    path = "?"
    if (local ~ /^198\.18\.1\.1|^\[?2001:db8:1::1/) path = "up0"
    if (local ~ /^198\.18\.3\.1|^\[?2001:db8:3::1/) path = "up1"
    printf "        %-4s %-26s -> %-20s sent %9d B  received %9d B\n", path, local, peer, sent, recv
  }'
paths=$(tb_subflow_paths)
echo "    established subflows on: ${paths:-none}"

section "Bytes per uplink in cpe (ip -s link show up0/up1, before -> after the probes)"
d0_tx=$((up0_tx1 - up0_tx0)) d0_rx=$((up0_rx1 - up0_rx0))
d1_tx=$((up1_tx1 - up1_tx0)) d1_rx=$((up1_rx1 - up1_rx0))
printf '    %-14s %12s %12s %10s   %12s %12s %10s\n' uplink "TX before" "TX after" "sent" \
  "RX before" "RX after" "received"
printf '    %-14s %12d %12d %10s   %12d %12d %10s\n' "up0 (path 0)" "$up0_tx0" "$up0_tx1" \
  "$(human $d0_tx)" "$up0_rx0" "$up0_rx1" "$(human $d0_rx)"
printf '    %-14s %12d %12d %10s   %12d %12d %10s\n' "up1 (path 1)" "$up1_tx0" "$up1_tx1" \
  "$(human $d1_tx)" "$up1_rx0" "$up1_rx1" "$(human $d1_rx)"
both=0
# Subflow handshakes and keepalives are a few hundred bytes; 10 kB each way is data.
if [[ $paths == "up0 up1" ]] && ((d0_tx > 10000 && d1_tx > 10000)); then
  both=1
  echo "    ${G}datagrams crossed both uplinks${N}"
elif [[ $paths == "up0 up1" ]]; then
  echo "    ${R}two subflows are up, but the data stayed on one uplink${N}"
else
  echo "    ${R}the MPTCP connection does not use both uplinks${N}"
fi

section "Daemon logs (last lines)"
for n in conc cpe; do
  echo "    -- $n ($(wc -l <"$TB_DIR/$n.log") lines)"
  tail -n 4 "$TB_DIR/$n.log" | cut -c1-160 | indent
done

section "Shutdown"
stop_rc=0
tb_stop_proxies || stop_rc=$?
echo "    daemons stopped (exit status ${stop_rc})"

section "Result"
if ((probe_rc != 0)); then
  echo "    ${R}FAIL${N}: a probe failed"
  exit 1
fi
if ((stop_rc != 0)); then
  echo "    ${R}FAIL${N}: a daemon did not exit cleanly"
  exit 1
fi
if ((both == 0)) && [[ $SHAPE != none ]]; then
  echo "    ${R}FAIL${N}: UDP crossed, but not over both paths"
  exit 3
fi
echo "    ${G}OK${N}: UDP over IPv4 and IPv6 crossed the proxies intact, from the original destination, over both paths"

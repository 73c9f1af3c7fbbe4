#!/usr/bin/env bash
# tunnel.limit_path_queue (issue 7, latency under load at a FIFO bottleneck): the send
# limit also counts what the tunnel's own bulk keeps waiting in the paths' queues.
# Two paths shaped to 20 Mbit/s each way, a plain FIFO as deep as 100 ms; a bulk flow
# offers 60 Mbit/s. The shaper queues of the CPE's uplinks (tc backlog; the overloaded
# direction) are sampled while it runs, with the key and, in the same run as the
# reference, without it.
# - With it the queues stay near what the limit allows (target_delay at the rate, at least
#   16 KiB per subflow): p90 of the uplinks' backlog at most 48 KB, the mean under half of
#   the reference's (measured: ~8 KB against ~35 KB; p90 ~22 KB against ~71 KB).
# - The paths stay busy: the bulk flow's goodput is at least 80 % of the reference's
#   (measured: ~93 %).
# - Every datagram is accounted for on the CPE.
set -u
source "$(dirname "$0")/lib.sh"
tb_require_root_and_tools
tb_require_built daemon/mpudpd daemon/mpudpctl tools/udpecho tools/udpload
LOAD=$MPUDP_BUILD/tools/udpload
CTL=$MPUDP_BUILD/daemon/mpudpctl
tb_setup || exit 1
tb_tproxy_rules || exit 1
tb_start_echo || exit 1
# A loss-based congestion control fills a FIFO up to its drops: the case the key is for.
# CUBIC (OpenWrt's default) is not allowed in a network namespace unless the host allows
# it; Reno is, and behaves alike here. (BBR keeps less of a queue by itself.)
for ns in cpe conc; do
  tb_ns_exec "$ns" sysctl -qw net.ipv4.tcp_congestion_control=reno || exit 1
done

fail=0
# run NAME LIMIT: one overload with tunnel.limit_path_queue LIMIT; backlog samples (bytes
# per link and sample) in NAME-backlog.json, the bulk flow in NAME.json.
run() {
  local name=$1 extra=$'tunnel:\n  limit_path_queue: '$2 i d
  TB_CPE_EXTRA=$extra TB_CONC_EXTRA=$extra tb_start_proxies multiplexed || return 1
  tb_wait_subflows cpe 2 10 || return 1
  tb_shape_uplinks 20mbit || return 1
  tb_cli "$LOAD" --json --size 1200 --mbit 60 --duration 6 --timeout 1000 198.18.4.2:7 \
    >"$TB_DIR/$name.json" 2>"$TB_DIR/$name.err" &
  local bulk=$!
  sleep 2
  : >"$TB_DIR/$name-backlog.txt"
  for ((i = 0; i < 40; i++)); do
    for d in up0 up1; do
      tb_cpe tc -s qdisc show dev "$d" |
        awk '/backlog/ { v = $2; sub(/b$/, "", v); if (v ~ /K$/) { sub(/K$/, "", v); v *= 1000 }
                         else if (v ~ /M$/) { sub(/M$/, "", v); v *= 1000000 }; print v; exit }'
    done >>"$TB_DIR/$name-backlog.txt"
    sleep 0.05
  done
  wait "$bulk" || return 1
  sleep 1.5  # drain
  "$CTL" -s "$TB_DIR/cpe.sock" status --json >"$TB_DIR/$name-cpe.json" || return 1
  python3 -c 'import json, sys
print(json.dumps([float(l) for l in open(sys.argv[1]) if l.strip()]))' \
    "$TB_DIR/$name-backlog.txt" >"$TB_DIR/$name-backlog.json"
  tb_unshape_uplinks
  tb_stop_proxies
}
run limited true || fail=1
run reference false || fail=1
((fail)) && exit 1

tb_check "$TB_DIR/limited.json" "$TB_DIR/reference.json" "$TB_DIR/limited-backlog.json" \
  "$TB_DIR/reference-backlog.json" "$TB_DIR/limited-cpe.json" <<'PY'
lim, ref = sorted(d['limited-backlog']), sorted(d['reference-backlog'])
need(len(lim) >= 60 and len(ref) >= 60, f"backlog samples: {len(lim)}, {len(ref)}")
ml, mr = sum(lim) / len(lim), sum(ref) / len(ref)
pl, pr = lim[len(lim) * 9 // 10], ref[len(ref) * 9 // 10]
print(f"     backlog per uplink, mean / p90: {ml:.0f} / {pl:.0f} B with the key, "
      f"{mr:.0f} / {pr:.0f} B without")
need(pl <= 48000, f"with limit_path_queue the uplinks' p90 backlog is {pl:.0f} B (<= 48000)")
need(ml < mr / 2, f"with limit_path_queue the mean backlog, {ml:.0f} B, is under half of {mr:.0f} B without")
gl, gr = d['limited']['goodput_mbit'], d['reference']['goodput_mbit']
need(gl >= 0.8 * gr, f"bulk goodput {gl} Mbit/s with the key, {gr} without (>= 80 %)")
need(d['limited']['lost'] > 0, "the bulk flow overloaded the paths")
balance("CPE", d['limited-cpe'])
PY
((fail)) && exit 1
echo "PASS: test_tunnel_path_queue"

#!/usr/bin/env bash
# tunnel.receive_buffer fixes each tunnel socket's receive buffer instead of autotuning:
# - by default 4 MiB (the kernel grants twice what is asked: rb8388608 in ss -m), set once
#   the handshake is complete, on the MPTCP socket at both ends and on every one of its
#   subflows, the join over the second uplink included;
# - 0 leaves the kernel's autotuning (the buffer starts at net.ipv4.tcp_rmem's default),
#   and a smaller value is used as given; datagrams cross either way.
set -u
source "$(dirname "$0")/lib.sh"
tb_require_root_and_tools
tb_require_built daemon/mpudpd daemon/mpudpctl tools/udpecho tools/udpprobe
tb_setup || exit 1
tb_tproxy_rules || exit 1
tb_start_echo || exit 1

fail=0
# rcvbufs NS KIND: the rb (receive buffer) of each established tunnel socket in NS, sorted;
# KIND is -M (the MPTCP sockets) or -t (their TCP subflows).
rcvbufs() {
  tb_ns_exec "$1" ss -Hm "$2" state established "( sport = :$TB_CONC_PORT or dport = :$TB_CONC_PORT )" |
    grep -o 'skmem:([^)]*' | grep -o ',rb[0-9]*' | cut -c4- | sort -n | tr '\n' ' '
}
# all_are NS KIND VALUE MIN: at least MIN sockets, every one with rb VALUE.
all_are() {
  local got n=0 rb
  got=$(rcvbufs "$1" "$2")
  echo "$1 $2 rb: $got"
  for rb in $got; do
    [[ $rb == "$3" ]] || return 1
    n=$((n + 1))
  done
  ((n >= $4))
}
round_trip() {
  tb_cli "$TB_PROBE" --sizes 64,1200 --count 5 198.18.4.2:7 >/dev/null ||
    { echo "FAIL: round trip ($1)"; fail=1; }
}

# Defaults: main and express connections, two subflows each once the joins are in.
tb_start_proxies multiplexed || exit 1
round_trip "defaults"
tb_wait_subflows cpe 2 10 || { echo "FAIL: no connection with two subflows"; fail=1; }
tb_poll 10 all_are cpe -t 8388608 4 >/dev/null
for ns in cpe conc; do
  all_are "$ns" -M 8388608 2 || { echo "FAIL: $ns: MPTCP sockets without the 4 MiB buffer"; fail=1; }
  all_are "$ns" -t 8388608 4 || { echo "FAIL: $ns: subflows without the 4 MiB buffer"; fail=1; }
done
paths=$(tb_subflow_paths)
[[ $paths == "up0 up1" ]] || { echo "FAIL: subflows on '$paths', wanted 'up0 up1'"; fail=1; }
tb_stop_proxies || fail=1

# 0 at the CPE: autotuning, which starts at tcp_rmem's default; 65536 at the concentrator.
rmem_default=$(tb_cpe sysctl -n net.ipv4.tcp_rmem | awk '{ print $2 }')
TB_CPE_EXTRA=$'tunnel:\n  receive_buffer: 0' TB_CONC_EXTRA=$'tunnel:\n  receive_buffer: 65536' \
  tb_start_proxies multiplexed || exit 1
round_trip "receive_buffer 0 / 65536"
tb_wait_subflows cpe 2 10 || { echo "FAIL: no connection with two subflows"; fail=1; }
tb_poll 10 all_are conc -t 131072 4 >/dev/null
all_are conc -M 131072 2 || { echo "FAIL: conc: MPTCP sockets without the 64 KiB buffer"; fail=1; }
all_are conc -t 131072 4 || { echo "FAIL: conc: subflows without the 64 KiB buffer"; fail=1; }
cpe_rbs=$(rcvbufs cpe -M)
echo "cpe -M rb: $cpe_rbs (tcp_rmem default $rmem_default)"
(($(wc -w <<<"$cpe_rbs") >= 2)) || { echo "FAIL: cpe: fewer than two MPTCP sockets"; fail=1; }
for rb in $cpe_rbs; do
  # Autotuning only grows it, and only with data to read: a few probes leave it near the start.
  ((rb >= rmem_default && rb < 8388608)) ||
    { echo "FAIL: cpe: with receive_buffer 0 an MPTCP socket has rb $rb (tcp_rmem default $rmem_default)"; fail=1; }
done
tb_stop_proxies || fail=1

((fail == 0)) && echo "PASS"
exit "$fail"

#!/usr/bin/env bash
# tunnel.congestion_control chooses the subflows' TCP congestion control:
# - each side sets its own on every subflow of its tunnel connections (main and express),
#   the joined subflow on the second path included;
# - a reload that removes the key puts the live subflows back on the system's default;
# - a name this kernel lacks stops the daemon at start, and is refused by a reload, with
#   an error that names the key and what the kernel has.
set -u
source "$(dirname "$0")/lib.sh"
tb_require_root_and_tools
tb_require_built daemon/mpudpd daemon/mpudpctl tools/udpecho tools/udpprobe
CTL=$MPUDP_BUILD/daemon/mpudpctl
tb_setup || exit 1
tb_tproxy_rules || exit 1
tb_start_echo || exit 1

# Two names other than the namespaces' default, so that neither can pass by accident. The
# daemon sets its own on each socket (TCP_CONGESTION), so any that the kernel has will do:
# one that net.ipv4.tcp_allowed_congestion_control leaves out (a namespace cannot make it
# its default) needs CAP_NET_ADMIN, which the daemon then keeps (core/privileges.cc).
default=$(tb_cpe sysctl -n net.ipv4.tcp_congestion_control)
read -ra available < <(tb_cpe sysctl -n net.ipv4.tcp_available_congestion_control)
others=()
for ca in "${available[@]}"; do
  [[ $ca != "$default" ]] && others+=("$ca")
  ((${#others[@]} == 2)) && break
done
((${#others[@]} == 2)) ||
  { echo "SKIP: this kernel has fewer than two congestion controls besides $default: ${available[*]}"; exit 4; }
cpe_ca=${others[0]} conc_ca=${others[1]}
echo "default $default; CPE $cpe_ca, concentrator $conc_ca"

TB_CPE_EXTRA=$'tunnel:\n  congestion_control: '$cpe_ca \
  TB_CONC_EXTRA=$'tunnel:\n  congestion_control: '$conc_ca tb_start_proxies multiplexed || exit 1
tb_cli "$TB_PROBE" --sizes 64 --count 3 198.18.4.2:7 >/dev/null || { echo "FAIL: round trip"; exit 1; }
tb_wait_subflows cpe 2 10 || { echo "FAIL: no connection with two subflows"; exit 1; }

fail=0
# The congestion control of each of the tunnel's subflows in a namespace (established
# TCP sockets to or from the concentrator's port; ss -ti names it on the info line).
subflow_cas() {
  tb_ns_exec "$1" ss -Htin state established "( sport = :$TB_CONC_PORT or dport = :$TB_CONC_PORT )" |
    python3 -c '
import re, sys
lines = sys.stdin.read().splitlines()
cas = []
for line in lines:
    if line.startswith(("\t", " ")):
        m = re.search(r"\b([a-z0-9_]+)\s+wscale:", line)
        cas.append(m.group(1) if m else "?")
print(" ".join(sorted(cas)))'
}
want() {  # NS CA MIN: at least MIN subflows, every one on CA
  local got
  got=$(subflow_cas "$1")
  echo "$1 subflows: $got"
  local n=0 ca
  for ca in $got; do
    [[ $ca == "$2" ]] || return 1
    n=$((n + 1))
  done
  ((n >= $3))
}
# Main and express connections, two subflows each once the joins are in.
tb_poll 10 want cpe "$cpe_ca" 4 >/dev/null
want cpe "$cpe_ca" 4 || { echo "FAIL: CPE subflows not all on $cpe_ca"; fail=1; }
tb_poll 10 want conc "$conc_ca" 4 >/dev/null
want conc "$conc_ca" 4 || { echo "FAIL: concentrator subflows not all on $conc_ca"; fail=1; }
paths=$(tb_subflow_paths)
[[ $paths == "up0 up1" ]] || { echo "FAIL: subflows on '$paths', wanted 'up0 up1'"; fail=1; }

# A reload without the key: the same subflows go back to the default.
sed -i "/congestion_control:/d" "$TB_DIR/cpe.yaml"
"$CTL" -s "$TB_DIR/cpe.sock" reload >/dev/null || { echo "FAIL: reload"; fail=1; }
want cpe "$default" 4 || { echo "FAIL: after the reload the CPE's subflows are not on $default"; fail=1; }
want conc "$conc_ca" 4 || { echo "FAIL: the concentrator changed with the CPE's reload"; fail=1; }

# A name the kernel lacks: a reload is refused (the subflows keep theirs) ...
sed -i "s/congestion_control: $conc_ca/congestion_control: nosuchcc/" "$TB_DIR/conc.yaml"
out=$("$CTL" -s "$TB_DIR/conc.sock" reload 2>&1) && { echo "FAIL: reload with nosuchcc succeeded"; fail=1; }
echo "reload: $out"
grep -q 'running configuration kept: tunnel.congestion_control: "nosuchcc" is not available in this kernel (net.ipv4.tcp_available_congestion_control: .*reno' <<<"$out" ||
  { echo "FAIL: the refused reload did not say why"; fail=1; }
want conc "$conc_ca" 4 || { echo "FAIL: a refused reload changed the subflows"; fail=1; }
tb_cli "$TB_PROBE" --sizes 64 --count 3 198.18.4.2:7 >/dev/null || { echo "FAIL: round trip after the refused reload"; fail=1; }

# ... and a daemon started with it stops at once, saying so (exit 1, nothing bound).
tb_conc_start_refused 'tunnel.congestion_control: "nosuchcc" is not available in this kernel' ||
  fail=1

tb_stop_proxies || fail=1
((fail == 0)) && echo "PASS"
exit "$fail"

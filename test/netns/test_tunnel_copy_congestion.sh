#!/usr/bin/env bash
# tunnel.copy_congestion_control: the copy carriers run their own TCP congestion control,
# bbr unless told otherwise, whatever the tunnel's subflows run:
# - with the namespaces' default on reno, the MPTCP subflows run reno and every carrier
#   (a plain TCP connection per uplink, spares included) runs bbr, at both ends;
# - a reload naming another switches the CPE's live carriers (the concentrator's keep
#   theirs: each side chooses for what it sends); "" puts them on the tunnel's;
# - a name the kernel lacks is refused by a reload, saying why, and stops a daemon at start;
# - datagrams cross throughout.
set -u
source "$(dirname "$0")/lib.sh"
tb_require_root_and_tools
tb_require_built daemon/mpudpd daemon/mpudpctl tools/udpecho tools/udpprobe
CTL=$MPUDP_BUILD/daemon/mpudpctl
tb_setup || exit 1
tb_tproxy_rules || exit 1
tb_start_echo || exit 1

# The carriers' name must differ from the subflows' so that neither passes by accident:
# the namespaces on reno (which every namespace may choose), the carriers on bbr, then on
# a third the kernel has (cubic here; any, as the daemon sets it per socket).
have() { [[ " $(tb_cpe sysctl -n net.ipv4.tcp_available_congestion_control) " == *" $1 "* ]]; }
have bbr || modprobe -q tcp_bbr 2>/dev/null
other=""
for ca in $(tb_cpe sysctl -n net.ipv4.tcp_available_congestion_control); do
  [[ $ca != reno && $ca != bbr ]] && { other=$ca; break; }
done
have bbr && [[ -n $other ]] ||
  { echo "SKIP: this kernel lacks bbr or a third congestion control"; exit 4; }
for ns in cpe conc; do tb_ns_exec "$ns" sysctl -qw net.ipv4.tcp_congestion_control=reno || exit 1; done
echo "namespaces on reno; carriers on bbr, then $other"

TB_CPE_EXTRA=$'tunnel:\n  copies: true\n  copy_spares: 1\npaths:\n  - interface: up0\n  - interface: up1' \
  TB_CONC_EXTRA=$'tunnel:\n  copies: true' tb_start_proxies multiplexed || exit 1
tb_wait_log cpe "spare copy carrier up to .* over up1" 10 || exit 1
tb_cli "$TB_PROBE" --sizes 64 --count 3 198.18.4.2:7 >/dev/null || { echo "FAIL: round trip"; exit 1; }

fail=0
# NS KIND: the congestion control of each established tunnel socket of that kind in NS,
# sorted: "subflows" (MPTCP, tcp-ulp-mptcp on ss's info line) or "carriers" (plain TCP).
cas() {
  tb_ns_exec "$1" ss -Htin state established "( sport = :$TB_CONC_PORT or dport = :$TB_CONC_PORT )" |
    python3 -c '
import re, sys
want_mptcp = sys.argv[1] == "subflows"
lines = sys.stdin.read().splitlines()
cas = []
for line in lines:
    if line.startswith(("\t", " ")) and ("tcp-ulp-mptcp" in line) == want_mptcp:
        m = re.search(r"\b([a-z0-9_]+)\s+wscale:", line)
        cas.append(m.group(1) if m else "?")
print(" ".join(sorted(cas)))' "$2"
}
want() {  # NS KIND CA MIN: at least MIN sockets of KIND, every one on CA
  local got n=0 ca
  got=$(cas "$1" "$2")
  echo "$1 $2: $got"
  for ca in $got; do
    [[ $ca == "$3" ]] || return 1
    n=$((n + 1))
  done
  ((n >= $4))
}
# Two uplinks, a spare each: four carriers per end; main and express, two subflows each.
tb_poll 10 want cpe carriers bbr 4 >/dev/null
want cpe carriers bbr 4 || { echo "FAIL: the CPE's carriers are not all on bbr"; fail=1; }
want conc carriers bbr 4 || { echo "FAIL: the concentrator's carriers are not all on bbr"; fail=1; }
tb_poll 10 want cpe subflows reno 4 >/dev/null
want cpe subflows reno 4 || { echo "FAIL: the CPE's subflows left the namespace's reno"; fail=1; }
want conc subflows reno 2 || { echo "FAIL: the concentrator's subflows left reno"; fail=1; }

# A reload naming another: the CPE's live carriers switch, the subflows stay.
sed -i "s/^  copies: true/  copies: true\n  copy_congestion_control: $other/" "$TB_DIR/cpe.yaml"
out=$("$CTL" -s "$TB_DIR/cpe.sock" reload 2>&1) || { echo "FAIL: reload: $out"; fail=1; }
want cpe carriers "$other" 4 || { echo "FAIL: after the reload the CPE's carriers are not on $other"; fail=1; }
want conc carriers bbr 4 || { echo "FAIL: the concentrator's carriers changed with the CPE's reload"; fail=1; }
want cpe subflows reno 4 || { echo "FAIL: the reload moved the subflows"; fail=1; }

# "": the carriers run the tunnel's, here the namespace's default.
sed -i "s/copy_congestion_control: $other/copy_congestion_control: \"\"/" "$TB_DIR/cpe.yaml"
out=$("$CTL" -s "$TB_DIR/cpe.sock" reload 2>&1) || { echo "FAIL: reload: $out"; fail=1; }
want cpe carriers reno 4 || { echo "FAIL: with \"\" the CPE's carriers are not on the tunnel's reno"; fail=1; }

# A name the kernel lacks: refused, saying so; the carriers keep theirs.
sed -i 's/copy_congestion_control: ""/copy_congestion_control: nosuchcc/' "$TB_DIR/cpe.yaml"
out=$("$CTL" -s "$TB_DIR/cpe.sock" reload 2>&1) && { echo "FAIL: reload with nosuchcc succeeded"; fail=1; }
echo "reload: $out"
grep -q 'running configuration kept: tunnel.copy_congestion_control: "nosuchcc" is not available in this kernel' <<<"$out" ||
  { echo "FAIL: the refused reload did not say why"; fail=1; }
want cpe carriers reno 4 || { echo "FAIL: a refused reload changed the carriers"; fail=1; }
tb_cli "$TB_PROBE" --sizes 64 --count 3 198.18.4.2:7 >/dev/null || { echo "FAIL: round trip after the reloads"; fail=1; }

# ... and a concentrator started with it stops at once (exit 1, nothing bound).
tb_conc_start_refused 'tunnel.copy_congestion_control: "nosuchcc" is not available in this kernel' \
  's/^  copies: true/  copies: true\n  copy_congestion_control: nosuchcc/' || fail=1

tb_stop_proxies || fail=1
((fail == 0)) && echo "PASS"
exit "$fail"

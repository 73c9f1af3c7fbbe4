#!/usr/bin/env bash
# The concentrator's kernel has MPTCP switched off: the CPE's MPTCP connection falls
# back to plain TCP, datagrams still cross (IPv4 and IPv6), and the CPE says so once.
set -u
source "$(dirname "$0")/lib.sh"
tb_require_root_and_tools
tb_require_built
tb_setup || exit 1
tb_tproxy_rules || exit 1
tb_start_echo || exit 1
tb_conc sysctl -qw net.mptcp.enabled=0 || exit 1

fail=0
before=$(tb_nstat cpe MPTcpExtMPCapableFallbackSYNACK)
tb_start_proxies multiplexed || exit 1
tb_cli "$TB_PROBE" --sizes 1,512,1472 --ports 4 198.18.4.2:7 || { echo "FAIL: IPv4 over fallback TCP"; fail=1; }
tb_cli "$TB_PROBE" --sizes 1,512,1472 --ports 4 "[2001:db8:4::2]:7" || { echo "FAIL: IPv6 over fallback TCP"; fail=1; }
after=$(tb_nstat cpe MPTcpExtMPCapableFallbackSYNACK)
if (( after <= before )); then
  echo "FAIL: the kernel saw no MP_CAPABLE fallback (MPTcpExtMPCapableFallbackSYNACK $before -> $after)"
  fail=1
fi
tb_stop_proxies || fail=1
n=$(grep -c '\[warn\].*fell back to plain TCP' "$TB_DIR/cpe.log")
if (( n != 1 )); then
  echo "FAIL: the CPE should log the fallback exactly once at warn level, logged $n times"
  fail=1
fi
grep -q 'cannot listen with MPTCP' "$TB_DIR/conc.log" ||
  { echo "FAIL: the concentrator did not say it listens with plain TCP"; fail=1; }
((fail)) && { tail -n 20 "$TB_DIR/cpe.log" "$TB_DIR/conc.log"; exit 1; }
echo "PASS: fallback to plain TCP works and is logged once"

#!/usr/bin/env bash
# DRAFT (becomes test_core_roundtrip.sh once the daemon runs): UDP round trips through
# both proxies, in both session modes, over IPv4 and IPv6.
#  - sizes 1, 512, 1472 and 8000 come back byte-identical, on the socket that sent them,
#    from the exact destination (udpprobe checks all three);
#  - the MPTCP connection has a subflow on each uplink (ss -M, the concentrator's
#    MPTcpExtMPJoinAckRx, the uplinks' byte counters);
#  - with a bottleneck on each uplink, datagrams cross both paths;
#  - both daemons exit 0 on SIGTERM.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
tb_require_root_and_tools
tb_require_built daemon/mpudpd tools/udpecho tools/udpprobe

tb_setup
tb_tproxy_rules
tb_start_echo

for MODE in ${MODES:-multiplexed per-binding}; do
  echo "=== mode $MODE"
  # Counters first: in multiplexed mode the CPE connects (and joins) at start.
  joins0=$(tb_nstat conc MPTcpExtMPJoinAckRx)
  read -r _ up0_tx0 < <(tb_link_bytes cpe up0)
  read -r _ up1_tx0 < <(tb_link_bytes cpe up1)
  tb_start_proxies "$MODE"

  for dest in "198.18.4.2:7" "[2001:db8:4::2]:7"; do
    echo "--- $MODE $dest"
    tb_cli "$TB_PROBE" --sizes 1,512,1472,8000 --count 5 --ports 4 --timeout 5000 "$dest" ||
      tb_fail "$MODE $dest: round trip"
  done

  # Per-binding mode has a connection per binding; every one of them gets two subflows,
  # and at least one must have them now.
  tb_wait_subflows cpe 2 10 || tb_fail "$MODE: no MPTCP connection with two subflows in cpe"
  tb_wait_subflows conc 2 10 || tb_fail "$MODE: no MPTCP connection with two subflows in conc"
  paths=$(tb_subflow_paths)
  [[ $paths == "up0 up1" ]] || tb_fail "$MODE: subflows on '$paths', wanted 'up0 up1'"
  joins1=$(tb_nstat conc MPTcpExtMPJoinAckRx)
  ((joins1 > joins0)) || tb_fail "$MODE: MPTcpExtMPJoinAckRx in conc stayed at $joins0"
  read -r _ up0_tx1 < <(tb_link_bytes cpe up0)
  read -r _ up1_tx1 < <(tb_link_bytes cpe up1)
  ((up0_tx1 > up0_tx0 && up1_tx1 > up1_tx0)) ||
    tb_fail "$MODE: an uplink sent nothing (up0 +$((up0_tx1 - up0_tx0)), up1 +$((up1_tx1 - up1_tx0)))"
  echo "$MODE: subflows on $paths, joins +$((joins1 - joins0))"

  # Data on both paths: 3 Mbit/s per uplink, ~4.7 Mbit/s of datagrams from one client
  # socket (one binding, so one connection in either mode). One path alone cannot carry it.
  # This run is about where the bytes go; near the shaped capacity a few datagrams may be
  # lost to the shapers (more under the sanitizers), intact delivery is checked above.
  tb_shape_uplinks 3mbit
  read -r _ up0_tx0 < <(tb_link_bytes cpe up0)
  read -r _ up1_tx0 < <(tb_link_bytes cpe up1)
  tb_cli "$TB_PROBE" --sizes 1472 --rate 400 --duration 3 --timeout 5000 --min-ok 0.95 \
    198.18.4.2:7 || tb_fail "$MODE: shaped run"
  read -r _ up0_tx1 < <(tb_link_bytes cpe up0)
  read -r _ up1_tx1 < <(tb_link_bytes cpe up1)
  tb_unshape_uplinks
  d0=$((up0_tx1 - up0_tx0)) d1=$((up1_tx1 - up1_tx0))
  echo "$MODE: shaped run sent $d0 bytes on up0 and $d1 on up1"
  ((d0 > 100000 && d1 > 100000)) || tb_fail "$MODE: datagrams did not cross both uplinks"

  tb_stop_proxies || tb_fail "$MODE: a daemon did not exit cleanly"
done
echo "PASS: test_core_roundtrip"

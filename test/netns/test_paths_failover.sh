#!/usr/bin/env bash
# Path 0 goes down under a running flow: the daemon removes its endpoint, datagrams keep
# arriving over path 1; when up0 comes back its endpoint is re-added and the kernel opens
# a subflow on it again, on the existing connection.
set -u
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/paths_lib.sh"
pm_testbed

fail=0
pm_start_proxies "paths:
  - interface: up0
  - interface: up1" || exit 1
tb_cli "$TB_PROBE" --sizes 64 --count 5 198.18.4.2:7 || { echo "FAIL: no traffic"; exit 1; }
tb_wait_subflows cpe 2 10 || exit 1

tb_cli "$TB_PROBE" --sizes 200 --rate 200 --duration 8 --min-ok 0.9 198.18.4.2:7 \
  >"$TB_DIR/probe.out" 2>&1 &
probe=$!
# Let the flow run on both paths for a second, then take path 0 away.
tb_poll 3 test -s "$TB_DIR/echo.count"
sleep 1
tb_cpe ip link set up0 down || exit 1
pm_wait_no_endpoint cpe '^198\.18\.1\.1 ' 5 || { echo "FAIL: up0's endpoint stayed"; fail=1; }
sleep 2
tb_cpe ip link set up0 up || exit 1
pm_restore_up0_routes || exit 1
pm_wait_endpoint cpe '^198\.18\.1\.1 subflow dev up0' 5 ||
  { echo "FAIL: up0's endpoint did not come back"; fail=1; }
tb_poll 10 pm_subflow_from 198.18.1.1 ||
  { echo "FAIL: no subflow over up0 after it came back"; tb_cpe ss -tni; fail=1; }
tb_wait_subflows cpe 2 10 || fail=1

if ! wait "$probe"; then
  echo "FAIL: the flow did not survive path 0 going down:"; cat "$TB_DIR/probe.out"; fail=1
fi
grep 'udpprobe:' "$TB_DIR/probe.out"
tb_stop_proxies || fail=1
grep -Eq 'up0: endpoint id [0-9]+ 198\.18\.1\.1 removed' "$TB_DIR/cpe.log" ||
  { echo "FAIL: up0's endpoint removal not logged"; fail=1; }
((fail)) && exit 1
echo "PASS: the flow survives path 0 going down, and path 0 comes back"

#!/usr/bin/env bash
# up1 gets a new address: its endpoint moves there (delete old, add new) and a subflow
# runs from the new address; the old address going away removes nothing more.
set -u
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/paths_lib.sh"
pm_testbed

fail=0
pm_start_proxies "paths:
  - interface: up0
  - interface: up1" || exit 1
tb_cli "$TB_PROBE" --sizes 64 --count 5 198.18.4.2:7 || { echo "FAIL: no traffic"; exit 1; }
tb_poll 10 pm_subflow_from 198.18.3.1 || { echo "FAIL: no subflow from 198.18.3.1"; exit 1; }

# Keep the new address when the old (primary) one goes, and route from it over up1.
tb_cpe sysctl -qw net.ipv4.conf.up1.promote_secondaries=1 || exit 1
tb_cpe ip rule add from 198.18.3.5 lookup 102 pref 1003 || exit 1
tb_cpe ip addr add 198.18.3.5/24 dev up1 || exit 1
pm_wait_endpoint cpe '^198\.18\.3\.5 subflow dev up1' 5 || fail=1
pm_wait_no_endpoint cpe '^198\.18\.3\.1 ' 5 || fail=1
tb_poll 10 pm_subflow_from 198.18.3.5 ||
  { echo "FAIL: no subflow from the new address"; tb_cpe ss -tn; fail=1; }
tb_cpe ip addr del 198.18.3.1/24 dev up1 || exit 1
tb_cli "$TB_PROBE" --sizes 64,1200 --count 5 198.18.4.2:7 || { echo "FAIL: traffic after the move"; fail=1; }
[[ $(pm_endpoints cpe | grep -c 'dev up1') == 2 ]] ||
  { echo "FAIL: up1 should keep one endpoint per family:"; pm_endpoints_raw cpe; fail=1; }
pm_wait_endpoint cpe '^198\.18\.3\.5 subflow dev up1' 1 || fail=1
tb_stop_proxies || fail=1
eps=$(tb_cpe ip mptcp endpoint show)
[[ -z $eps ]] || { echo "FAIL: endpoints left after exit: $eps"; fail=1; }
((fail)) && exit 1
echo "PASS: a new address on up1 moves its endpoint, and a subflow follows"

#!/usr/bin/env bash
# The concentrator announces its second address (a `signal` path on wan1): the CPE's
# kernel accepts the ADD_ADDR and opens a subflow to it, and the CPE logs and counts the
# "announced" path-manager event.
set -u
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/paths_lib.sh"
pm_testbed

fail=0
pm_start_proxies "paths:
  - interface: up0" "paths:
  - interface: wan1
    signal: true" || exit 1
pm_wait_endpoint conc '^198\.18\.3\.2 signal dev wan1' 5 || exit 1
[[ $(tb_conc ip mptcp limits | sed 's/ *$//') == "add_addr_accepted 0 subflows 8" ]] ||
  { echo "FAIL: concentrator limits: $(tb_conc ip mptcp limits)"; fail=1; }
tb_cli "$TB_PROBE" --sizes 64 --count 5 198.18.4.2:7 || { echo "FAIL: no traffic"; exit 1; }
_subflow_to_wan1() {
  tb_cpe ss -tnH state established "( dport = :$TB_CONC_PORT )" | grep -q '198\.18\.3\.2:'
}
tb_poll 10 _subflow_to_wan1 || { echo "FAIL: no subflow to the announced address"; tb_cpe ss -tn; fail=1; }
tb_wait_log cpe 'mptcp event: announced .*remote 198\.18\.3\.2' 5 || fail=1
n=$(pm_counter pm_events_announced)
(( ${n:-0} >= 1 )) || { echo "FAIL: pm_events_announced is '$n'"; fail=1; }
tb_stop_proxies || fail=1
eps=$(tb_conc ip mptcp endpoint show)
[[ -z $eps ]] || { echo "FAIL: concentrator endpoints left after exit: $eps"; fail=1; }
((fail)) && exit 1
echo "PASS: the concentrator's signal path is announced and used"

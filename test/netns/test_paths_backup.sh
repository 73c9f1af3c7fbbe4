#!/usr/bin/env bash
# up1 is a backup path: while up0 is up it carries (nearly) nothing; with up0 down it
# carries the flow.
set -u
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/paths_lib.sh"
pm_testbed

fail=0
pm_start_proxies "paths:
  - interface: up0
  - interface: up1
    backup: true" || exit 1
pm_wait_endpoint cpe '^198\.18\.3\.1 subflow backup dev up1' 5 || exit 1
tb_cli "$TB_PROBE" --sizes 64 --count 5 198.18.4.2:7 || { echo "FAIL: no traffic"; exit 1; }
tb_poll 10 pm_subflow_from 198.18.3.1 || { echo "FAIL: no backup subflow"; exit 1; }

# The status report marks the subflow that runs from the backup endpoint.
"$MPUDP_BUILD/daemon/mpudpctl" -s "$TB_DIR/cpe.sock" status --json | python3 -c '
import json, sys
sfs = [sf for c in json.load(sys.stdin)["connections"] for sf in c["subflows"]]
flags = {sf["interface"]: sf["backup"] for sf in sfs}
print("status backup flags:", flags)
sys.exit(0 if flags.get("up1") is True and flags.get("up0") is False else 1)' ||
  { echo "FAIL: mpudpctl status does not mark up1 backup (and only it)"; fail=1; }

a0=$(pm_tx up0) a1=$(pm_tx up1)
tb_cli "$TB_PROBE" --sizes 1000 --rate 200 --duration 3 --min-ok 0.95 198.18.4.2:7 ||
  { echo "FAIL: flow over up0"; fail=1; }
d0=$(( $(pm_tx up0) - a0 )) d1=$(( $(pm_tx up1) - a1 ))
echo "both up: up0 sent $d0 bytes, up1 (backup) sent $d1 bytes"
(( d0 > 500000 )) || { echo "FAIL: up0 carried too little"; fail=1; }
(( d1 * 20 < d0 )) || { echo "FAIL: the backup path carried more than 5%"; fail=1; }

tb_cpe ip link set up0 down || exit 1
pm_wait_no_endpoint cpe '^198\.18\.1\.1 ' 5 || fail=1
a1=$(pm_tx up1)
tb_cli "$TB_PROBE" --sizes 1000 --rate 200 --duration 3 --min-ok 0.9 198.18.4.2:7 ||
  { echo "FAIL: flow over the backup path"; fail=1; }
d1=$(( $(pm_tx up1) - a1 ))
echo "up0 down: up1 sent $d1 bytes"
(( d1 > 500000 )) || { echo "FAIL: the backup path did not carry the flow"; fail=1; }
tb_stop_proxies || fail=1
((fail)) && exit 1
echo "PASS: the backup path idles while up0 is up and carries the flow when it is down"

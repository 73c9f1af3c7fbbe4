#!/usr/bin/env bash
# The daemon sets the configured limits and adds one endpoint per path and address
# family at start; a reload applies changed flags and limits; at exit it removes exactly
# its endpoints and restores the limits. An endpoint someone else configured before it
# started survives untouched.
set -u
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/paths_lib.sh"
pm_testbed

fail=0
# Someone else's endpoint, and the limits as the testbed left them.
tb_cpe ip mptcp endpoint add 198.18.0.1 dev lan0 signal || exit 1
eps_before=$(pm_endpoints_raw cpe)
limits_before=$(tb_cpe ip mptcp limits)

pm_start_proxies "paths:
  - interface: up0
  - interface: up1
limits:
  subflows: 3
  add_addr_accepted: 1" || exit 1

want="198.18.0.1 signal dev lan0
198.18.1.1 subflow dev up0
198.18.3.1 subflow dev up1
2001:db8:1::1 subflow dev up0
2001:db8:3::1 subflow dev up1"
_eps_as_wanted() { [[ $(pm_endpoints cpe) == "$(sort <<<"$want")" ]]; }
if ! tb_poll 5 _eps_as_wanted; then
  echo "FAIL: endpoints after start:"; pm_endpoints_raw cpe; echo "wanted:"; echo "$want"
  fail=1
fi
limits=$(tb_cpe ip mptcp limits | sed 's/ *$//')
if [[ $limits != "add_addr_accepted 1 subflows 3" ]]; then
  echo "FAIL: limits after start: '$limits'"
  fail=1
fi

# The endpoints are the kernel's path manager at work: a second subflow, over up1.
tb_cli "$TB_PROBE" --sizes 64,1200 --count 5 198.18.4.2:7 || { echo "FAIL: no traffic"; fail=1; }
tb_wait_subflows cpe 2 10 || { echo "FAIL: no second subflow"; fail=1; }
tb_poll 5 pm_subflow_from 198.18.3.1 || { echo "FAIL: no subflow from up1's address"; fail=1; }
grep -q 'mptcp event: sub_established' "$TB_DIR/cpe.log" ||
  { echo "FAIL: the CPE logged no sub_established event"; fail=1; }

# A reload applies changed flags and limits: up1's endpoints are replaced as backups.
sed -i 's/^  - interface: up1$/  - interface: up1\n    backup: true/; s/^  subflows: 3$/  subflows: 4/' \
  "$TB_DIR/cpe.yaml"
kill -HUP "${TB_PIDS[cpe]}"
pm_wait_endpoint cpe '^198\.18\.3\.1 subflow backup dev up1' 5 ||
  { echo "FAIL: reload did not make up1 a backup path"; fail=1; }
pm_wait_endpoint cpe '^198\.18\.1\.1 subflow dev up0' 1 || fail=1
_limits_reloaded() { [[ $(tb_cpe ip mptcp limits | sed 's/ *$//') == "add_addr_accepted 1 subflows 4" ]]; }
tb_poll 5 _limits_reloaded || { echo "FAIL: reload did not apply limits: $(tb_cpe ip mptcp limits)"; fail=1; }

n=$(pm_counter pm_endpoints_added)
[[ $n == 6 ]] || { echo "FAIL: pm_endpoints_added is '$n', not 6 (4 at start, up1's 2 again at reload)"; fail=1; }
n=$(pm_counter pm_events_subflow_established)
(( ${n:-0} >= 1 )) || { echo "FAIL: pm_events_subflow_established is '$n'"; fail=1; }

tb_stop_daemon cpe || { echo "FAIL: the CPE daemon exited with $?"; fail=1; }
eps_after=$(pm_endpoints_raw cpe)
if [[ $eps_after != "$eps_before" ]]; then
  echo "FAIL: endpoints after exit differ from before start:"
  echo "before:"; echo "$eps_before"; echo "after:"; echo "$eps_after"
  fail=1
fi
limits_after=$(tb_cpe ip mptcp limits)
[[ $limits_after == "$limits_before" ]] ||
  { echo "FAIL: limits not restored: '$limits_after' (was '$limits_before')"; fail=1; }
n=$(grep -cE 'paths: .*endpoint id [0-9]+ .* removed' "$TB_DIR/cpe.log")
[[ $n == 6 ]] || { echo "FAIL: $n endpoint removals logged, not 6"; fail=1; }
tb_stop_proxies || true
((fail)) && exit 1
echo "PASS: endpoints and limits follow the config and are cleaned up at exit"

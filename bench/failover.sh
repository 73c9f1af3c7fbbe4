#!/usr/bin/env bash
# bench/failover.sh: how long the CPEs of a concentrator that dies carry no traffic,
# behind the load balancer of docs/SCALE.md (issue 19). Not a test, not part of CI.
#
#   bench/failover.sh [--rounds N] [--json FILE]
#
# Runs test/netns/test_scale_balancer.sh N times (5): three concentrators behind an
# nftables jhash balancer, two CPEs with two uplinks each, a datagram every 20 ms from
# each. The test fails one concentrator two ways and reports each CPE's longest silence:
#   killed   the process is killed: the kernel resets its connections, the CPE redials
#            at once through the balanced address (a try that the hash sends back to the
#            dead machine is refused at once too)
#   silent   the concentrator's links drop everything: nothing tells the CPE, which
#            waits for tunnel.keepalive (1 s in the test) to miss three times
# Prints min / median / max of each and writes JSON.
set -u
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROUNDS=5
JSON_OUT=$REPO/bench/failover-$(date -u +%Y%m%d-%H%M%S).json
while (($#)); do
  case $1 in
    --rounds) ROUNDS=$2; shift ;;
    --json) JSON_OUT=$2; shift ;;
    *) echo "usage: bench/failover.sh [--rounds N] [--json FILE]" >&2; exit 2 ;;
  esac
  shift
done
[[ $EUID -eq 0 ]] || { echo "bench/failover.sh: needs root" >&2; exit 1; }
export MPUDP_BUILD=${MPUDP_BUILD:-$REPO/build}
[[ -x $MPUDP_BUILD/daemon/mpudpd ]] ||
  { echo "bench/failover.sh: no $MPUDP_BUILD/daemon/mpudpd (cmake --build $MPUDP_BUILD)" >&2; exit 1; }

killed=() silent=() failed=0
for ((r = 1; r <= ROUNDS; r++)); do
  out=$(bash "$REPO/test/netns/test_scale_balancer.sh" 2>&1)
  rc=$?
  k=$(printf '%s\n' "$out" | sed -n 's/.*traffic again after \([0-9]*\) ms.*/\1/p' | head -n1)
  s=$(printf '%s\n' "$out" | sed -n 's/.*traffic again \([0-9]*\) ms after its concentrator vanished.*/\1/p' | head -n1)
  echo "[failover] round $r: killed ${k:-?} ms, silent ${s:-?} ms (test exit $rc)" >&2
  ((rc == 0)) || { failed=$((failed + 1)); printf '%s\n' "$out" | tail -n 30 >&2; }
  [[ -n $k ]] && killed+=("$k")
  [[ -n $s ]] && silent+=("$s")
done

stats() {  # VALUES...: "min median max" (or "- - -")
  (($#)) || { echo "- - -"; return; }
  printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END {
    m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
    print v[1], m, v[NR] }'
}
read -r k_min k_med k_max <<<"$(stats "${killed[@]}")"
read -r s_min s_med s_max <<<"$(stats "${silent[@]}")"
printf '%-44s %8s %8s %8s\n' "longest silence of the CPE (ms)" min median max
printf '%-44s %8s %8s %8s\n' "concentrator killed" "$k_min" "$k_med" "$k_max"
printf '%-44s %8s %8s %8s\n' "concentrator cut off silently (keepalive 1 s)" "$s_min" "$s_med" "$s_max"
echo "$ROUNDS rounds, $failed with a failing test; commit $(git -C "$REPO" describe --always --dirty --abbrev=12 2>/dev/null)"
j() { (($#)) && (IFS=,; echo "[$*]") || echo "[]"; }
printf '{"date":"%s","commit":"%s","rounds":%s,"failed_rounds":%s,"killed_ms":%s,"silent_ms":%s}\n' \
  "$(date -u +%FT%TZ)" "$(git -C "$REPO" describe --always --dirty --abbrev=40 2>/dev/null)" \
  "$ROUNDS" "$failed" "$(j "${killed[@]}")" "$(j "${silent[@]}")" >"$JSON_OUT"
echo "JSON written to $JSON_OUT" >&2

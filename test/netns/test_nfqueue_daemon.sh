#!/usr/bin/env bash
# mpudpd with `intercept: nfqueue` (for kernels without TPROXY), rules from
# iptables/mpudp-rules --mode nfqueue: the same end-to-end checks as TPROXY mode, in both
# session modes, and the daemon's counters prove the datagrams crossed the tunnel (the
# native route exists here, for fail-open). Stopped daemon: `fail: open` lets the traffic
# pass natively, `fail: closed` drops it.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
tb_require_root_and_tools
tb_require_built
command -v iptables >/dev/null 2>&1 || { echo "[tb] SKIP: iptables is not installed" >&2; exit 4; }
CTL=$MPUDP_BUILD/daemon/mpudpctl
RULES=$TB_REPO/iptables/mpudp-rules
tb_setup
tb_start_echo
tb_direct_routing

rules() { tb_cpe sh "$RULES" --backend iptables --lan lan0 --mode nfqueue --queue 5 "$@"; }
counter() {  # NAME: a CPE counter from mpudpctl status --json
  "$CTL" -s "$TB_DIR/cpe.sock" status --json |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["stats"]["counters"][sys.argv[1]])' "$1"
}

rules --fail open install
for MODE in multiplexed per-binding; do
  echo "=== $MODE"
  TB_CPE_EXTRA=$'intercept: nfqueue\nnfqueue: {queue: 5, fail: open}'
  TB_CPE_READY_LOG='intercepting from NFQUEUE'
  tb_start_proxies "$MODE"
  for dest in "198.18.4.2:$TB_ECHO_PORT" "[2001:db8:4::2]:$TB_ECHO_PORT"; do
    tb_cli "$TB_PROBE" --sizes 1,512,1472,8000 --count 2 --ports 3 "$dest" ||
      tb_fail "$MODE: echo through mpudpd (nfqueue) from $dest"
  done
  rx=$(counter lan_rx_datagrams)
  raw=$(counter lan_tx_raw_datagrams)
  ((rx == 48)) || tb_fail "$MODE: the CPE read $rx datagrams from the queue, expected 48"
  ((raw > 0)) || tb_fail "$MODE: no reply went out through the raw socket"
  tb_stop_proxies || tb_fail "$MODE: a daemon did not stop cleanly"
done

echo "--- fail open: daemon stopped, traffic passes natively"
tb_cli "$TB_PROBE" --sizes 1,512 --count 2 "198.18.4.2:$TB_ECHO_PORT" || tb_fail "fail open"
echo "--- fail closed: daemon stopped, traffic dropped"
rules --fail closed install
if tb_cli "$TB_PROBE" --timeout 500 --sizes 1 --count 2 "198.18.4.2:$TB_ECHO_PORT"; then
  tb_fail "fail closed let traffic through"
fi
rules remove
echo "PASS: test_nfqueue_daemon"

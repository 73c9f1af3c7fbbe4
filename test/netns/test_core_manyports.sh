#!/usr/bin/env bash
# 1000 client sockets (1000 bindings) send at
# once, over IPv4 and IPv6, in both session modes; every echo must come back to the socket
# that sent it (no crossed replies), intact, from the destination, and both daemons must
# survive it and exit 0.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
tb_require_root_and_tools
tb_require_built daemon/mpudpd tools/udpecho tools/udpprobe

PORTS=${PORTS:-1000}
tb_setup
tb_tproxy_rules
tb_start_echo

for MODE in ${MODES:-multiplexed per-binding}; do
  echo "=== mode $MODE"
  tb_start_proxies "$MODE"
  for dest in "198.18.4.2:7" "[2001:db8:4::2]:7"; do
    echo "--- $MODE $dest, $PORTS ports"
    out=$(tb_cli "$TB_PROBE" --ports "$PORTS" --sizes 1,100 --timeout 15000 --json "$dest") ||
      { echo "$out"; tb_fail "$MODE $dest: $PORTS ports"; }
    echo "$out"
    [[ $out == *'"crossed":0,'* ]] || tb_fail "$MODE $dest: crossed replies"
  done
  tb_running cpe || tb_fail "$MODE: the CPE daemon died"
  tb_running conc || tb_fail "$MODE: the concentrator died"
  tb_stop_proxies || tb_fail "$MODE: a daemon did not exit cleanly"
done
echo "PASS: test_core_manyports"

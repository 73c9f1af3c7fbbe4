#!/usr/bin/env bash
# with bindings.idle_timeout 2s, bindings expire after 3 s of silence (debug log:
# "binding removed ... reason=expired"), and not before, and both daemons' tables drop
# them: each binding by its own expiry or, when the other side's timer ran first, by
# that side's end of it (multiplexed: its CLOSE, reason=peer_closed; per-binding: its
# MP_FASTCLOSE of the binding's connection, reason=session_lost). Both timers run 2 s
# from their own last datagram, milliseconds apart, so which one wins is a race. A new
# datagram afterwards makes a new binding that works. In per-binding
# mode the binding's MPTCP connection is torn down with MP_FASTCLOSE
# (MPTcpExtMPFastcloseTx rises in cpe or conc).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
tb_require_root_and_tools
tb_require_built daemon/mpudpd tools/udpecho tools/udpprobe

EXPIRED='binding removed.*reason=expired|reason=expired.*binding removed'
expired_lines() { grep -Ec -- "$EXPIRED" "$TB_DIR/$1.log" || true; }
ENDED='binding removed.*reason=(expired|peer_closed|session_lost)'
ended_lines() { grep -Ec -- "$ENDED" "$TB_DIR/$1.log" || true; }
all_ended() { (($(ended_lines cpe) >= 3 && $(ended_lines conc) >= 3)); }
fastclose_total() {
  echo $(($(tb_nstat cpe MPTcpExtMPFastcloseTx) + $(tb_nstat conc MPTcpExtMPFastcloseTx)))
}
fastclose_rose() { (($(fastclose_total) > $1)); }

tb_setup
tb_tproxy_rules
tb_start_echo

for MODE in ${MODES:-multiplexed per-binding}; do
  echo "=== mode $MODE"
  tb_start_proxies "$MODE" 2s
  fc0=$(fastclose_total)

  tb_cli "$TB_PROBE" --ports 3 --count 2 --sizes 64 198.18.4.2:7 || tb_fail "$MODE: probe"
  # Well inside the timeout: nothing may have expired yet.
  sleep 0.5
  for d in cpe conc; do
    n=$(expired_lines $d)
    ((n == 0)) || tb_fail "$MODE: $d expired a binding within 0.5 s of its last datagram"
  done
  # 3 s of silence, then the lines must be there (allow the timer some slack).
  sleep 2.5
  tb_poll 3 all_ended ||
    tb_fail "$MODE: the 3 bindings did not end on both sides (cpe $(ended_lines cpe), conc $(ended_lines conc))"
  n=$(($(expired_lines cpe) + $(expired_lines conc)))
  ((n >= 3)) || tb_fail "$MODE: only $n expiries in the two logs for 3 bindings"
  echo "$MODE: expired bindings: cpe $(expired_lines cpe), conc $(expired_lines conc); ended: cpe $(ended_lines cpe), conc $(ended_lines conc)"

  if [[ $MODE == per-binding ]]; then
    tb_poll 3 fastclose_rose "$fc0" ||
      tb_fail "per-binding: MPTcpExtMPFastcloseTx stayed at $fc0 in cpe + conc"
  fi

  # The binding comes back on demand.
  tb_cli "$TB_PROBE" --ports 3 --count 2 --sizes 64 198.18.4.2:7 ||
    tb_fail "$MODE: probe after expiry"
  tb_stop_proxies || tb_fail "$MODE: a daemon did not exit cleanly"
done
echo "PASS: test_core_expiry"

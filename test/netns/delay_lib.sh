# shellcheck shell=bash
# Per-path delay, jitter, loss and outages for the testbed (issue 20), sourced after lib.sh.
# The kernel has no netem: tools/nfqdelay holds the packets of one path in one direction
# from an NFQUEUE. Path P (0 or 1) gets two of them, one where the path enters each end:
#
#   cpe  mangle PREROUTING -i upP   -> queue 40 + 2P   delayP_cpe  ($TB_DIR/delayP_cpe.log)
#   conc mangle PREROUTING -i wanP  -> queue 41 + 2P   delayP_conc ($TB_DIR/delayP_conc.log)
#
# so a round trip over the path takes twice the one-way delay more; cpe's delayer holds
# what comes down the path (conc to cpe), conc's what goes up. On the way in, not out:
# veth does not orphan a packet it passes on, so a packet held after the sender's
# POSTROUTING still counts against the sending socket's TCP Small Queues budget (two
# packets or a millisecond's worth), and TCP over a 20 ms path then sends a handful of
# packets per round trip (measured: 516 packets in 5 s, against 531 Mbit/s held on the way
# in, where ip_rcv has orphaned the packet before PREROUTING). The rules live in a
# chain of their own (MPUDP_TB_DELAY, iptables and ip6tables) that nothing else in the
# testbed uses, with queue numbers the NFQUEUE tests (3, 5, 7, 8) do not; --queue-bypass
# lets the path's packets through undelayed while no nfqdelay holds the queue. The
# processes are the testbed's (tb_bg), so tb_cleanup stops them with everything else.
#
#   tb_path_delay P MS [JITTER_MS] [NFQDELAY_OPTION...]   (re)start path P's delayers
#   tb_path_dark P / tb_path_light P    drop everything on path P from now on / not any more
#   tb_path_clear P                     stop them (their summary lines stay in the logs)
#   tb_path_summary P cpe|conc FIELD    a field of the last summary line (passed, lost,
#                                       outage, limit, max_held, kernel_dropped, overruns)
#   tb_path_loss P PCT                  random loss with nft numgen instead, both ways
#
# Needs iptables and ip6tables (tb_path_require exits 4 without them) and tools/nfqdelay.

TB_NFQDELAY=${TB_NFQDELAY:-$MPUDP_BUILD/tools/nfqdelay}
TB_DELAY_QUEUE_BASE=${TB_DELAY_QUEUE_BASE:-40}

tb_path_require() {
  local t
  for t in iptables ip6tables; do
    command -v "$t" >/dev/null 2>&1 || { echo "[tb] SKIP: '$t' is not installed" >&2; exit 4; }
  done
  tb_require_built tools/nfqdelay
}

# _tb_path_side P cpe|conc: "QUEUE DEV" of one end of path P.
_tb_path_side() {
  case $1:$2 in
    [01]:cpe) echo "$((TB_DELAY_QUEUE_BASE + 2 * $1)) up$1" ;;
    [01]:conc) echo "$((TB_DELAY_QUEUE_BASE + 2 * $1 + 1)) wan$1" ;;
    *) tb_fail "no path '$1' (0 or 1) or side '$2' (cpe or conc)"; return 1 ;;
  esac
}

# _tb_path_rules P: the NFQUEUE rules of path P at both ends, once.
_tb_path_rules() {
  local side q dev ipt
  for side in cpe conc; do
    read -r q dev < <(_tb_path_side "$1" "$side") || return 1
    for ipt in iptables ip6tables; do
      if ! tb_ns_exec "$side" "$ipt" -t mangle -S MPUDP_TB_DELAY >/dev/null 2>&1; then
        tb_ns_exec "$side" "$ipt" -t mangle -N MPUDP_TB_DELAY &&
          tb_ns_exec "$side" "$ipt" -t mangle -A PREROUTING -j MPUDP_TB_DELAY || return 1
      fi
      tb_ns_exec "$side" "$ipt" -t mangle -C MPUDP_TB_DELAY -i "$dev" \
        -j NFQUEUE --queue-num "$q" --queue-bypass 2>/dev/null && continue
      tb_ns_exec "$side" "$ipt" -t mangle -A MPUDP_TB_DELAY -i "$dev" \
        -j NFQUEUE --queue-num "$q" --queue-bypass || return 1
    done
  done
}

_tb_log_count() { local n; n=$(grep -c -- "$2" "$TB_DIR/$1.log" 2>/dev/null); echo "${n:-0}"; }
_tb_log_count_above() { (( $(_tb_log_count "$1" "$2") > $3 )); }

# tb_path_delay P MS [JITTER_MS] [NFQDELAY_OPTION...]: path P delays each packet by MS
# (± JITTER_MS) each way, with any further nfqdelay options (--loss, --outage-at and
# --outage-for, --limit, --reorder, ...) on both ends; replaces what the path had.
tb_path_delay() {
  local p=$1 ms=$2 jitter=${3:-0} side q dev name
  local -A before=()
  shift $(($# < 3 ? $# : 3))
  [[ -x $TB_NFQDELAY ]] || { tb_fail "nfqdelay not built: $TB_NFQDELAY"; return 1; }
  tb_path_clear "$p" || return 1
  # Both ends start before either is waited for: an --outage-at is counted from each
  # one's start, and the two windows should line up.
  for side in cpe conc; do
    read -r q dev < <(_tb_path_side "$p" "$side") || return 1
    name=delay${p}_$side
    before[$side]=$(_tb_log_count "$name" 'nfqdelay: ready')
    tb_bg "$name" "$side" "$TB_NFQDELAY" --queue "$q" --delay "$ms" --jitter "$jitter" "$@"
  done
  for side in cpe conc; do
    name=delay${p}_$side
    if ! tb_poll 5 _tb_log_count_above "$name" 'nfqdelay: ready' "${before[$side]}"; then
      tb_fail "nfqdelay for path $p in $side did not start"
      tail -n 5 "$TB_DIR/$name.log" >&2
      return 1
    fi
  done
  _tb_path_rules "$p" || return 1
  tb_log "path $p: ${ms} ms ± ${jitter} ms each way${*:+ ($*)}"
}

# tb_path_clear P: stop path P's delayers, if any; the path then carries its packets
# undelayed (--queue-bypass). Fails if one did not exit cleanly.
tb_path_clear() {
  local side rc=0
  for side in cpe conc; do
    [[ -n ${TB_PIDS[delay${1}_$side]:-} ]] || continue
    tb_stop "delay${1}_$side" TERM 5 || { rc=1; tb_fail "nfqdelay delay${1}_$side exited badly"; }
  done
  return "$rc"
}

# _tb_path_signal P SIGNAL WORD: signal both delayers of path P and wait until each has
# logged WORD once more, so the path is dark (or light) when this returns.
_tb_path_signal() {
  local side name before
  for side in cpe conc; do
    name=delay${1}_$side
    tb_running "$name" || { tb_fail "path $1 has no delayer in $side (tb_path_delay first)"; return 1; }
    before=$(_tb_log_count "$name" "nfqdelay: $3\$")
    kill "-$2" "${TB_PIDS[$name]}" || return 1
    tb_poll 3 _tb_log_count_above "$name" "nfqdelay: $3\$" "$before" ||
      { tb_fail "nfqdelay $name did not go $3"; return 1; }
  done
  tb_log "path $1: $3"
}

tb_path_dark() { _tb_path_signal "$1" USR1 dark; }
tb_path_light() { _tb_path_signal "$1" USR2 light; }

# tb_path_summary P cpe|conc FIELD: FIELD's value in the last summary line of that
# delayer (after tb_path_clear or tb_stop); empty without one.
tb_path_summary() {
  grep '^nfqdelay: queue ' "$TB_DIR/delay${1}_$2.log" 2>/dev/null | tail -n 1 |
    awk -v f="$3" '{ for (i = 2; i < NF; i++) if ($i == f) print $(i + 1) }'
}

# tb_path_loss P PCT: drop PCT % (0 removes the rule) of path P's packets at random, both
# ways, with nft numgen where the path leaves each end (independent of any delayer).
tb_path_loss() {
  local p=$1 pct=$2 side dev per10k
  per10k=$(awk -v x="$pct" 'BEGIN { if (x !~ /^[0-9.]+$/ || x > 100) exit 1; printf "%d", x * 100 + 0.5 }') ||
    { tb_fail "tb_path_loss: '$pct' is not a percentage"; return 1; }
  for side in cpe conc; do
    dev=$(_tb_path_side "$p" "$side" | awk '{ print $2 }') || return 1
    tb_ns_exec "$side" nft -f - <<EOF || return 1
table inet mpudp_tb_loss {
  chain postrouting {
    type filter hook postrouting priority 0; policy accept;
  }
}
EOF
    # One rule per device, replaced: its handle is found by the device's name.
    local h
    for h in $(tb_ns_exec "$side" nft -a list chain inet mpudp_tb_loss postrouting |
      awk -v d="\"$dev\"" '$0 ~ "oifname " d { print $NF }'); do
      tb_ns_exec "$side" nft delete rule inet mpudp_tb_loss postrouting handle "$h" || return 1
    done
    ((per10k == 0)) && continue
    tb_ns_exec "$side" nft add rule inet mpudp_tb_loss postrouting oifname "$dev" \
      numgen random mod 10000 lt "$per10k" counter drop || return 1
  done
}

#!/bin/sh
# `mpudp-rules print` for a fixed configuration must equal the expected text, for each
# backend and mode (no root, no kernel: print never probes). With an argument "update",
# rewrites the expected files instead.
set -u
here=$(cd "$(dirname "$0")" && pwd)
rules=$here/../../iptables/mpudp-rules
export MPUDPD=${MPUDPD:-${1:?usage: $0 PATH_TO_MPUDPD [update]}}
data=$here/data
rc=0
check() {  # NAME ARGS...
  name=$1
  shift
  out=$(sh "$rules" --config "$data/rules_print.yaml" "$@" print) || {
    echo "FAIL: $name: print exited non-zero" >&2
    rc=1
    return
  }
  if [ "${UPDATE:-0}" = 1 ]; then
    printf '%s\n' "$out" >"$data/rules_print_$name.expected"
  elif ! printf '%s\n' "$out" | diff -u "$data/rules_print_$name.expected" -; then
    echo "FAIL: $name" >&2
    rc=1
  fi
}
[ "${2:-}" = update ] && UPDATE=1
check nft --backend nft
check iptables --backend iptables
check nfqueue_iptables --backend iptables --mode nfqueue --ipv6 off
check nfqueue_nft --backend nft --mode nfqueue --fail open --exclude 198.18.8.0/24
# A mark under a mask (other bits belong to mwan3, SQM, ...), failing open.
check mask_nft --backend nft --mark 0x100 --mask 0xff00 --fail open
check mask_iptables --backend iptables --mark 0x100 --mask 0xff00 --ipv6 off
[ "$rc" = 0 ] && echo "PASS: rules_print"
exit "$rc"

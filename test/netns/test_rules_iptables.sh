#!/usr/bin/env bash
# iptables/mpudp-rules with the iptables backend, IPv4 and IPv6: install, a LAN flow
# through the tunnel, idempotence, status, exact restore on remove (rules_lib.sh).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/rules_lib.sh"
tb_require_root_and_tools
tb_require_built
for t in iptables ip6tables iptables-restore ip6tables-restore; do
  command -v "$t" >/dev/null 2>&1 || { echo "[tb] SKIP: $t is not installed" >&2; exit 4; }
done
export RULES_BACKEND=iptables
tb_setup
rules_run || exit 1
echo "PASS: test_rules_iptables"

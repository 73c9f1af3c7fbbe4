#!/usr/bin/env bash
# iptables/mpudp-rules with the nft backend, IPv4 and IPv6: install, a LAN flow through
# the tunnel, idempotence, status, exact restore on remove (rules_lib.sh).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/rules_lib.sh"
tb_require_root_and_tools
tb_require_built
export RULES_BACKEND=nft
tb_setup
rules_run || exit 1
echo "PASS: test_rules_nft"

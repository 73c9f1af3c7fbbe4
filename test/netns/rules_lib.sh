# shellcheck shell=bash
# The checks shared by test_rules_nft.sh and test_rules_iptables.sh (sourced after lib.sh,
# with RULES_BACKEND set): iptables/mpudp-rules installs the interception in cpe, a LAN
# UDP flow crosses the tunnel (cpe does not forward, and a foreign table drops forwarded
# UDP too), install twice changes nothing, status says 0/1/2, and remove leaves the
# ruleset and the policy routing exactly as they were before install.

RULES=$TB_REPO/iptables/mpudp-rules
# Under busybox ash when it is installed (the shell of OpenWrt), else sh.
if command -v busybox >/dev/null 2>&1 && busybox sh -c 'exit 0' 2>/dev/null; then
  RULES_SH=${RULES_SH:-busybox sh}
else
  RULES_SH=${RULES_SH:-sh}
fi

# iptables' TPROXY cannot fail open (mpudp-rules refuses the pair): closed there.
rules_fail() { if [[ $RULES_BACKEND == iptables ]]; then echo closed; else echo open; fi; }

rules() {
  local RULES_FAIL
  RULES_FAIL=$(rules_fail)
  # shellcheck disable=SC2086 # RULES_SH may be "busybox sh"
  tb_cpe $RULES_SH "$RULES" --backend "$RULES_BACKEND" --fail "$RULES_FAIL" --lan lan0 --port "$TB_TPROXY_PORT" \
    --concentrator "198.18.2.2:$TB_CONC_PORT" "$@"
}

# Everything install may touch, in a stable form (iptables-save without its dated
# comments and counters).
rules_snapshot() {
  {
    echo "## nft"; tb_cpe nft list ruleset 2>/dev/null
    echo "## iptables"; tb_cpe iptables-save 2>/dev/null | grep -v '^#' | sed 's/\[[0-9]*:[0-9]*\]//'
    echo "## ip6tables"; tb_cpe ip6tables-save 2>/dev/null | grep -v '^#' | sed 's/\[[0-9]*:[0-9]*\]//'
    echo "## rules"; tb_cpe ip -4 rule; tb_cpe ip -6 rule
    echo "## routes"; tb_cpe ip -4 route show table all; tb_cpe ip -6 route show table all
  } >"$1"
}

rules_expect_status() {  # WANT
  local rc=0
  rules status >/dev/null || rc=$?
  [[ $rc == "$1" ]] || tb_fail "status exited $rc, wanted $1"
}

rules_run() {
  local ok=1
  # A table of someone else's, which must survive: it drops forwarded LAN UDP, so only the
  # tunnel can carry the flow.
  tb_cpe nft -f - <<'NFT' || return 1
table inet other {
  chain forward {
    type filter hook forward priority 0; policy accept;
    iifname "lan0" meta l4proto udp counter drop
  }
}
NFT
  tb_start_echo || return 1
  rules_snapshot "$TB_DIR/before"
  rules_expect_status 1 || ok=0

  rules install || { tb_fail "install"; return 1; }
  rules_snapshot "$TB_DIR/once"
  rules install >/dev/null || { tb_fail "second install"; return 1; }
  rules_snapshot "$TB_DIR/twice"
  if ! diff -u "$TB_DIR/once" "$TB_DIR/twice"; then tb_fail "install twice differs"; ok=0; fi
  rules_expect_status 0 || ok=0
  rules print >"$TB_DIR/print" || { tb_fail "print"; ok=0; }

  tb_start_proxies multiplexed || return 1
  local dest
  for dest in "198.18.4.2:$TB_ECHO_PORT" "[2001:db8:4::2]:$TB_ECHO_PORT"; do
    tb_cli "$TB_PROBE" --sizes 1,512,1472 --count 3 --ports 2 --timeout 5000 "$dest" ||
      { tb_fail "$RULES_BACKEND: round trip to $dest"; ok=0; }
  done
  tb_stop_proxies || ok=0

  rules remove || { tb_fail "remove"; ok=0; }
  rules_snapshot "$TB_DIR/after"
  if ! diff -u "$TB_DIR/before" "$TB_DIR/after"; then tb_fail "remove did not restore"; ok=0; fi
  rules_expect_status 1 || ok=0

  # Partly installed: one rule gone. Status says 2, remove still restores everything.
  rules install >/dev/null || { tb_fail "re-install"; ok=0; }
  tb_cpe ip -6 rule del pref 100 || ok=0
  rules_expect_status 2 || ok=0
  rules remove >/dev/null || ok=0
  rules_snapshot "$TB_DIR/after2"
  if ! diff -u "$TB_DIR/before" "$TB_DIR/after2"; then tb_fail "remove after partial"; ok=0; fi

  # Errors are clear and leave nothing behind.
  local err
  err=$(tb_cpe sh "$RULES" --backend "$RULES_BACKEND" --fail "$(rules_fail)" --lan nosuch0 install 2>&1) &&
    { tb_fail "install on an unknown interface succeeded"; ok=0; }
  [[ $err == *"unknown interface 'nosuch0'"* ]] || { tb_fail "unclear error: $err"; ok=0; }
  rules_snapshot "$TB_DIR/after3"
  diff -q "$TB_DIR/before" "$TB_DIR/after3" >/dev/null || { tb_fail "failed install left rules"; ok=0; }

  ((ok))
}

#!/usr/bin/env bash
# iptables/mpudp-rules takes its settings from mpudpd (--print-rules) and removes what it
# installed, not what the file says now. Run under busybox sh with only OpenWrt's default
# applets (plus nft, ip, iptables) on the PATH.
#  - rules: {table: 254, pref: 40000} (issue 21): mpudpd --check and mpudp-rules refuse
#    it alike, with the loader's message; table 200, pref 30000 and a mark under a mask
#    install, carry a LAN flow through the tunnel, and remove cleanly;
#  - the mark edited in the file after install: remove still leaves nothing behind, and
#    an install with the new mark replaces the old rule instead of adding one;
#  - rules.fail with the daemon stopped: open lets LAN UDP take the normal route (nft),
#    closed drops it (nft and iptables).
# No -e: the snapshots grep output that may be empty; every step checks itself.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/rules_lib.sh"
# shellcheck source=../common/openwrt_path.sh
source "$(dirname "$0")/../common/openwrt_path.sh"
tb_require_root_and_tools
tb_require_built
command -v busybox >/dev/null || { echo "[tb] SKIP: busybox is not installed" >&2; exit 4; }
tb_setup
owrt=$(owrt_path "$TB_DIR/owrt-bin" nft ip iptables ip6tables iptables-restore \
  ip6tables-restore iptables-save ip6tables-save) || exit 1

ok=1
owrt_rules() { tb_cpe env PATH="$owrt" "$owrt/sh" "$RULES" "$@"; }

write_cfg() {  # MARK [EXTRA_RULES_LINE]
  cat >"$TB_DIR/rules.yaml" <<YAML
role: cpe
auth: none
cpe:
  tproxy_port: $TB_TPROXY_PORT
  concentrator: "198.18.2.2:$TB_CONC_PORT"
rules:
  lan: [lan0]
  backend: nft
  table: 200
  pref: 30000
  mark: $1
  mask: 0xff00
${2:-}
YAML
}

# 1. The issue's example: one verdict, from one parser.
cat >"$TB_DIR/bad.yaml" <<YAML
role: cpe
auth: none
cpe: {concentrator: "198.18.2.2:$TB_CONC_PORT"}
rules: {table: 254, pref: 40000}
YAML
rc=0; check=$("$TB_DAEMON" --check -c "$TB_DIR/bad.yaml" 2>&1) || rc=$?
[[ $rc == 64 && $check == *'rules.table: "254" is reserved'* ]] ||
  { tb_fail "mpudpd --check on table 254: rc $rc: $check"; ok=0; }
rc=0; err=$(owrt_rules --config "$TB_DIR/bad.yaml" print 2>&1) || rc=$?
[[ $rc == 64 && $err == *'rules.table: "254" is reserved'* ]] ||
  { tb_fail "mpudp-rules on table 254: rc $rc: $err"; ok=0; }
rc=0; err=$(owrt_rules --lan lan0 --pref 40000 print 2>&1) || rc=$?
[[ $rc == 64 && $err == *'rules.pref: "40000" is not a number in 1..32765'* ]] ||
  { tb_fail "mpudp-rules --pref 40000: rc $rc: $err"; ok=0; }

# 2. Table 200, pref 30000, mark 0x100 under 0xff00, end to end.
tb_start_echo || exit 1
rules_snapshot "$TB_DIR/before"
write_cfg 0x100
owrt_rules --config "$TB_DIR/rules.yaml" install || { tb_fail "install"; exit 1; }
# Read whole before grep -q: an early exit would SIGPIPE ip, which pipefail counts.
ip_rules=$(tb_cpe ip -4 rule)
grep -q '^30000:.*fwmark 0x100/0xff00 lookup 200' <<<"$ip_rules" ||
  { tb_fail "no ip rule for fwmark 0x100/0xff00 table 200"; echo "$ip_rules" >&2; ok=0; }
owrt_rules --config "$TB_DIR/rules.yaml" status >/dev/null || { tb_fail "status after install"; ok=0; }
tb_start_proxies multiplexed || exit 1
for dest in "198.18.4.2:$TB_ECHO_PORT" "[2001:db8:4::2]:$TB_ECHO_PORT"; do
  tb_cli "$TB_PROBE" --sizes 1,512,1472 --count 3 --ports 2 --timeout 5000 "$dest" ||
    { tb_fail "round trip to $dest with table 200, pref 30000"; ok=0; }
done
tb_stop_proxies || ok=0

# 3. The mark edited, then remove: the snapshot, not the file, says what goes.
write_cfg 0x200
owrt_rules --config "$TB_DIR/rules.yaml" remove >/dev/null || { tb_fail "remove"; ok=0; }
rules_snapshot "$TB_DIR/after"
diff -u "$TB_DIR/before" "$TB_DIR/after" || { tb_fail "remove after editing the mark left rules"; ok=0; }
[[ ! -e $MPUDP_RULES_STATE ]] || { tb_fail "state file left after remove"; ok=0; }

# 4. Install, edit the mark, install again: one rule, the new one.
write_cfg 0x100
owrt_rules --config "$TB_DIR/rules.yaml" install >/dev/null || { tb_fail "install 0x100"; ok=0; }
write_cfg 0x200
owrt_rules --config "$TB_DIR/rules.yaml" install >/dev/null || { tb_fail "install 0x200"; ok=0; }
ip_rules=$(tb_cpe ip -4 rule)
n=$(grep -c 'lookup 200' <<<"$ip_rules")
grep -q 'fwmark 0x200/0xff00 lookup 200' <<<"$ip_rules" && [[ $n == 1 ]] ||
  { tb_fail "reinstall with a new mark: $(grep 'lookup 200' <<<"$ip_rules")"; ok=0; }
owrt_rules remove >/dev/null || { tb_fail "remove without a config"; ok=0; }
rules_snapshot "$TB_DIR/after2"
diff -u "$TB_DIR/before" "$TB_DIR/after2" || { tb_fail "remove after reinstall left rules"; ok=0; }

# 5. rules.fail, daemon stopped. cpe and conc route natively, so open has a way to go.
tb_direct_routing || exit 1
probe() { tb_cli "$TB_PROBE" --sizes 1,512 --count 3 --ports 2 --timeout 1500 "$@"; }
probe "198.18.4.2:$TB_ECHO_PORT" || { tb_fail "native route without rules"; ok=0; }
fail_case() {  # BACKEND FAIL WANT(pass|drop)
  write_cfg 0x100 "  fail: $2"
  sed -i "s/backend: nft/backend: $1/" "$TB_DIR/rules.yaml"
  owrt_rules --config "$TB_DIR/rules.yaml" install >/dev/null || { tb_fail "$1/$2: install"; ok=0; return; }
  local dest got
  for dest in "198.18.4.2:$TB_ECHO_PORT" "[2001:db8:4::2]:$TB_ECHO_PORT"; do
    if probe "$dest" >/dev/null 2>&1; then got=pass; else got=drop; fi
    [[ $got == "$3" ]] || { tb_fail "$1, fail $2, daemon stopped: $dest: $got, wanted $3"; ok=0; }
  done
  owrt_rules remove >/dev/null || { tb_fail "$1/$2: remove"; ok=0; }
}
fail_case nft open pass
fail_case nft closed drop
if command -v iptables-restore >/dev/null && command -v ip6tables-restore >/dev/null; then
  fail_case iptables closed drop
  # The pair iptables cannot honour is refused, not installed with another meaning.
  write_cfg 0x100 "  fail: open"
  sed -i "s/backend: nft/backend: iptables/" "$TB_DIR/rules.yaml"
  rc=0; err=$(owrt_rules --config "$TB_DIR/rules.yaml" install 2>&1) || rc=$?
  [[ $rc == 64 && $err == *"needs the nft backend"* ]] ||
    { tb_fail "iptables + fail open: rc $rc: $err"; ok=0; }
fi

((ok)) || exit 1
echo "PASS: test_rules_state"

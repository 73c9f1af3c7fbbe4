# shellcheck shell=bash
# Helpers shared by test_paths_*.sh (sourced after lib.sh): daemons whose configs carry a
# `paths:` section, and views of the kernel's MPTCP endpoints.

# pm_start_proxies CPE_EXTRA [CONC_EXTRA]: the testbed's configs (multiplexed) with the
# given YAML appended, then concentrator and CPE, waiting until both listen.
pm_start_proxies() {
  tb_write_configs multiplexed || return 1
  printf '%s\n' "$1" >>"$TB_DIR/cpe.yaml"
  [[ -z ${2:-} ]] || printf '%s\n' "$2" >>"$TB_DIR/conc.yaml"
  tb_start_daemon conc conc "$TB_DIR/conc.yaml" || return 1
  if ! tb_wait_listen conc tcp "$TB_CONC_PORT" 1 10; then
    tb_fail "concentrator does not listen on :$TB_CONC_PORT"
    return 1
  fi
  tb_start_daemon cpe cpe "$TB_DIR/cpe.yaml" || return 1
  if ! tb_wait_listen cpe udp "${TB_TPROXY_PORT:-5555}" 1 10; then
    tb_fail "CPE does not listen on UDP :${TB_TPROXY_PORT:-5555}"
    return 1
  fi
}

# pm_endpoints NS: the endpoints without their ids ("ADDR FLAGS... dev DEV"), sorted.
pm_endpoints() {
  tb_ns_exec "$1" ip mptcp endpoint show | sed -E 's/ id [0-9]+//; s/ +$//' | sort
}

# pm_endpoints_raw NS: with ids, sorted.
pm_endpoints_raw() { tb_ns_exec "$1" ip mptcp endpoint show | sed -E 's/ +$//' | sort; }

_pm_has_endpoint() { pm_endpoints "$1" | grep -Eq -- "$2"; }
_pm_lacks_endpoint() { ! _pm_has_endpoint "$1" "$2"; }

# pm_wait_endpoint NS REGEX TIMEOUT_S / pm_wait_no_endpoint NS REGEX TIMEOUT_S
pm_wait_endpoint() {
  tb_poll "$3" _pm_has_endpoint "$1" "$2" && return 0
  echo "[pm] no endpoint matching /$2/ in $1 after $3 s:" >&2
  pm_endpoints_raw "$1" >&2
  return 1
}
pm_wait_no_endpoint() {
  tb_poll "$3" _pm_lacks_endpoint "$1" "$2" && return 0
  echo "[pm] an endpoint matching /$2/ is still in $1 after $3 s:" >&2
  pm_endpoints_raw "$1" >&2
  return 1
}

# pm_subflow_from ADDR: an established subflow from the CPE's ADDR to the concentrator.
pm_subflow_from() {
  tb_cpe ss -tnH state established "( dport = :$TB_CONC_PORT )" 2>/dev/null |
    awk -v a="$1" '{ l = $3; sub(/:[0-9]+$/, "", l); sub(/%.*$/, "", l); gsub(/[][]/, "", l) } l == a { f = 1 } END { exit !f }'
}

# pm_restore_up0_routes: what `ip link set up0 down` flushed in cpe (a real router's
# DHCP client or netifd would put them back).
pm_restore_up0_routes() {
  ip -n "$TB_NS_CPE" route replace 198.18.2.2/32 via 198.18.1.2 dev up0 metric 100 &&
    ip -n "$TB_NS_CPE" route replace 198.18.1.0/24 dev up0 src 198.18.1.1 table 101 &&
    ip -n "$TB_NS_CPE" route replace default via 198.18.1.2 dev up0 table 101
}

# Traffic counters of a cpe uplink.
pm_tx() { tb_tx_bytes cpe "$1"; }

# pm_counter NAME [DAEMON]: a counter of the running daemon (cpe by default), read over
# its control socket (the final stats log line is cut at the logger's line length).
pm_counter() {
  "$MPUDP_BUILD/daemon/mpudpctl" -s "$TB_DIR/${2:-cpe}.sock" status --json 2>/dev/null |
    grep -oE "\"$1\":[0-9]+" | head -n 1 | cut -d: -f2
}

# pm_testbed: what the path tests share: root and a build, the testbed without endpoints
# of its own (the daemons' path managers make them), TPROXY rules and the echo server.
# Exits the test when any of it fails.
pm_testbed() {
  tb_require_root_and_tools
  tb_require_built
  TB_MPTCP_ENDPOINTS=0
  tb_setup || exit 1
  tb_tproxy_rules || exit 1
  tb_start_echo || exit 1
}


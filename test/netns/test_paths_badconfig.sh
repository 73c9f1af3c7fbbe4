#!/usr/bin/env bash
# A path naming an interface that does not exist stops the daemon at start with a clear
# message, and so does signal combined with fullmesh; neither leaves an endpoint behind.
set -u
source "$(dirname "$0")/lib.sh"
tb_require_root_and_tools
tb_require_built daemon/mpudpd
TB_MPTCP_ENDPOINTS=0
tb_setup || exit 1

fail=0
base="role: cpe
auth: none
cpe:
  concentrator: \"198.18.2.2:$TB_CONC_PORT\""

# run_bad NAME YAML REGEX: mpudpd must exit non-zero, saying REGEX, within 10 s.
run_bad() {
  printf '%s\n%s\n' "$base" "$2" >"$TB_DIR/$1.yaml"
  chmod 600 "$TB_DIR/$1.yaml"
  timeout 10 ip netns exec "$TB_NS_CPE" "$TB_DAEMON" -c "$TB_DIR/$1.yaml" >"$TB_DIR/$1.out" 2>&1
  local rc=$?
  if (( rc == 0 || rc == 124 )); then
    echo "FAIL: $1: mpudpd exited with $rc"; fail=1
  elif ! grep -Eq -- "$3" "$TB_DIR/$1.out"; then
    echo "FAIL: $1: no message matching /$3/:"; cat "$TB_DIR/$1.out"; fail=1
  fi
}

run_bad missing "paths:
  - interface: up0
  - interface: up9" "interface 'up9' does not exist"
run_bad meshsignal "paths:
  - interface: up0
    signal: true
    fullmesh: true" "$TB_DIR/meshsignal.yaml:[0-9]+:[0-9]+: .*signal.*fullmesh"
run_bad unknownkey "paths:
  - interface: up0
    subflows: true" "$TB_DIR/unknownkey.yaml:[0-9]+:[0-9]+: .*unknown key"

eps=$(tb_cpe ip mptcp endpoint show)
[[ -z $eps ]] || { echo "FAIL: endpoints left behind: $eps"; fail=1; }
((fail)) && exit 1
echo "PASS: bad paths are rejected at start with a clear message"

#!/usr/bin/env bash
# `mpudpd --check -c FILE` exits 64 (EX_USAGE)
# on a bad configuration and names the spot as FILE:LINE:COL:, and exits 0 on the
# testbed's own configurations. Needs no namespace and no root.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
tb_require_built daemon/mpudpd

TB_DIR=$(mktemp -d "${TMPDIR:-/tmp}/mpudp-badconfig.XXXXXX")
trap 'rm -rf "$TB_DIR"' EXIT
cd "$TB_DIR"
fails=0

# expect_bad NAME REGEX: bad.yaml holds the case; --check must exit 64 and print REGEX.
expect_bad() {
  local out rc=0
  out=$("$TB_DAEMON" --check -c bad.yaml 2>&1) || rc=$?
  if ((rc != 64)); then
    echo "FAIL $1: exit $rc, wanted 64; output: $out" >&2
    fails=$((fails + 1))
  elif ! grep -Eq -- "$2" <<<"$out"; then
    echo "FAIL $1: output does not match /$2/: $out" >&2
    fails=$((fails + 1))
  else
    echo "ok   $1: $out"
  fi
}

# A value of the wrong kind: the position is the value's (line 3, column 15).
cat >bad.yaml <<'YAML'
role: cpe
log_level: debug
session_mode: sideways
cpe:
  concentrator: "198.18.2.2:7000"
YAML
expect_bad "bad session_mode" '^bad\.yaml:3:15: '

# An endpoint without a port (line 5, column 17).
cat >bad.yaml <<'YAML'
role: cpe
log_level: debug
session_mode: multiplexed
cpe:
  concentrator: "198.18.2.2"
YAML
expect_bad "endpoint without port" '^bad\.yaml:5:17: '

# An unknown key is an error, not ignored (line 2, column 1).
cat >bad.yaml <<'YAML'
role: cpe
colour: blue
cpe:
  concentrator: "198.18.2.2:7000"
YAML
expect_bad "unknown key" '^bad\.yaml:2:1: '

# YAML that does not parse: position somewhere on line 4 or 5.
cat >bad.yaml <<'YAML'
role: concentrator
log_level: debug
concentrator:
  listen: ["0.0.0.0:7000", "[::]:7000"
bindings: {}
YAML
expect_bad "unparsable YAML" '^bad\.yaml:[45]:[0-9]+: '

# A concentrator without listen addresses.
cat >bad.yaml <<'YAML'
role: concentrator
YAML
expect_bad "concentrator without listen" '^bad\.yaml:[0-9]+:[0-9]+: '

# The testbed's own configurations are fine.
tb_write_configs multiplexed
tb_write_configs per-binding 2s
for f in cpe.yaml conc.yaml; do
  if out=$("$TB_DAEMON" --check -c "$f" 2>&1); then
    echo "ok   $f accepted"
  else
    echo "FAIL $f rejected: $out" >&2
    fails=$((fails + 1))
  fi
done

((fails == 0)) || { echo "FAIL: draft_core_badconfig ($fails cases)" >&2; exit 1; }
echo "PASS: test_core_badconfig"

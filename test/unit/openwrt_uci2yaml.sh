#!/bin/sh
# OpenWrt package files (openwrt/mpudp/files): the init script and the UCI -> YAML
# translator parse (sh -n, and busybox ash -n when busybox is installed); each fixture
# test/unit/data/openwrt/NAME.uci (`uci show mpudp` output) translates to exactly
# NAME.yaml, under sh and busybox ash; that YAML passes `mpudpd --check`; the shipped
# /etc/config/mpudp translates to a valid configuration; bad UCI settings are refused;
# the init script starts, reloads and stops against stubs of OpenWrt's functions
# (openwrt_init.sh). busybox ash runs with a PATH of OpenWrt's default applets only
# (test/common/openwrt_path.sh), so an applet OpenWrt leaves out fails here too.
#
#   openwrt_uci2yaml.sh MPUDPD         (UPDATE=1 rewrites the expected .yaml files)
set -u
here=$(cd "$(dirname "$0")" && pwd)
files=$here/../../openwrt/mpudp/files
data=$here/data/openwrt
mpudpd=${1:?usage: $0 PATH_TO_MPUDPD}
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
rc=0
fail() {
  echo "FAIL: $*" >&2
  rc=1
}

# shellcheck source=../common/openwrt_path.sh
. "$here/../common/openwrt_path.sh"
shells='sh'
if command -v busybox >/dev/null 2>&1; then
  shells="sh busybox_ash"
  owrt=$(owrt_path "$tmp/owrt-bin") || exit 1
else
  echo "note: busybox not installed, ash not tested"
fi
# shellcheck disable=SC2317 # called as $s
busybox_ash() { PATH=$owrt "$owrt/ash" "$@"; }

# 1. Syntax.
for s in $shells; do
  for f in "$files/mpudp.init" "$files/uci2yaml.sh"; do
    $s -n "$f" || fail "$s -n $(basename "$f")"
  done
done

# mpudpd --check on FILE, with auth.psk_file pointed at a real key file (the loader
# reads the key; the fixtures name paths that do not exist here).
key=$tmp/psk
(umask 077 && printf '%064d\n' 7 >"$key")
check_yaml() {  # NAME FILE
  (umask 077 && sed "s|^  psk_file: .*|  psk_file: \"$key\"|" "$2" >"$tmp/check.yaml")
  "$mpudpd" --check -c "$tmp/check.yaml" >"$tmp/check.out" 2>&1 ||
    fail "$1: mpudpd --check: $(cat "$tmp/check.out")"
}

# 2. Fixtures.
n=0
for uci in "$data"/*.uci; do
  name=$(basename "$uci" .uci)
  case $name in bad_*) continue ;; esac
  n=$((n + 1))
  for s in $shells; do
    out=$tmp/$name.$s.yaml
    if ! $s "$files/uci2yaml.sh" --from-file "$uci" -o "$out"; then
      fail "$name: uci2yaml under $s exited non-zero"
      continue
    fi
    if [ "${UPDATE:-0}" = 1 ] && [ "$s" = sh ]; then
      cp "$out" "$data/$name.yaml"
    elif ! diff -u "$data/$name.yaml" "$out"; then
      fail "$name: output under $s differs from $name.yaml"
    fi
    # The file is written 0600: the daemon refuses world-writable files anyway.
    [ "$(stat -c %a "$out")" = 600 ] || fail "$name: output mode $(stat -c %a "$out"), not 600"
  done
  check_yaml "$name" "$tmp/$name.sh.yaml"
  # From standard input, to standard output: the same text.
  sh "$files/uci2yaml.sh" --from-file - <"$uci" | diff -q - "$tmp/$name.sh.yaml" >/dev/null ||
    fail "$name: stdin/stdout output differs from -o output"
done
[ "$n" -gt 0 ] || fail "no fixtures in $data"

# 3. Bad settings: each bad_*.uci must be refused (exit 1, a message, no output file).
for uci in "$data"/bad_*.uci; do
  [ -e "$uci" ] || continue
  name=$(basename "$uci" .uci)
  for s in $shells; do
    $s "$files/uci2yaml.sh" --from-file "$uci" -o "$tmp/$name.yaml" 2>"$tmp/err"
    st=$?
    [ "$st" = 1 ] || fail "$name: exit status $st under $s, not 1"
    [ -s "$tmp/err" ] || fail "$name: no message under $s"
    [ ! -e "$tmp/$name.yaml" ] || fail "$name: output written under $s"
    for t in "$tmp"/*.tmp.*; do
      [ -e "$t" ] && fail "$name: temporary file $(basename "$t") left under $s"
    done
  done
done

# 4. The shipped /etc/config/mpudp, turned into `uci show` form (a small reader for the
# config/option/list lines it has), translates to a configuration mpudpd accepts.
awk -v q="'" '
  function flush() { for (i = 1; i <= nk; i++) print pre "." k[i] "=" v[k[i]]; nk = 0; split("", v) }
  /^[ \t]*(#|$)/ { next }
  $1 == "config" {
    flush()
    t = $2; nm = $3; gsub(q, "", nm)
    if (nm == "") { nm = "@" t "[" (cnt[t] + 0) "]"; cnt[t]++ } else cnt[t]++
    pre = "mpudp." nm; print pre "=" t; next
  }
  $1 == "option" || $1 == "list" {
    key = $2; val = $0; sub(/^[ \t]*[a-z]+[ \t]+[^ \t]+[ \t]+/, "", val)
    if (!(key in v)) k[++nk] = key
    v[key] = ($1 == "list" && key in v) ? v[key] " " val : val
  }
  END { flush() }' "$files/mpudp.config" >"$tmp/shipped.uci"
if sh "$files/uci2yaml.sh" --from-file "$tmp/shipped.uci" -o "$tmp/shipped.yaml"; then
  check_yaml "shipped mpudp.config" "$tmp/shipped.yaml"
  grep -q '^role: "cpe"$' "$tmp/shipped.yaml" || fail "shipped mpudp.config: no role cpe"
else
  fail "shipped mpudp.config does not translate"
fi

# 5. The init script against stubs of OpenWrt's functions.
for s in $shells; do
  mkdir -p "$tmp/init.$s" || exit 1
  $s "$here/openwrt_init.sh" "$mpudpd" "$tmp/init.$s" || fail "init script under $s"
done

[ "$rc" = 0 ] && echo "PASS: openwrt_uci2yaml ($n fixtures, shells: $shells)"
exit "$rc"

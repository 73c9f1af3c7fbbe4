#!/bin/sh
# The service units pass `systemd-analyze verify` once installed: binaries where the units
# say, every directive known to this systemd. Usage: systemd_verify.sh BUILD_DIR
set -eu
build=$1
command -v systemd-analyze >/dev/null 2>&1 || { echo "SKIP: no systemd-analyze"; exit 4; }
dest=$(mktemp -d)
trap 'rm -rf "$dest"' EXIT
cmake --install "$build" --prefix "$dest/usr" >/dev/null
prefix=$(sed -n 's/^CMAKE_INSTALL_PREFIX:PATH=//p' "$build/CMakeCache.txt")
for unit in mpudpd.service mpudpd-cpe.service mpudpd@.service; do
  src=$(find "$dest" -name "$unit")
  [ -n "$src" ] || { echo "FAIL: $unit was not installed"; exit 1; }
  # The unit names the configured prefix; point it at this temporary install.
  sed "s#$prefix/#$dest/usr/#g" "$src" >"$dest/$unit"
  grep -q '^Type=notify' "$dest/$unit" || { echo "FAIL: $unit is not Type=notify"; exit 1; }
  # The concentrator runs as its own user with two capabilities at most; the CPE as root,
  # bounded to what interception needs.
  case $unit in
    mpudpd.service | mpudpd@.service) caps='CAP_NET_ADMIN CAP_NET_BIND_SERVICE'
      grep -qx 'User=mpudp' "$dest/$unit" || { echo "FAIL: $unit runs as root"; exit 1; } ;;
    *) caps='CAP_NET_ADMIN CAP_NET_RAW CAP_NET_BIND_SERVICE' ;;
  esac
  grep -qx "CapabilityBoundingSet=$caps" "$dest/$unit" ||
    { echo "FAIL: $unit does not bound capabilities to $caps"; exit 1; }
  # A template verifies as one of its instances.
  check=$dest/$unit
  case $unit in *@.service) check=$dest/${unit%@.service}@core0.service; cp "$dest/$unit" "$check" ;; esac
  if ! out=$(systemd-analyze verify --man=no "$check" 2>&1); then
    echo "FAIL: systemd-analyze verify $unit:"; echo "$out"; exit 1
  fi
  # verify exits 0 on some warnings; an unknown directive must still fail the test.
  if printf '%s\n' "$out" | grep -Ei 'unknown (key|lvalue)|failed|bad' ; then
    echo "FAIL: $unit has problems"; exit 1
  fi
  echo "ok $unit"
done
for page in man8/mpudpd.8 man8/mpudpctl.8 man5/mpudp.yaml.5; do
  [ -f "$dest/usr/share/man/$page" ] || { echo "FAIL: man page $page not installed"; exit 1; }
done
echo "PASS: systemd units verify, man pages installed"

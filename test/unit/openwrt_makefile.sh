#!/bin/sh
# openwrt/mpudp/Makefile agrees with the source tree: PKG_VERSION is CMake's project
# version (the release tarball is mpudp-VERSION.tar.gz, `--target dist`); PKG_HASH is a
# sha256 or "skip"; every ./files/NAME it installs exists and every file in files/ is
# installed; the conffiles keep the key directory; the package depends on the kernel
# modules the rules' expressions need.
set -u
here=$(cd "$(dirname "$0")" && pwd)
top=$here/../..
mk=$top/openwrt/mpudp/Makefile
rc=0
fail() { echo "FAIL: openwrt_makefile: $*" >&2; rc=1; }

cmake_version=$(sed -n 's/^project(mpudp VERSION \([0-9.]*\).*/\1/p' "$top/CMakeLists.txt")
pkg_version=$(sed -n 's/^PKG_VERSION:=//p' "$mk")
[ -n "$cmake_version" ] || fail "no project version in CMakeLists.txt"
[ "$pkg_version" = "$cmake_version" ] ||
  fail "PKG_VERSION $pkg_version, CMake project version $cmake_version"
grep -qx 'PKG_SOURCE:=$(PKG_NAME)-$(PKG_VERSION).tar.gz' "$mk" ||
  fail "PKG_SOURCE is not the dist tarball name"
hash=$(sed -n 's/^PKG_HASH:=//p' "$mk")
case $hash in
  skip) ;;
  *) printf '%s\n' "$hash" | grep -qx '[0-9a-f]\{64\}' || fail "PKG_HASH '$hash' is not a sha256" ;;
esac
grep -q '^PKG_LICENSE:=.' "$mk" || fail "no PKG_LICENSE"
for f in $(sed -n 's/^PKG_LICENSE_FILES:=//p' "$mk"); do
  [ -e "$top/$f" ] || echo "note: $f (PKG_LICENSE_FILES) is not in the tree yet"
done

for f in $(sed -n 's|.*\./files/\([^ ]*\).*|\1|p' "$mk"); do
  [ -e "$top/openwrt/mpudp/files/$f" ] || fail "Makefile installs ./files/$f, which does not exist"
done
for f in "$top"/openwrt/mpudp/files/*; do
  n=$(basename "$f")
  grep -q "\./files/$n " "$mk" || fail "files/$n is not installed by the Makefile"
done

sed -n '/^define Package\/mpudp\/conffiles/,/^endef/p' "$mk" >"${TMPDIR:-/tmp}/conffiles.$$"
for c in /etc/config/mpudp /etc/mpudp/; do
  grep -qx "$c" "${TMPDIR:-/tmp}/conffiles.$$" || fail "conffiles lack $c (sysupgrade would drop it)"
done
rm -f "${TMPDIR:-/tmp}/conffiles.$$"

# The nft rules use tproxy, fib and queue; the daemon's control socket is under /var/run.
for d in +kmod-nft-tproxy +kmod-nft-fib +kmod-nft-queue +kmod-nfnetlink-queue +nftables +ip-full; do
  grep -q -- "$d" "$mk" || fail "DEPENDS lacks $d"
done
grep -q 'fib daddr' "$top/iptables/mpudp-rules" || echo "note: the rules no longer use fib"
grep -q -- '-DMPUDP_CONTROL_SOCKET=/var/run/' "$mk" || fail "control socket not under /var/run"

[ "$rc" = 0 ] && echo "PASS: openwrt_makefile ($pkg_version)"
exit "$rc"

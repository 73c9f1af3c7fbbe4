#!/usr/bin/env bash
# Installs every Debian 12 package needed to build and test mpudp (compilers, libraries,
# the netfilter and iproute2 tools of the namespace tests). Idempotent: when everything is
# already installed it touches nothing and returns at once; otherwise it refreshes the
# package lists first, then installs what is missing.
set -euo pipefail

PACKAGES=(
  # build
  build-essential cmake pkg-config g++ clang libclang-rt-14-dev
  # libraries
  # (no libnl: netlink goes through libmnl, see docs/ARCHITECTURE.md "Path manager")
  libev-dev libyaml-cpp-dev catch2 libmnl-dev libnetfilter-queue-dev libssl-dev
  # namespace tests and the demo
  nftables iptables iproute2 procps kmod python3
  # the TLS tests make their CA, certificates and CRLs with the openssl CLI
  openssl
  # the Debian package (tools/deb-test.sh): debian/control's Build-Depends beyond the
  # above, lintian, and systemd for sysusers and `systemd-analyze verify`
  debhelper dpkg-dev lintian systemd
  # iptables/mpudp-rules and openwrt/mpudp/files are tested under busybox ash too
  # (OpenWrt's shell)
  busybox
)

missing=()
for p in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
  [[ $status == ii* ]] || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#PACKAGES[@]} packages already installed"
  exit 0
fi

SUDO=
if [[ $EUID -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO=sudo
  else
    echo "install-deps: missing ${missing[*]}, and not root (no sudo either)" >&2
    exit 1
  fi
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends "${missing[@]}"

#!/usr/bin/env bash
# Router builds: cross-compiles mpudpd for ARCH with Debian's cross toolchain and
# multiarch libraries, runs the unit-test executables under user-mode qemu, and prints
# the stripped size of mpudpd.
#
#   tools/cross-build.sh ARCH        ARCH: aarch64 | mipsel
#
# Build directory: build-cross-ARCH (MinSizeRel). Only the daemon and the unit-test
# executables are built (no tools, no fuzzers); the unit tests that are shell scripts
# (they need host tools, or run the daemon) are left to the native build.
# Needs root (or sudo) the first time: it adds the dpkg architecture and installs the
# cross compiler, the -dev packages for that architecture and qemu-user-static.
# Environment: JOBS (build parallelism, nproc).
set -euo pipefail
cd "$(dirname "$0")/.." || exit 1

ARCH=${1:-}
case $ARCH in
  aarch64) DEBARCH=arm64 TRIPLET=aarch64-linux-gnu ;;
  mipsel) DEBARCH=mipsel TRIPLET=mipsel-linux-gnu ;;
  *)
    echo "usage: $0 aarch64|mipsel" >&2
    exit 2
    ;;
esac
JOBS=${JOBS:-$(nproc)}
BUILD=build-cross-$ARCH
T0=$SECONDS
log() { printf 'cross-build[%s] t+%ds: %s\n' "$ARCH" "$((SECONDS - T0))" "$*"; }

# 1. Packages: the cross compiler, the target's -dev packages, qemu. Catch2 is headers
# (architecture-independent), already installed by tools/install-deps.sh. NOT
# libyaml-cpp-dev:<arch>: in bookworm it is not Multi-Arch: same, and installing it
# removes the host's libyaml-cpp-dev (breaking every native build); the toolchain file
# uses the host's headers and the target's libyaml-cpp0.7 (tools/cross-yaml-cpp/).
# libatomic1: the tests run on the target's multiarch runtime (see the toolchain file), and
# on mipsel 64-bit atomics link libatomic.so.1 (unit_tls), which only the cross
# toolchain's own libatomic1-<arch>-cross had.
PACKAGES=(g++-"$TRIPLET" qemu-user-static libyaml-cpp-dev)
for p in libev-dev libyaml-cpp0.7 libmnl-dev libnetfilter-queue-dev libatomic1; do
  PACKAGES+=("$p:$DEBARCH")
done
missing=()
for p in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
  [[ $status == ii* ]] || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=
  if [[ $EUID -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 || {
      echo "cross-build: missing ${missing[*]}, and not root (no sudo either)" >&2
      exit 1
    }
    SUDO=sudo
  fi
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  if ! dpkg --print-foreign-architectures | grep -qx "$DEBARCH"; then
    $SUDO dpkg --add-architecture "$DEBARCH"
  fi
  $SUDO apt-get update
  # --no-remove: never let apt take a host package away to satisfy these.
  $SUDO apt-get install -y --no-install-recommends --no-remove "${missing[@]}"
fi

# 1b. OpenSSL for the target, unpacked into the build tree instead of installed: libssl3
# is Multi-Arch: same, so dpkg wants the target's version equal to the host's, and the
# host's comes from bookworm-security, which no longer carries mipsel (3.0.22 on amd64
# against 3.0.20 for mipsel in 2026-12): installing would downgrade the host's OpenSSL,
# or on arm64 upgrade it as a side effect. The .pc files are pointed at the unpacked
# tree; the executables find the libraries there by their build RPATH (also under qemu).
SSLROOT=$PWD/$BUILD/openssl-sysroot
if [[ ! -f $SSLROOT/.unpacked ]]; then
  log "unpacking libssl3:$DEBARCH and libssl-dev:$DEBARCH into $SSLROOT"
  rm -rf "$SSLROOT"
  mkdir -p "$SSLROOT/debs"
  (cd "$SSLROOT/debs" && apt-get download "libssl3:$DEBARCH" "libssl-dev:$DEBARCH" >/dev/null)
  for deb in "$SSLROOT"/debs/*.deb; do dpkg-deb -x "$deb" "$SSLROOT"; done
  # The target's opensslconf/configuration.h sit in include/TRIPLET, which the cross
  # compiler only searches under /usr.
  sed -i -e "s|^prefix=/usr\$|prefix=$SSLROOT/usr|" \
    -e "s|^Cflags: -I\${includedir}\$|Cflags: -I\${includedir} -I\${includedir}/$TRIPLET|" \
    "$SSLROOT/usr/lib/$TRIPLET/pkgconfig/"*.pc
  touch "$SSLROOT/.unpacked"
fi
export MPUDP_CROSS_PKG_CONFIG_PATH=$SSLROOT/usr/lib/$TRIPLET/pkgconfig

# 2. Configure and build the daemon and the unit-test executables. The tests to run are
# the registered unit.NAME tests that have an executable (test/unit/test_NAME.cc), minus
# those listed here as beyond qemu-user (space-separated NAMEs; none today). Cases that
# need what qemu-user does not translate skip themselves where they detect it (SOL_MPTCP
# options in test_subflows.cc, TCP_CONGESTION and SO_RXQ_OVFL in test_io.cc). unit.ctl
# and unit.privileges once hung here: a loader/libc mismatch, see
# CMAKE_CROSSCOMPILING_EMULATOR in tools/toolchain-debian-cross.cmake.
QEMU_UNSUPPORTED=" "
log "configure $BUILD"
mkdir -p "$BUILD"
cmake -S . -B "$BUILD" -DCMAKE_TOOLCHAIN_FILE="$PWD/tools/toolchain-$ARCH.cmake" \
  -DCMAKE_BUILD_TYPE=MinSizeRel -DMPUDP_TESTS=ON -DMPUDP_WERROR=ON >"$BUILD/configure.log" ||
  { cat "$BUILD/configure.log"; exit 1; }
names=()
while read -r t; do
  [[ -f test/unit/test_$t.cc && $QEMU_UNSUPPORTED != *" $t "* ]] && names+=("$t")
done < <(ctest --test-dir "$BUILD" -N -L '^unit$' | sed -n 's/^ *Test *#[0-9]*: unit\.\([A-Za-z0-9_]*\)$/\1/p')
targets=(mpudpd)
for n in "${names[@]}"; do targets+=("unit_$n"); done
log "build ${targets[*]}"
cmake --build "$BUILD" -j"$JOBS" --target "${targets[@]}"
log "built"

# 3. Unit tests under qemu (CMAKE_CROSSCOMPILING_EMULATOR from the toolchain file).
if ((${#names[@]})); then
  regex="^unit\\.($(IFS='|'; echo "${names[*]}"))\$"
  log "unit tests under qemu: ${names[*]}"
  ctest --test-dir "$BUILD" --output-on-failure --timeout 300 -j"$JOBS" -L '^unit$' -R "$regex"
fi
# The daemon itself starts under qemu (its shared libraries resolve). The loader is
# covered by unit_config above.
qemu=$(command -v "qemu-$ARCH-static" || command -v "qemu-$ARCH")
# `-L /`: the multiarch loader, as in the toolchain file (its comment says why).
"$qemu" -L / "$BUILD/daemon/mpudpd" --version
log "mpudpd --version under qemu: ok"

# 4. Stripped size (what a router would carry; shared libstdc++ etc. not included).
cp "$BUILD/daemon/mpudpd" "$BUILD/mpudpd.stripped"
"$TRIPLET-strip" --strip-all "$BUILD/mpudpd.stripped"
size=$(stat -c %s "$BUILD/mpudpd.stripped")
log "mpudpd stripped: $size bytes ($((size / 1024)) KiB); file: $(file -b "$BUILD/mpudpd.stripped" 2>/dev/null | cut -d, -f1-2 || true)"
echo "cross-build $ARCH: ok, mpudpd stripped $size bytes, $((SECONDS - T0))s"

#!/usr/bin/env bash
# Quick start, part 2 (and what CI runs through .ci/run): dependencies, then
#   1. build/        RelWithDebInfo: unit tests, then the namespace tests
#   2. build-asan/   the same with AddressSanitizer + UndefinedBehaviorSanitizer
#   3. build-fuzz/   clang + libFuzzer, each fuzz target for a bounded time
#                    (only once test/fuzz/run.sh exists)
#   4. build-cross-aarch64/, build-cross-mipsel/  router builds (tools/cross-build.sh):
#                    daemon + unit-test executables, unit tests under qemu, stripped size
#   5. build-release/  CMAKE_BUILD_TYPE=Release (-O3, where GCC warns most): everything,
#                    then the unit tests
#   6. build-uapi515/  the MPTCP code against Linux 5.15's linux/mptcp.h
#                    (test/compat/linux-5.15 first on the include path, as OpenWrt 23.05
#                    builds), then its unit tests on this kernel
#   7. the Debian package (tools/deb-test.sh): built, linted, installed, checked, purged
# Every build here sets MPUDP_WERROR=ON: warnings fail CI (never a packager's build).
# A failing stage does not stop the others (so one run reports everything); the script
# exits non-zero if any stage failed. Needs root for packages and namespaces.
#
# Environment: JOBS (build parallelism, nproc), FUZZ_SECONDS (60 per target),
# QUICKSTART_SKIP (space-separated stages to skip: asan fuzz netns cross release-build
# uapi515 deb).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD

JOBS=${JOBS:-$(nproc)}
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
SKIP=" ${QUICKSTART_SKIP:-} "

declare -a RESULTS=()
FAILED=0
T0=$SECONDS

stage() { printf '\n######## %s  (t+%ds)\n' "$*" "$((SECONDS - T0))"; }
record() {  # NAME STATUS
  if [[ $2 == 0 ]]; then
    RESULTS+=("$1: ok")
  elif [[ $2 == skip* ]]; then
    RESULTS+=("$1: $2")
  else
    RESULTS+=("$1: FAILED (status $2)")
    FAILED=1
  fi
}
skipped() { [[ $SKIP == *" $1 "* ]]; }

# ctest on one label; a label without any test yet is reported, not run (ctest would
# print "No tests were found" and look like a run that tested nothing).
run_label() {  # BUILD_DIR LABEL NAME [extra ctest args]
  local dir=$1 label=$2 name=$3
  shift 3
  local n
  n=$(ctest --test-dir "$dir" -N -L "^${label}\$" 2>/dev/null | awk '/Total Tests:/ { print $3 }')
  if [[ -z $n || $n == 0 ]]; then
    echo "no '$label' tests in $dir yet"
    record "$name" "skipped (no $label tests)"
    return
  fi
  ctest --test-dir "$dir" --output-on-failure --timeout 300 -L "^${label}\$" "$@"
  record "$name" $?
}

configure_and_build() {  # NAME BUILD_DIR cmake-args...
  local name=$1 dir=$2
  shift 2
  stage "$name: configure and build $dir"
  if cmake -S . -B "$dir" "$@" && cmake --build "$dir" -j"$JOBS"; then
    record "$name build" 0
    return 0
  fi
  record "$name build" 1
  return 1
}

stage "dependencies"
tools/install-deps.sh
st=$?
record "dependencies" $st
if ((st != 0)); then
  printf '%s\n' "${RESULTS[@]}"
  exit 1
fi

# 1. The plain build.
if configure_and_build release build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMPUDP_WERROR=ON; then
  stage "release: unit tests"
  run_label build unit "release unit" -j"$JOBS"
  if ! skipped netns; then
    stage "release: namespace tests"
    run_label build netns "release netns"
  fi
fi

# 2. Sanitizers. Leaks, UB and memory errors fail the test that hit them.
if ! skipped asan; then
  export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:strict_string_checks=1}
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
  if configure_and_build asan build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMPUDP_SANITIZE=ON \
    -DMPUDP_WERROR=ON; then
    stage "asan: unit tests"
    run_label build-asan unit "asan unit" -j"$JOBS"
    if ! skipped netns; then
      stage "asan: namespace tests"
      run_label build-asan netns "asan netns"
    fi
  fi
fi

# 3. Fuzzers, bounded: FUZZ_SECONDS per target.
if skipped fuzz; then
  record fuzz "skipped (QUICKSTART_SKIP)"
elif [[ -f test/fuzz/run.sh ]]; then
  if CXX=clang++ configure_and_build fuzz build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_COMPILER=clang++ -DMPUDP_FUZZ=ON -DMPUDP_WERROR=ON; then
    stage "fuzz: ${FUZZ_SECONDS}s per target"
    bash test/fuzz/run.sh "$ROOT/build-fuzz" "$FUZZ_SECONDS"
    record "fuzz run" $?
  fi
else
  record fuzz "skipped (no test/fuzz/run.sh yet)"
fi

# 4. Router builds: cross-compiled daemon and unit tests (run under qemu-user).
if skipped cross; then
  record cross "skipped (QUICKSTART_SKIP)"
else
  for arch in aarch64 mipsel; do
    stage "cross $arch: tools/cross-build.sh $arch"
    t=$SECONDS
    JOBS=$JOBS tools/cross-build.sh "$arch"
    st=$?
    echo "cross $arch: $((SECONDS - t))s"
    record "cross $arch" $st
  done
fi

# 5. Release: the optimizer's warnings (GCC 12 -O3 sees more than -O2).
if skipped release-build; then
  record release-build "skipped (QUICKSTART_SKIP)"
elif configure_and_build release-build build-release -DCMAKE_BUILD_TYPE=Release \
  -DMPUDP_WERROR=ON; then
  stage "release-build: unit tests"
  run_label build-release unit "release-build unit" -j"$JOBS"
fi

# 6. Linux 5.15 uapi headers: only what includes linux/mptcp.h, and the unit tests of
# that code, which run against this kernel with the fallback definitions.
if skipped uapi515; then
  record uapi515 "skipped (QUICKSTART_SKIP)"
else
  stage "uapi515: build against test/compat/linux-5.15/linux/mptcp.h"
  if cmake -S . -B build-uapi515 -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMPUDP_WERROR=ON \
    -DCMAKE_CXX_FLAGS="-I$ROOT/test/compat/linux-5.15" &&
    cmake --build build-uapi515 -j"$JOBS" --target mpudpd unit_subflows unit_pm unit_connection; then
    record "uapi515 build" 0
    ctest --test-dir build-uapi515 --output-on-failure -R '^unit\.(subflows|pm|connection)$'
    record "uapi515 unit" $?
  else
    record "uapi515 build" 1
  fi
fi

# 7. The Debian package.
if skipped deb; then
  record deb "skipped (QUICKSTART_SKIP)"
else
  stage "deb: tools/deb-test.sh"
  JOBS=$JOBS tools/deb-test.sh
  record deb $?
fi

stage "summary"
printf '  %s\n' "${RESULTS[@]}"
echo "quickstart-test: total $((SECONDS - T0))s"
exit "$FAILED"

#!/usr/bin/env bash
# Quick start, part 2 (and what CI runs through .ci/run): dependencies, then
#   1. build/        RelWithDebInfo: unit tests, then the namespace tests
#   2. build-asan/   the same with AddressSanitizer + UndefinedBehaviorSanitizer
#   3. build-fuzz/   clang + libFuzzer, each fuzz target for a bounded time
#                    (only once test/fuzz/run.sh exists)
#   4. build-cross-aarch64/, build-cross-mipsel/  router builds (tools/cross-build.sh):
#                    daemon + unit-test executables, unit tests under qemu, stripped size
# A failing stage does not stop the others (so one run reports everything); the script
# exits non-zero if any stage failed. Needs root for packages and namespaces.
#
# Environment: JOBS (build parallelism, nproc), FUZZ_SECONDS (60 per target),
# QUICKSTART_SKIP (space-separated stages to skip: asan fuzz netns cross).
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
if configure_and_build release build -DCMAKE_BUILD_TYPE=RelWithDebInfo; then
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
  if configure_and_build asan build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMPUDP_SANITIZE=ON; then
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
    -DCMAKE_CXX_COMPILER=clang++ -DMPUDP_FUZZ=ON; then
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

stage "summary"
printf '  %s\n' "${RESULTS[@]}"
echo "quickstart-test: total $((SECONDS - T0))s"
exit "$FAILED"

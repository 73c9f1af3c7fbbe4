#!/usr/bin/env bash
# Runs each libFuzzer target for a while on a scratch copy of its seed corpus, so the
# committed seeds never fill up with generated inputs.
#
#   test/fuzz/run.sh BUILD_DIR SECONDS [TARGET...]
#
# BUILD_DIR is a tree configured with CXX=clang++ -DMPUDP_FUZZ=ON and built; TARGET
# defaults to every fuzz target. Exits 1 if a target is missing or finds a crash; the
# crashing input is kept and its path printed.
set -euo pipefail

if [[ $# -lt 2 ]]; then
  echo "usage: $0 BUILD_DIR SECONDS [TARGET...]" >&2
  exit 2
fi
build=$1
seconds=$2
shift 2
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=(fuzz_frame fuzz_config fuzz_handshake fuzz_tls)

here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/mpudp-fuzz.XXXXXX")
failed=0

for t in "${targets[@]}"; do
  bin=$build/test/fuzz/$t
  if [[ ! -x $bin ]]; then
    echo "run.sh: $bin not built" >&2
    failed=1
    continue
  fi
  corpus=$work/$t/corpus
  artifacts=$work/$t/artifacts
  mkdir -p "$corpus" "$artifacts"
  seeds=$here/corpus/${t#fuzz_}
  if [[ -d $seeds ]]; then
    cp "$seeds"/* "$corpus"/ 2>/dev/null || true
  fi
  echo "== $t for ${seconds}s ($(ls "$corpus" | wc -l) seeds)"
  # -error_exitcode makes any finding (crash, leak, sanitizer report, timeout) fail us.
  if ! "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
      -error_exitcode=77 -artifact_prefix="$artifacts/" -print_final_stats=1 \
      "$corpus" >"$work/$t/log" 2>&1; then
    echo "FAIL $t: see $work/$t/log" >&2
    tail -n 40 "$work/$t/log" >&2
    ls -l "$artifacts" >&2
    failed=1
    continue
  fi
  grep -E '^stat::number_of_executed_units|^#[0-9]+.*DONE' "$work/$t/log" || true
  echo "ok   $t"
  rm -rf "${work:?}/$t"
done

if [[ $failed -eq 0 ]]; then
  rm -rf "$work"
else
  echo "run.sh: failures kept in $work" >&2
fi
exit $failed

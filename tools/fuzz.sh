#!/usr/bin/env bash
# Runs every libFuzzer target of tests/fuzz for SECONDS each (default 20)
# on a temporary copy of its committed corpus, so the repository's corpus
# only grows by hand (regression inputs). Fails on any crash, leak, timeout
# or out-of-memory; the input that did it is kept under
# $BUILD/fuzz-artifacts/. Builds $BUILD (default build-fuzz, clang,
# MD_FUZZ=ON) first. docs/robustness.md, "Fuzzing".
#   tools/fuzz.sh [SECONDS] [TARGET...]     TARGET: e.g. safetensors
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-20}
shift || true
build=${BUILD:-build-fuzz}
# A slow input is a finding only past this many seconds: the instrumented
# build is several times slower than a release one.
per_input_timeout=${FUZZ_TIMEOUT:-10}
# The image reader may legitimately allocate 1 GiB (a 16384 x 16384 RGBA
# image, the largest accepted); anything beyond this is a finding.
rss_mb=${FUZZ_RSS_MB:-2560}

if ! command -v clang >/dev/null; then
  echo "tools/fuzz.sh: needs clang and libFuzzer (Debian: clang libclang-rt-14-dev)" >&2
  exit 1
fi
# Vulkan stays out: no parser lives there, and it only lengthens the build.
CC=clang cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMD_FUZZ=ON -DMD_VULKAN=OFF >/dev/null
cmake --build "$build" -j"$(nproc)" --target fuzz >/dev/null

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for src in tests/fuzz/fuzz_*.c; do
    n=$(basename "$src" .c)
    targets+=("${n#fuzz_}")
  done
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
artifacts="$build/fuzz-artifacts"
mkdir -p "$artifacts"
failed=0
for t in "${targets[@]}"; do
  exe="$build/fuzz_$t"
  [ -x "$exe" ] || { echo "tools/fuzz.sh: no target $t" >&2; exit 1; }
  mkdir -p "$tmp/$t"
  cp tests/fuzz/corpus/"$t"/* "$tmp/$t"/
  seeds=$(ls "$tmp/$t" | wc -l)
  rc=0
  (cd "$tmp" && TMPDIR="$tmp" "$OLDPWD/$exe" -max_total_time="$secs" -timeout="$per_input_timeout" \
      -rss_limit_mb="$rss_mb" -print_final_stats=1 -artifact_prefix="$tmp/$t-" "$t") \
      >"$tmp/$t.log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$tmp/$t.log" | tail -1)
  corpus=$(ls "$tmp/$t" | wc -l)
  if [ "$rc" = 0 ]; then
    printf '%-16s %10s executions in %ss, corpus %s -> %s inputs\n' "$t" "${execs:-?}" "$secs" \
      "$seeds" "$corpus"
  else
    failed=1
    printf '%-16s FAILED (exit %s) after %s executions\n' "$t" "$rc" "${execs:-?}"
    grep -E "^==[0-9]+==ERROR|SUMMARY|runtime error|Test unit written" "$tmp/$t.log" | head -20 || true
    cp "$tmp/$t".log "$artifacts/" 2>/dev/null || true
    for a in "$tmp/$t"-*; do
      [ -e "$a" ] && cp "$a" "$artifacts/" && echo "  input kept: $artifacts/$(basename "$a")"
    done
  fi
done
exit "$failed"

#!/usr/bin/env bash
# The example host: dlopen, a generation written as PPM, and Ctrl-C
# (SIGINT) cancelling a long run with exit code 130 and no output file.
set -u
BUILD=${1:?build dir}
HOST="$BUILD/moediffuse-example"
MODEL="${MD_GOLDEN_DIR:?}/tiny-sd-dense"
export MOEDIFFUSE_LIB="$BUILD/libmoediffuse.so.1"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
pass=0; fail=0
ok()  { pass=$((pass+1)); echo "ok   $1"; }
bad() { fail=$((fail+1)); echo "FAIL $1"; }

if "$HOST" "$MODEL" "a red circle" "$TMP/out.ppm" 4 7 2>"$TMP/err"; then
  header=$(head -c 13 "$TMP/out.ppm" | tr '\n' ' ')
  size=$(stat -c %s "$TMP/out.ppm")
  distinct=$(tail -c 768 "$TMP/out.ppm" | od -An -tu1 -v | tr -s ' ' '\n' | sort -u | wc -l)
  if [ "$header" = "P6 16 16 255 " ] && [ "$size" = $((13 + 768)) ] && [ "$distinct" -gt 10 ]; then
    ok "16x16 PPM with varied pixels"
  else bad "unexpected output: header '$header', $size bytes, $distinct values"; fi
  grep -q "ABI 1\." "$TMP/err" && grep -q "4/4" "$TMP/err" && ok "version line and progress bar" ||
    bad "stderr lacks the version or the bar: $(cat "$TMP/err")"
else
  bad "example host failed: $(cat "$TMP/err")"
fi

MOEDIFFUSE_LIB="$TMP/nonexistent.so" "$HOST" "$MODEL" x "$TMP/no.ppm" 2>"$TMP/err"
[ $? = 1 ] && grep -q "nonexistent.so" "$TMP/err" && ok "missing library: exit 1" || bad "missing library"

# Ctrl-C: a 1000-step run, interrupted once the progress bar shows.
"$HOST" "$MODEL" "a long run" "$TMP/cancel.ppm" 1000 2>"$TMP/err" &
pid=$!
for _ in $(seq 1 300); do grep -q '/1000' "$TMP/err" 2>/dev/null && break; sleep 0.1; done
kill -INT $pid
wait $pid; rc=$?
if [ "$rc" = 130 ] && [ ! -e "$TMP/cancel.ppm" ] && grep -q "cancelled" "$TMP/err"; then
  ok "SIGINT cancels: exit 130, no file"
else bad "SIGINT: exit $rc, file $( [ -e "$TMP/cancel.ppm" ] && echo left || echo absent ): $(tail -c 300 "$TMP/err")"; fi

echo "example_host: $pass passed, $fail failed"
[ "$fail" = 0 ]

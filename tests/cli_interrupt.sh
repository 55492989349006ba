#!/usr/bin/env bash
# End to end: Ctrl-C (SIGINT) during a generation stops it at the next
# step with exit 130, an error event, no output and no temporary file; and
# on a terminal the progress is a one-line bar with it/s and ETA.
set -u
BUILD=${1:?build dir}
CLI="$BUILD/moe-diffuse"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
. "$(dirname "$0")/support/checks.sh"

# A tiny random model at 128x128 takes around a second per step here.
"$BUILD/make-random-model" --preset tiny "$TMP/model" >/dev/null || { echo "FAIL make-random-model"; exit 1; }

"$CLI" -m "$TMP/model" -p "a cat" --steps 50 -W 128 -H 128 --seed 1 --json -o "$TMP/int.png" \
  >"$TMP/int.json" 2>"$TMP/int.err" &
pid=$!
for _ in $(seq 1200); do
  grep -q '"event":"step"' "$TMP/int.json" 2>/dev/null && break
  kill -0 $pid 2>/dev/null || break
  sleep 0.05
done
start=$(date +%s)
kill -INT $pid
wait $pid; rc=$?
elapsed=$(( $(date +%s) - start ))
steps=$(grep -c '"event":"step"' "$TMP/int.json")
if [ "$rc" = 130 ]; then ok "SIGINT: exit 130"; else bad "SIGINT: exit $rc ($(cat "$TMP/int.err"))"; fi
if [ "$steps" -lt 50 ]; then ok "SIGINT: stopped after $steps of 50 steps, ${elapsed}s after the signal"
else bad "SIGINT: ran all $steps steps"; fi
if grep -q '"event":"error",.*"exit_code":130,"message":"cancelled at step' "$TMP/int.json"
then ok "SIGINT: error event"; else bad "SIGINT: no error event: $(tail -2 "$TMP/int.json")"; fi
if ls "$TMP" | grep -q 'int\.png'; then bad "SIGINT: left an output or temporary file"
else ok "SIGINT: no output, no temporary file"; fi

# The progress bar on a terminal (script(1) provides one).
if command -v script >/dev/null; then
  script -qec "'$CLI' -m '$TMP/model' -p 'a cat' --steps 3 --seed 1 -o '$TMP/tty.png'" /dev/null \
    >"$TMP/tty.out" 2>&1
  if grep -q $'\r\\[#*\\.*\\] 1/3  [0-9.]* it/s  ETA ' "$TMP/tty.out" &&
     grep -q $'\r\\[#\\{30\\}\\] 3/3  [0-9.]* it/s  ETA 0s' "$TMP/tty.out"; then
    ok "terminal: one-line bar with it/s and ETA"
  else bad "terminal: no progress bar in: $(tr '\r' '|' <"$TMP/tty.out" | head -c 400)"; fi
else
  ok "terminal: script(1) missing, bar not checked"
fi

echo "cli interrupt: $pass passed, $fail failed"
[ "$fail" = 0 ]

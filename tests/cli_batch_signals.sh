#!/usr/bin/env bash
# End to end: SIGTERM/SIGINT stop batch mode while it waits for its prompts
# on a pipe, on stdin from a FIFO, or on a FIFO no writer ever opened (exit
# 130, at once); a second signal ends a long step at once (the handler is
# reset, as in the CLI); prompts beyond the 64 MiB limit on stdin are
# refused, not buffered to their end. Every wait is bounded.
set -u
BUILD=${1:?build dir}
CLI="$BUILD/moe-diffuse"
MODEL="${MD_GOLDEN_DIR:?}/tiny-sd-dense"
TMP=$(mktemp -d)
helpers=()
cleanup() { for p in "${helpers[@]}"; do kill "$p" 2>/dev/null; done; rm -rf "$TMP"; }
trap cleanup EXIT
. "$(dirname "$0")/support/checks.sh"

# Waits up to $2 tenths of a second for process $1 to end; its status in
# $rc (or "hung", after killing it).
wait_bounded() {
  local i
  for ((i = 0; i < $2; i++)); do
    kill -0 "$1" 2>/dev/null || { wait "$1"; rc=$?; return; }
    sleep 0.1
  done
  kill -KILL "$1" 2>/dev/null; wait "$1" 2>/dev/null; rc=hung
}

# Signals batch process $1 once it had time to start reading.
stop_reader() { # PID SIGNAL NAME
  sleep 1
  local t0=$(date +%s%N)
  kill "-$2" "$1"
  wait_bounded "$1" 50
  local ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  if [ "$rc" = 130 ] && [ "$ms" -lt 3000 ] && grep -q "stopped by a signal while reading" "$TMP/err"; then
    ok "$3: SIG$2 while reading: exit 130 after ${ms} ms"
  else bad "$3: SIG$2 while reading: exit $rc after ${ms} ms: $(cat "$TMP/err")"; fi
}

# 1. stdin a pipe whose writer never writes.
#    (A process substitution, not a shell pipeline: bash's wait for a
#    pipeline's last process waits for the whole pipeline.)
"$CLI" batch -m "$MODEL" --steps 2 --prompts - -d "$TMP/out1" 2>"$TMP/err" \
  < <(echo "$BASHPID" >"$TMP/writer.pid"; exec sleep 100) &
pid=$!
sleep 0.2; helpers+=("$(cat "$TMP/writer.pid")")
stop_reader "$pid" TERM "pipe on stdin"

# 2. stdin a FIFO with a silent writer.
mkfifo "$TMP/fifo"
sleep 100 >"$TMP/fifo" & helpers+=($!)
"$CLI" batch -m "$MODEL" --steps 2 --prompts - -d "$TMP/out2" <"$TMP/fifo" 2>"$TMP/err" &
stop_reader $! INT "FIFO on stdin"

# 3. --prompts a FIFO that no writer opens (a blocking open would hang).
mkfifo "$TMP/fifo2"
"$CLI" batch -m "$MODEL" --steps 2 --prompts "$TMP/fifo2" -d "$TMP/out3" 2>"$TMP/err" &
stop_reader $! TERM "--prompts FIFO without a writer"

# 4. An endless stdin is refused at the limit.
t0=$(date +%s)
yes | head -c 100M | "$CLI" batch -m "$MODEL" --steps 2 --prompts - -d "$TMP/out4" 2>"$TMP/err" &
wait_bounded $! 600
if [ "$rc" = 4 ] && grep -q "longer than 64 MiB" "$TMP/err" && [ -z "$(ls -A "$TMP/out4" 2>/dev/null)" ]; then
  ok "100 MiB on stdin refused (exit 4) in $(( $(date +%s) - t0 )) s"
else bad "100 MiB on stdin: exit $rc: $(head -c 300 "$TMP/err")"; fi

# 5. A second signal ends a long step at once: a random tiny model at
#    256x256 takes seconds per step; the first SIGTERM waits for the step's
#    end, the second (default action again) ends the process.
"$BUILD/make-random-model" --preset tiny "$TMP/model" >/dev/null || bad "make-random-model"
echo "a lighthouse" >"$TMP/one.txt"
"$CLI" batch -m "$TMP/model" --steps 50 -W 256 -H 256 --prompts "$TMP/one.txt" -d "$TMP/out5" \
  >/dev/null 2>"$TMP/err" &
pid=$!
for _ in $(seq 300); do # the model loaded and a step under way
  [ -e "$TMP/out5" ] && break
  sleep 0.1
done
sleep 1
t0=$(date +%s%N)
kill -TERM "$pid"; sleep 0.1; kill -TERM "$pid"
wait_bounded "$pid" 100
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
if [ "$rc" = 143 ]; then ok "second SIGTERM ends the step at once (${ms} ms)"
else bad "second SIGTERM: exit $rc after ${ms} ms (want 143, killed by the signal)"; fi

echo "cli batch signals: $pass passed, $fail failed"
[ "$fail" = 0 ]

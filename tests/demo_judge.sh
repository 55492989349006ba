#!/usr/bin/env bash
# The evaluator's judge (tools/eval/judge.py) against images whose
# attributes are known: the data set's renderer draws the held-out prompts,
# passed through what the demo VAE does to them. Without noise it must be
# right on at least 98% of every attribute, with noise of 8 per 4x4 block on
# at least 95%; an image of background alone has no object.
set -u
SRC=${MD_SOURCE_DIR:?}
. "$(dirname "$0")/support/checks.sh"

# The renderer needs numpy and PIL (python3-numpy, python3-pil); the judge
# alone needs neither.
PY=""
for p in python3 /usr/bin/python3; do
  if command -v "$p" >/dev/null && "$p" -c "import numpy, PIL" 2>/dev/null; then PY=$p; break; fi
done
if [ -z "$PY" ]; then
  bad "no python3 with numpy and PIL (apt-get install python3-numpy python3-pil)"
else
  check "judge on clean renders >= 98%" \
    "$PY" "$SRC/tools/eval/judge_ceiling.py" --reps 2 --min 0.98
  check "judge on noisy renders >= 95%" \
    "$PY" "$SRC/tools/eval/judge_ceiling.py" --reps 2 --noise 8 --seed 11 --min 0.95
  blank=$("$PY" -B -c "
import sys; sys.path[:0] = ['$SRC/tools/eval', '$SRC/tools/dataset']
import judge
r = judge.judge([[(30, 60, 220)] * 64 for _ in range(64)])
print(r['background'], r['colour'], r['shape'])")
  [ "$blank" = "blue None None" ] && ok "background alone: no object" || bad "background alone judged: $blank"
fi

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]

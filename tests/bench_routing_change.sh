#!/usr/bin/env bash
# bench/routing_change.py: its figures on hand-made routes files with known
# answers (sequence and token routes), its errors, and one short run of the
# CLI on the bundled demo model.
set -u
BUILD=${1:?build dir}
SCRIPT="${MD_SOURCE_DIR:?}/bench/routing_change.py"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
pass=0; fail=0
check() { if eval "$2"; then pass=$((pass+1)); echo "ok   $1"; else fail=$((fail+1)); echo "FAIL $1"; fi; }
export PYTHONDONTWRITEBYTECODE=1

# Layer a: {0,1} -> {0,2} -> {0,2}; layer b never changes.
cat > "$TMP/seq.json" <<'JSON'
{"format": "moe-diffuse-routes", "version": 1, "steps": 3, "first_step": 0, "groups": 2,
 "layers": [{"name": "a", "experts": 4}, {"name": "b", "experts": 4}],
 "routes": [
  [{"experts": [[0, 1], [0, 1]]}, {"experts": [[3, 2], [3, 2]]}],
  [{"experts": [[2, 0], [2, 0]]}, {"experts": [[2, 3], [2, 3]]}],
  [{"experts": [[0, 2], [0, 2]]}, {"experts": [[3, 2], [3, 2]]}]]}
JSON
out=$(python3 "$SCRIPT" --routes "$TMP/seq.json" --per-layer 2>&1)
check "sequence: summary" 'grep -qF "| sequence | 2 x 4 | 3 | 0.25 / 0.00 / 0.50 | 0.125 / 0.000 / 0.250 | 0.25 / 0.00 / 0.50 | 2.00 / 2.00 / 2.00 | 0.50 | 4.00 |" <<<"$out"'
check "sequence: per layer" 'grep -qF "| a | 4 | 0.50 | 0.250 | 0.50 | 2.00 |" <<<"$out" && grep -qF "| b | 4 | 0.00 | 0.000 | 0.00 | 2.00 |" <<<"$out"'

# Two rows, k = 2: {0,1},{1,2} -> {1,0},{0,3}: needed {0,1,2} -> {0,1,3}.
cat > "$TMP/tok.json" <<'JSON'
{"format": "moe-diffuse-routes", "version": 1, "steps": 2, "first_step": 0, "groups": 2,
 "layers": [{"name": "ff", "experts": 4}],
 "routes": [[{"k": 2, "choices": "0112"}], [{"k": 2, "choices": "1003"}]]}
JSON
out=$(python3 "$SCRIPT" --routes "$TMP/tok.json" --per-step 2>&1)
check "token: summary" 'grep -qF "| token | 1 x 4 | 2 | 1.00 / 1.00 / 1.00 | 0.500 / 0.500 / 0.500 | 1.00 / 1.00 / 1.00 | 3.00 / 3.00 / 3.00 | 1.00 | 3.00 |" <<<"$out"'
check "token: per step" 'grep -qF "| 1 | 1 of 1 | 0.500 | 1 |" <<<"$out"'

# Errors: exit 1 and a message naming the problem.
echo '{"format": "x"}' > "$TMP/bad.json"
out=$(python3 "$SCRIPT" --routes "$TMP/bad.json" 2>&1); rc=$?
check "not a routes file" '[ $rc = 1 ] && grep -q "not a routes file" <<<"$out"'
sed 's/"1003"/"10"/' "$TMP/tok.json" > "$TMP/rows.json"
out=$(python3 "$SCRIPT" --routes "$TMP/rows.json" 2>&1); rc=$?
check "row count mismatch" '[ $rc = 1 ] && grep -q "rows cannot be matched" <<<"$out"'
out=$(python3 "$SCRIPT" --routes "$TMP/none.json" 2>&1); rc=$?
check "missing file" '[ $rc = 1 ] && grep -q "cannot read" <<<"$out"'
out=$(python3 "$SCRIPT" --cli "$TMP/no-cli" 2>&1); rc=$?
check "missing CLI" '[ $rc = 1 ] && grep -q "not an executable" <<<"$out"'
out=$(python3 "$SCRIPT" --build "$BUILD" --steps 1 2>&1); rc=$?
check "one step is a usage error" '[ $rc = 2 ]'

# The CLI on the demo model (token routing, 3 layers of 4 experts).
out=$(python3 "$SCRIPT" --build "$BUILD" --steps 3 --case "a red circle@1" --keep "$TMP/keep" 2>&1); rc=$?
check "demo run" '[ $rc = 0 ] && grep -q "^| demo | \"a red circle\", seed 1 | token | 3 x 4 | 3 |" <<<"$out"'
check "demo run keeps its routes" '[ -s "$TMP/keep/case1.routes.json" ]'

echo "bench_routing_change: $pass passed, $fail failed"
[ "$fail" = 0 ]

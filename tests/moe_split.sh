#!/usr/bin/env bash
# Sequence-split routing: with classifier-free guidance each half chooses
# its own experts, so changing only the negative prompt leaves the positive
# half's step-0 choices alone in every layer (sequence routing, which sums
# both halves' logits, changes some). A random 8-expert top-2 model with
# MoE in every attention projection and feed-forward (21 layers), 4 prompts
# x 2 seeds. docs/moe.md quotes the numbers.
set -u
BUILD=${1:?build dir}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
pass=0; fail=0
check() { if eval "$2"; then pass=$((pass+1)); echo "ok   $1"; else fail=$((fail+1)); echo "FAIL $1"; fi; }

"$BUILD/make-random-model" --preset tiny --experts 8 --top-k 2 --routing sequence \
  --moe-layers all --seed 3 "$TMP/m8" >/dev/null || { echo "FAIL make-random-model"; exit 1; }
"$BUILD/md-test-moe-split" "$TMP/m8" sequence sequence-split >"$TMP/out"
check "measurement runs" '[ $? = 0 ]'
cat "$TMP/out"
seq_changed=$(sed -n 's/^sequence changed \([0-9]*\) of .*/\1/p' "$TMP/out")
split_line=$(grep "^sequence-split changed" "$TMP/out")
check "sequence-split: no layer changes the positive half's choice" \
  '[ "$split_line" = "sequence-split changed 0 of 168" ]'
check "sequence: the negative prompt moves some layers' choice" '[ "${seq_changed:-0}" -gt 0 ]'
echo "moe_split: $pass passed, $fail failed"
[ "$fail" = 0 ]

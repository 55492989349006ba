#!/usr/bin/env bash
# --moe-stats: per-step expert load as JSON plus a heatmap PNG, for a MoE
# model; a clear usage error for a dense one.
set -u
BUILD=${1:?build dir}
CLI="$BUILD/moe-diffuse"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
pass=0; fail=0
check() { if eval "$2"; then pass=$((pass+1)); echo "ok   $1"; else fail=$((fail+1)); echo "FAIL $1"; fi; }

"$CLI" -m "$MD_GOLDEN_DIR/tiny-sd-moe" -p "a cat" --steps 3 --sampler ddim --seed 1 -q \
  --moe-stats "$TMP/stats.json" -o "$TMP/img.png"
check "run with --moe-stats succeeds" '[ $? = 0 ] && [ -s "$TMP/img.png" ]'
check "JSON counts one call per step" 'grep -q "\"calls\": 3" "$TMP/stats.json"'
# tiny-sd-moe: 21 MoE layers (q/k/v of attn1 and attn2 plus ff in 3 blocks), 4 experts, top-2
check "every MoE layer is listed" '[ "$(grep -c "\"num_experts\": 4, \"top_k\": 2" "$TMP/stats.json")" = 21 ]'
check "heatmap PNG written" '[ "$(head -c 8 "$TMP/stats.png" | od -An -tx1 | tr -d " \n")" = 89504e470d0a1a0a ]'
"$CLI" -m "$MD_GOLDEN_DIR/tiny-sd-dense" -p x --steps 1 -q --moe-stats "$TMP/d.json" -o "$TMP/dense.png" 2>"$TMP/err"
check "dense model: usage error, nothing written" '[ $? = 2 ] && grep -q "no MoE layers" "$TMP/err" && [ ! -e "$TMP/dense.png" ]'
# The heatmap of x.json is x.png: with -o x.png it would overwrite the image.
"$CLI" -m "$MD_GOLDEN_DIR/tiny-sd-moe" -p x --steps 1 -q --moe-stats "$TMP/x.json" -o "$TMP/x.png" 2>"$TMP/err"
check "heatmap named like the output: refused, nothing written" '[ $? = 2 ] && grep -q "also an output image" "$TMP/err" && [ ! -e "$TMP/x.png" ] && [ ! -e "$TMP/x.json" ]'
"$CLI" -m "$MD_GOLDEN_DIR/tiny-sd-moe" -p x --steps 1 -b 2 -q --moe-stats "$TMP/s_%d.json" -o "$TMP/s_%d.png" 2>"$TMP/err"
check "numbered heatmaps named like numbered outputs: refused" '[ $? = 2 ] && grep -q "also an output image" "$TMP/err"'
"$CLI" -m "$MD_GOLDEN_DIR/tiny-sd-moe" -p x -b 2 -q --moe-stats "$TMP/s.json" -o "$TMP/o_%d.png" 2>"$TMP/err"
check "batch-count needs a %d pattern" '[ $? = 2 ] && grep -q "needs one %d" "$TMP/err"'
echo "cli_moe_stats: $pass passed, $fail failed"
[ "$fail" = 0 ]

#!/usr/bin/env bash
# golden-check produces every recorded MoE group of a case (unet.moe_ff.*
# and unet.moe_attn.* together), each at the layer and call its
# descriptions name, and still reports a group it cannot produce as
# unsupported. No reference case records two groups, so the case is
# derived from tiny-sd-moe (MoE ff and attention layers): its own
# unet.moe_ff.* group (call1) plus unet.moe_attn.selected_experts of
# attn1.to_q in call2, whose reference value is tiny-sd-moe's recorded
# choice for that layer and call ([1, 0]; call1 chose [1, 2]).
set -u
BUILD=${1:?build dir}
GC="$BUILD/golden-check"
MAKE="$BUILD/md-test-golden-case"
SRC="$MD_GOLDEN_DIR/tiny-sd-moe"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
source "$(dirname "$0")/support/checks.sh"
passes() { grep -Eq "^$1 .* PASS$" "$TMP/$2.out"; }

"$MAKE" moe-groups "$SRC" "$TMP/two" unet.moe_attn \
  down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q 2
check "two-group case built" [ $? = 0 ]
"$GC" "$TMP/two" >"$TMP/two.out" 2>"$TMP/two.err"
rc=$?
check "two groups: golden-check passes" [ "$rc" = 0 ]
for r in input router_logits selected_experts output; do
  check "two groups: unet.moe_ff.$r produced and passes" passes "unet\.moe_ff\.$r" two
done
check "two groups: unet.moe_attn.selected_experts produced and passes" \
  passes 'unet\.moe_attn\.selected_experts' two
check "two groups: nothing unsupported" bash -c \
  "grep -q '^[0-9]* passed, 0 failed\$' '$TMP/two.out' && ! grep -q unsupported '$TMP/two.out'"

# A group at a layer that is not MoE (the mid block never is) is looked up,
# not found, and fails as unsupported; the other group is unaffected.
"$MAKE" moe-groups "$SRC" "$TMP/bad" unet.moe_mid \
  mid_block.attentions.0.transformer_blocks.0.ff 1
"$GC" "$TMP/bad" >"$TMP/bad.out" 2>"$TMP/bad.err"
rc=$?
check "unknown layer: golden-check fails" [ "$rc" = 1 ]
check "unknown layer: its group is unsupported" \
  grep -Eq '^unet\.moe_mid\.selected_experts .* FAIL \(unsupported\)$' "$TMP/bad.out"
check "unknown layer: unet.moe_ff.output still passes" passes 'unet\.moe_ff\.output' bad
[ "$fail" = 0 ] || cat "$TMP"/*.out "$TMP"/*.err
echo "golden_moe_groups: $pass passed, $fail failed"
[ "$fail" = 0 ]

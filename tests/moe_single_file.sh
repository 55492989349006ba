#!/usr/bin/env bash
# An MoE model as one original-LDM single file (docs/moe-config.md, "Single
# files"): the golden SegMoE folder tiny-sd-moe written as a single file
# loads with its experts, gives the folder's pixels with the same seed, and
# takes the per-generation MoE controls as the folder does; a missing
# expert tensor or missing MoE settings fail the load (exit 3) naming the
# file and the tensor.
set -u
BUILD=$(cd "${1:?build dir}" && pwd) || exit 1
CLI="$BUILD/moe-diffuse"
IMG="$BUILD/md-test-image"
CONV="$BUILD/md-test-single-file"
DIR="${MD_GOLDEN_DIR:?}/tiny-sd-moe"
[ -d "$DIR" ] || { echo "SKIP no golden case tiny-sd-moe"; exit 0; }
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
cd "$TMP" || exit 1
pass=0; fail=0
check() { if eval "$2"; then pass=$((pass+1)); echo "ok   $1"; else fail=$((fail+1)); echo "FAIL $1"; fi; }
same_pixels() { [ -s "$1" ] && [ -s "$2" ] && cmp -s <("$IMG" pixels "$1") <("$IMG" pixels "$2"); }
P="a red circle on a blue background"
run() { local model=$1 out=$2; shift 2; "$CLI" -m "$model" -p "$P" --seed 11 --steps 4 -q -o "$out" "$@"; }

"$CONV" "$DIR" moe.safetensors >conv.out
check "the folder converts to one single file" '[ $? = 0 ] && [ -s moe.safetensors ]'
check "the MoE settings go to the segmoe_config metadata" 'grep -q "with segmoe_config" conv.out'

"$CLI" info moe.safetensors >info.txt 2>&1
check "info shows the experts of the single file" \
  'grep -q "^MoE  *4 experts per layer, top-2, sequence routing" info.txt'
check "info counts the same MoE layers as for the folder" \
  'diff <(grep -E "^(MoE|active|parameters| )" info.txt) <("$CLI" info "$DIR" | grep -E "^(MoE|active|parameters| )")'

run "$DIR" folder.png && run moe.safetensors single.png
check "both render" '[ $? = 0 ] && [ -s folder.png ] && [ -s single.png ]'
check "same seed: the single file gives the folder's pixels" 'same_pixels single.png folder.png'

run "$DIR" folder-k1.png --moe-top-k 1 && run moe.safetensors single-k1.png --moe-top-k 1
check "--moe-top-k 1 renders on both" '[ $? = 0 ] && [ -s folder-k1.png ] && [ -s single-k1.png ]'
check "--moe-top-k 1: the single file gives the folder's pixels" 'same_pixels single-k1.png folder-k1.png'
check "--moe-top-k 1 changes the image" '[ -s single-k1.png ] && ! same_pixels single-k1.png single.png'
check "--moe-top-k 1 is recorded" '"$IMG" text single-k1.png parameters | grep -qF "MoE top-k: 1"'

run "$DIR" folder-tok.png --moe-routing token && run moe.safetensors single-tok.png --moe-routing token
check "--moe-routing token: the single file gives the folder's pixels" \
  '[ -s single-tok.png ] && same_pixels single-tok.png folder-tok.png && ! same_pixels single-tok.png single.png'

K=model.diffusion_model.input_blocks.1.1.transformer_blocks.0.ff.experts.2.net.2.weight
"$CONV" "$DIR" drop.safetensors --drop "$K" >/dev/null
run drop.safetensors x.png 2>err
rc=$?
check "a missing expert tensor: exit 3" '[ $rc = 3 ] && [ ! -e x.png ]'
check "the error names the file and the missing tensor" \
  'grep -qF "drop.safetensors" err && grep -qF "the tensor '"'"'$K'"'"' is not in it" err'

"$CONV" "$DIR" nomoe.safetensors --no-moe-config >/dev/null
run nomoe.safetensors x.png 2>err
rc=$?
check "expert tensors without MoE settings: exit 3 saying so" \
  '[ $rc = 3 ] && grep -qF "nomoe.safetensors: the U-Net has MoE weights" err && grep -qF "segmoe_config" err'

# The layout of most published files: only the MoE settings in the
# metadata, the U-Net's config inferred from the shapes (its norm groups and
# native size are then SD 1.x's, not the folder's: another model).
"$CONV" "$DIR" infer.safetensors --infer-unet >/dev/null
"$CLI" info infer.safetensors >info2.txt 2>&1
check "MoE settings from the metadata alone: info shows the experts" \
  'grep -q "^MoE  *4 experts per layer, top-2, sequence routing" info2.txt'
run infer.safetensors infer.png -W 16 -H 16 && run infer.safetensors infer-k1.png -W 16 -H 16 --moe-top-k 1
check "MoE settings from the metadata alone: renders, --moe-top-k 1 changes the image" \
  '[ -s infer-k1.png ] && ! same_pixels infer.png infer-k1.png'

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]

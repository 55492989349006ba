#!/usr/bin/env bash
# The one request through batch mode: every request field by its ABI name
# in JSON Lines (init image, mask, strength and the MoE fields included)
# gives the same pixels as the single-image command, and moe_top_k and
# moe_routing are read per generation (no reload) on SD 1.x and SDXL MoE
# models.
set -u
BUILD=${1:?build dir}
CLI="$BUILD/moe-diffuse"
IMG="$BUILD/md-test-image"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
cd "$TMP" || exit 1
pass=0; fail=0
check() { if eval "$2"; then pass=$((pass+1)); echo "ok   $1"; else fail=$((fail+1)); echo "FAIL $1"; fi; }
same_pixels() { cmp -s <("$IMG" pixels "$1") <("$IMG" pixels "$2"); }

DENSE="${MD_GOLDEN_DIR:?}/tiny-sd-dense"
MOE="$MD_GOLDEN_DIR/tiny-sd-moe"

# img2img and inpainting from JSON Lines, against the command line.
"$IMG" make in.png 16 16 gradient
"$IMG" make mask.png 16 16 left-white
cat > edit.jsonl <<'J'
{"prompt": "an oil painting", "seed": 3, "steps": 4, "init_image": "in.png", "strength": 0.5, "output": "i2i"}
{"prompt": "a red sofa", "seed": 4, "steps": 4, "init_image": "in.png", "mask": "mask.png", "guidance": 5, "output": "inpaint"}
J
"$CLI" batch -m "$DENSE" --prompts edit.jsonl -d b -q 2>err; rc=$?
check "batch with init_image / mask / strength: exit 0" '[ $rc = 0 ]'
"$CLI" -m "$DENSE" -p "an oil painting" --seed 3 --steps 4 -i in.png --strength 0.5 -q -o i2i.png
"$CLI" -m "$DENSE" -p "a red sofa" --seed 4 --steps 4 -i in.png --mask mask.png --cfg-scale 5 -q -o inpaint.png
check "img2img line = --init-img --strength (same bytes)" 'cmp -s b/i2i.png i2i.png'
check "inpainting line = --init-img --mask (same bytes)" 'cmp -s b/inpaint.png inpaint.png'
check "the manifest records the image fields" 'grep -q "\"init_image\":\"in.png\",\"mask\":\"mask.png\"" b/manifest.jsonl'
check "strength recorded in the parameters text" '"$IMG" text b/i2i.png parameters | grep -q "Denoising strength: 0.5"'

# moe_top_k per generation: tiny-sd-moe (4 experts, top-2, feed-forward and
# attention experts) and tiny-segmoe-sdxl (2 experts, top-1, attention).
for spec in "tiny-sd-moe 2 1" "tiny-segmoe-sdxl 1 2"; do
  set -- $spec
  name=$1 own_k=$2 other_k=$3
  cat > k.jsonl <<J
{"prompt": "a castle", "seed": 9, "steps": 3, "output": "own"}
{"prompt": "a castle", "seed": 9, "steps": 3, "moe_top_k": $own_k, "output": "same"}
{"prompt": "a castle", "seed": 9, "steps": 3, "moe_top_k": $other_k, "output": "other"}
{"prompt": "a castle", "seed": 9, "steps": 3, "moe_routing": "token", "output": "token"}
J
  "$CLI" batch -m "$MD_GOLDEN_DIR/$name" --prompts k.jsonl -d "k-$name" -q 2>err; rc=$?
  check "$name: four generations on one loaded model" '[ $rc = 0 ] && [ "$(grep -c "\"status\":\"ok\"" "k-$name/manifest.jsonl")" = 4 ]'
  check "$name: moe_top_k $own_k = the model's own" 'same_pixels "k-$name/own.png" "k-$name/same.png"'
  check "$name: moe_top_k $other_k changes the image" '! same_pixels "k-$name/own.png" "k-$name/other.png"'
  check "$name: token routing changes the image" '! same_pixels "k-$name/own.png" "k-$name/token.png"'
  check "$name: MoE top-k recorded in the parameters text" '"$IMG" text "k-$name/other.png" parameters | grep -q "MoE top-k: $other_k"'
  # --from-png reproduces it (the flag itself comes with the MoE controls).
  "$CLI" -m "$MD_GOLDEN_DIR/$name" --from-png "k-$name/other.png" -q -o again.png
  check "$name: --from-png reproduces moe_top_k $other_k" 'cmp -s again.png "k-$name/other.png"'
  "$CLI" -m "$MD_GOLDEN_DIR/$name" --from-png "k-$name/token.png" -q -o again.png
  check "$name: --from-png reproduces token routing" 'cmp -s again.png "k-$name/token.png"'
done
check "a line with moe_top_k above the experts fails alone" \
  'printf "{\"prompt\":\"x\",\"steps\":1,\"moe_top_k\":5}\n" > bad.jsonl; "$CLI" batch -m "$MOE" --prompts bad.jsonl -d bad -q 2>err; [ $? = 1 ] && grep -q "the model has 4 experts" err'

echo "cli_request_fields: $pass passed, $fail failed"
[ "$fail" = 0 ]

#!/usr/bin/env bash
# End to end: faults end with a clear message instead of a wrong image.
# NaN weights in the text encoder, the U-Net or the VAE stop the generation
# naming the stage (exit 1, no file); an emphasis weight beyond float's
# range is refused; a mask that selects nothing is refused (exit 2); "%%"
# in -o is a literal percent sign, and -b 2 with no number directive in -o
# (two images, one file) is refused.
set -u
BUILD=${1:?build dir}
CLI="$BUILD/moe-diffuse"
IMG="$BUILD/md-test-image"
CASE="${MD_GOLDEN_DIR:?}/tiny-sd-dense"
TMP=$(mktemp -d)
trap 'chmod -R u+w "$TMP"; rm -rf "$TMP"' EXIT
. "$(dirname "$0")/support/checks.sh"

gen() { "$CLI" -q -p "a cat" --steps 2 -W 16 -H 16 --seed 1 "$@"; }

# 1. One NaN in one tensor of each stage's weights.
poisoned() { # STAGE-FOLDER FILE TENSOR: a copy of the model with that tensor's first float NaN
  local dir="$TMP/poison-$1"
  cp -r "$CASE" "$dir" && chmod -R u+w "$dir" &&
    "$BUILD/md-test-poison" "$dir/$1/$2" "$3" nan && echo "$dir"
}
while read -r stage file tensor want; do
  model=$(poisoned "$stage" "$file" "$tensor") || { bad "poison $stage"; continue; }
  gen -m "$model" -o "$TMP/nan-$stage.png" 2>"$TMP/err"; rc=$?
  if [ "$rc" = 1 ] && grep -q "$want produced a non-finite value (NaN" "$TMP/err"; then
    ok "NaN in $stage weights: exit 1, names '$want'"
  else bad "NaN in $stage weights: exit $rc: $(cat "$TMP/err")"; fi
  if [ -e "$TMP/nan-$stage.png" ]; then bad "NaN in $stage weights: wrote an image"
  else ok "NaN in $stage weights: no image"; fi
done <<'LIST'
text_encoder model.safetensors text_model.final_layer_norm.weight the text encoder
unet diffusion_pytorch_model.safetensors conv_in.weight the U-Net at step 1
vae diffusion_pytorch_model.safetensors post_quant_conv.weight the VAE decoder
LIST

# 2. Emphasis beyond float's range (1e39, and 1e40 as a product of two).
for prompt in "(word:1000000000000000000000000000000000000000)" \
              "((word:100000000000000000000):100000000000000000000)"; do
  gen -m "$CASE" -p "$prompt" -o "$TMP/emph.png" 2>"$TMP/err"; rc=$?
  if [ "$rc" != 0 ] && grep -q "out of range" "$TMP/err" && [ ! -e "$TMP/emph.png" ]; then
    ok "emphasis overflow refused (exit $rc): $prompt"
  else bad "emphasis overflow: exit $rc, $(ls "$TMP" | grep -c emph) files: $(cat "$TMP/err")"; fi
done

# 3. A mask that selects nothing (all black).
"$IMG" make "$TMP/init.png" 16 16 gradient
"$IMG" make "$TMP/black.png" 16 16 black
gen -m "$CASE" -i "$TMP/init.png" --mask "$TMP/black.png" -o "$TMP/inp.png" 2>"$TMP/err"; rc=$?
if [ "$rc" = 2 ] && grep -q "selects nothing" "$TMP/err" && [ ! -e "$TMP/inp.png" ]; then
  ok "empty mask refused, exit 2"
else bad "empty mask: exit $rc: $(cat "$TMP/err")"; fi

# 4. -o patterns: %% is a percent sign; two images never share a file.
gen -m "$CASE" -o "$TMP/p%%d_%d.png" -b 2 2>"$TMP/err"; rc=$?
if [ "$rc" = 0 ] && [ -e "$TMP/p%d_1.png" ] && [ -e "$TMP/p%d_2.png" ]; then
  ok "-o %% is a literal %"
else bad "-o %%: exit $rc, files: $(ls "$TMP" | tr '\n' ' ') $(cat "$TMP/err")"; fi
gen -m "$CASE" -o "$TMP/a%%d.png" -b 2 2>"$TMP/err"; rc=$?
if [ "$rc" = 2 ] && grep -q "needs a %d" "$TMP/err" && [ ! -e "$TMP/a%d.png" ]; then
  ok "-b 2 -o a%%d.png refused (one file for two images)"
else bad "-b 2 -o a%%d.png: exit $rc: $(cat "$TMP/err")"; fi

echo "cli faults: $pass passed, $fail failed"
[ "$fail" = 0 ]

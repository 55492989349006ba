#!/usr/bin/env bash
# An SDXL single file (SGM layout) loads with no architecture override: its
# shapes and the SDXL defaults give the same model as the diffusers folder
# it was written from, bit for bit (text encoders, U-Net, VAE decode).
set -u
BUILD=${1:?build dir}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
"$BUILD/make-random-model" --preset sdxl-small --seed 3 --single-file "$TMP/sdxl.safetensors" \
    "$TMP/sdxl" || { echo "FAIL make-random-model"; exit 1; }
"$BUILD/model-compare" "$TMP/sdxl" "$TMP/sdxl.safetensors" --size 128 --threads 2 >"$TMP/out" 2>&1
rc=$?
cat "$TMP/out"
if [ $rc -ne 0 ]; then echo "FAIL single file differs from its folder (rc $rc)"; exit 1; fi
# the comparison must have run every part and found SDXL (family 2)
for part in "settings +identical \\(family 2, native 1024 px, guidance 5, scaling 0.13025\\)" \
            "text embeddings *bit-identical" "pooled text *bit-identical" \
            "unet *bit-identical" "vae decode *bit-identical"; do
  grep -qE "^$part" "$TMP/out" || { echo "FAIL missing: $part"; exit 1; }
done
# and a model with other weights is told apart
"$BUILD/make-random-model" --preset sdxl-small --seed 4 --single-file "$TMP/other.safetensors" ||
    { echo "FAIL make-random-model (seed 4)"; exit 1; }
"$BUILD/model-compare" "$TMP/sdxl" "$TMP/other.safetensors" --size 128 --threads 2 >"$TMP/out2" 2>&1
rc=$?
if [ $rc -ne 1 ] || ! grep -q "^unet *DIFFER" "$TMP/out2"; then
  echo "FAIL other weights not told apart (rc $rc)"; cat "$TMP/out2"; exit 1
fi
echo "ok   SDXL single file matches its diffusers folder"

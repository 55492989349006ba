#!/usr/bin/env bash
# Routing health through the ABI (abi_health.c): a random tiny MoE model,
# and a copy whose gates send every token to experts 0 and 1 only.
set -u
BUILD=${1:?build dir}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
for m in healthy collapsed; do
  "$BUILD/make-random-model" --preset tiny --experts 4 --top-k 2 --routing token --f32 \
    "$TMP/$m" >/dev/null || { echo "FAIL: make-random-model"; exit 1; }
done
"$BUILD/md-test-collapse" "$TMP/collapsed/unet/diffusion_pytorch_model.safetensors" 2 >/dev/null ||
  { echo "FAIL: md-test-collapse"; exit 1; }
exec "$BUILD/abi_health" "$TMP/collapsed" "$TMP/healthy"

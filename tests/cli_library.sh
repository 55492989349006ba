#!/usr/bin/env bash
# The CLI is a host of libmoediffuse like any other: it loads the shared
# library, carries none of the engine itself, and reaches the backends,
# devices and the GPU profile through the ABI.
set -u
BUILD=${1:?build dir}
CLI="$BUILD/moe-diffuse"
CASE="${MD_GOLDEN_DIR:?}/tiny-sd-dense"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
. "$(dirname "$0")/support/checks.sh"

check "links libmoediffuse.so.1" grep -q 'libmoediffuse\.so\.1 => ' <(ldd "$CLI")
# Model loading, the U-Net, the samplers and the backends live in the library only.
engine=$(nm "$CLI" | grep -cE ' [Tt] (md_generate|md_model_load|md_unet_forward|md_sampler_name|md_backend_create|md_backend_cpu_create)$')
check "no engine code in the executable ($engine symbols)" test "$engine" -eq 0

"$CLI" devices >"$TMP/dev" 2>&1; rc=$?
check "devices lists or explains (rc $rc)" test $rc -eq 0 -a -s "$TMP/dev"

"$CLI" -m "$CASE" -p x --device 40 --backend vulkan -o "$TMP/d.png" 2>"$TMP/err"; rc=$?
check "a device that does not exist is a usage error (rc $rc)" test $rc -eq 2
check "... naming it" grep -q "40" "$TMP/err"
check "... and no output" test ! -e "$TMP/d.png"

# A bad value inside a model's files is a malformed model (exit 3), not a usage error.
mkdir -p "$TMP/bad" && cp -r "$CASE"/. "$TMP/bad/"
sed -i 's/"layers_per_block": *[0-9]*/"layers_per_block": "x"/' "$TMP/bad/unet/config.json"
"$CLI" -m "$TMP/bad" -q -p x -o "$TMP/b.png" 2>"$TMP/err"; rc=$?
check "a malformed config is exit 3 (rc $rc)" test $rc -eq 3
check "... naming the file" grep -q "unet/config.json" "$TMP/err"

"$CLI" -m "$CASE" -q -p "a red fox" --steps 2 --seed 3 --backend cpu --profile -o "$TMP/c.png" 2>"$TMP/err"; rc=$?
check "--profile on the CPU still renders (rc $rc)" test $rc -eq 0 -a -s "$TMP/c.png"
check "... and says the profile needs Vulkan" grep -q "needs the Vulkan backend" "$TMP/err"

# --plain-prompt is recorded, so --from-png re-creates the same pixels.
"$CLI" -m "$CASE" -q -p "a (red:1.5) fox" --plain-prompt --steps 2 --seed 4 --backend cpu -o "$TMP/p.png"
"$CLI" -m "$CASE" -q --from-png "$TMP/p.png" --backend cpu -o "$TMP/p2.png"
"$CLI" -m "$CASE" -q -p "a (red:1.5) fox" --steps 2 --seed 4 --backend cpu -o "$TMP/w.png"
check "plain prompt recorded" grep -q "Prompt syntax: plain" <("$BUILD/md-test-image" text "$TMP/p.png" parameters)
check "... and --from-png follows it" cmp -s <("$BUILD/md-test-image" pixels "$TMP/p.png") <("$BUILD/md-test-image" pixels "$TMP/p2.png")
check "... which differs from the weighted syntax" \
  bash -c '! cmp -s <("$0" pixels "$1") <("$0" pixels "$2")' "$BUILD/md-test-image" "$TMP/p.png" "$TMP/w.png"

# lavapipe (CI) or a GPU: the profile lists ops with their GPU time.
if grep -q '^0 ' "$TMP/dev"; then
    "$CLI" -m "$CASE" -q -p "a red fox" --steps 2 --seed 3 --backend vulkan --device 0 --profile \
        -o "$TMP/v.png" 2>"$TMP/err"; rc=$?
    check "vulkan --profile renders (rc $rc)" test $rc -eq 0 -a -s "$TMP/v.png"
    check "... and prints GPU time per op" grep -q "GPU time per op" "$TMP/err"
    check "... with the GEMM among the ops" grep -qiE "linear|gemm" "$TMP/err"
fi

# --backend auto never takes a CPU-type Vulkan device (lavapipe).
if grep -q 'CPU (used only' "$TMP/dev" && ! grep -qE 'discrete|integrated' "$TMP/dev"; then
    "$CLI" -m "$CASE" -v -p x --steps 1 --backend auto -o "$TMP/a.png" 2>"$TMP/err"
    check "auto runs on the CPU when only lavapipe exists" grep -q "backend cpu" "$TMP/err"
fi

echo "cli library: $pass passed, $fail failed"
test $fail -eq 0

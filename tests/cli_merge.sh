#!/usr/bin/env bash
# End to end: `moe-diffuse merge` on the golden SegMoE case, then each bad
# input (issue: missing source, experts of another architecture,
# num_experts_per_tok > experts, unknown moe_layers value or key, a pickle
# source, an existing output, Ctrl-C) exits with its documented code and a
# message naming the file and key, and leaves no folder behind.
set -u
BUILD=${1:?build dir}
CLI="$BUILD/moe-diffuse"
G="${MD_GOLDEN_DIR:?}"
CASE="$G/tiny-segmoe-merge"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
. "$(dirname "$0")/support/checks.sh"
for d in base source_1 source_2; do ln -s "$CASE/$d" "$TMP/$d"; done
ln -s "$G/tiny-sdxl" "$TMP/sdxl"
: >"$TMP/old.ckpt"

# config NAME, then lines: base, experts (source list), extra top-level lines
config() { # FILE TOP_K LAYERS SOURCE2 [EXTRA]
  cat >"$TMP/$1" <<YAML
base_model: base
num_experts: 2
moe_layers: $3
num_experts_per_tok: $2
type: sd
experts:
  - source_model: source_1
    positive_prompt: "a photo, (cinematic:1.3)"
    negative_prompt: "blurry"
  - source_model: $4
    positive_prompt: "anime"
    negative_prompt: "low quality"
${5:-}
YAML
}
nothing_left() { [ ! -e "$TMP/out" ] && ! ls "$TMP" | grep -q 'partial'; }
expect() { # NAME CONFIG EXIT PATTERN...
  local name=$1 cfg=$2 want=$3; shift 3
  "$CLI" merge -q "$TMP/$cfg" "$TMP/out" 2>"$TMP/err"; local rc=$? ok_=1
  for pat in "$@"; do grep -qF -- "$pat" "$TMP/err" || ok_=0; done
  if [ "$rc" = "$want" ] && [ $ok_ = 1 ] && nothing_left; then ok "$name: exit $rc"
  else bad "$name: exit $rc (want $want): $(cat "$TMP/err")"; rm -rf "$TMP/out"; fi
}

config good.yaml 1 attn source_2
"$CLI" merge "$TMP/good.yaml" "$TMP/out" 2>"$TMP/err"; rc=$?
check "merge exits 0" test "$rc" = 0
check "progress per expert and gate steps" grep -q "expert 2 of 2: gate initialisation done (25 steps)" "$TMP/err"
check "no temporary folder left" test -z "$(ls "$TMP" | grep partial)"
"$CLI" info "$TMP/out" >"$TMP/info" 2>&1
check "the merged model is a 2-expert top-1 MoE" grep -q "2 experts per layer, top-1" "$TMP/info"
check "f16 by default" grep -q "F16 100%" "$TMP/info"
"$CLI" -m "$TMP/out" -q -p "a cat" --steps 2 -o "$TMP/cat.png"
check "the merged model generates" test -s "$TMP/cat.png"
check "the seed is recorded" grep -q '"gate_init_seed":' "$TMP/out/unet/config.json"
"$CLI" merge -q "$TMP/good.yaml" "$TMP/out" 2>"$TMP/err"; rc=$?
check "existing output: exit 4" test "$rc" = 4
check "existing output: named" grep -q "$TMP/out: the output exists" "$TMP/err"
check "existing output: left as it was" test -s "$TMP/out/unet/diffusion_pytorch_model.safetensors"
rm -rf "$TMP/out"

"$CLI" merge -q --dtype f32 --gate-init random --seed 7 "$TMP/good.yaml" "$TMP/out" 2>"$TMP/err"
U="$TMP/out/unet/diffusion_pytorch_model.safetensors"
check "--dtype f32: the U-Net is f32" test "$(head -c 200000 "$U" | grep -ac '"F16"')" = 0
check "--dtype f32: and only f32" grep -aq '"F32"' "$U"
check "--gate-init random is recorded" grep -q '"init":.*"random"' "$TMP/out/unet/config.json"
rm -rf "$TMP/out"

# A LoRA under an expert: fused into that expert's layers (and its gate
# run), its prompt appended to the expert's.
config lora.yaml 1 attn source_2
sed -i "/negative_prompt: \"blurry\"/a\\    loras:\\n      - source_model: $G/tiny-sd-lora/lora_kohya.safetensors\\n        positive_prompt: \"lora words\"" "$TMP/lora.yaml"
"$CLI" merge -q "$TMP/lora.yaml" "$TMP/out" 2>"$TMP/err"; rc=$?
check "merge with a LoRA: exit 0" test "$rc" = 0
check "the LoRA is recorded in segmoe_config" grep -q '"lora words"' "$TMP/out/unet/config.json"
rm -rf "$TMP/out"
# With the same random gates, only the LoRA's fused weights tell the two apart.
U=unet/diffusion_pytorch_model.safetensors
"$CLI" merge -q --gate-init random "$TMP/lora.yaml" "$TMP/out" 2>/dev/null
"$CLI" merge -q --gate-init random "$TMP/good.yaml" "$TMP/out2" 2>/dev/null
check "the LoRA changes the merged weights" test -s "$TMP/out/$U" -a -s "$TMP/out2/$U"
check "... and only them (same size)" test "$(stat -c %s "$TMP/out/$U")" = "$(stat -c %s "$TMP/out2/$U")"
differs() { ! cmp -s "$1" "$2"; }
check "... which differ" differs "$TMP/out/$U" "$TMP/out2/$U"
rm -rf "$TMP/out" "$TMP/out2"
sed "s|$G/tiny-sd-lora/lora_kohya.safetensors|gone.safetensors|" "$TMP/lora.yaml" >"$TMP/nolora.yaml"
expect "missing LoRA" nolora.yaml 4 "nolora.yaml: experts[0].loras[0].source_model: 'gone.safetensors' does not exist"

# A top-level LoRA: fused into the base (its U-Net outside the MoE layers
# and its text encoder, kept in the file's dtype).
config toplora.yaml 1 attn source_2 "loras:
  - source_model: $G/tiny-sd-lora/lora_kohya.safetensors"
"$CLI" merge -q --gate-init random "$TMP/toplora.yaml" "$TMP/out" 2>"$TMP/err"; rc=$?
"$CLI" merge -q --gate-init random "$TMP/good.yaml" "$TMP/out2" 2>/dev/null
check "top-level LoRA: exit 0" test "$rc" = 0
check "top-level LoRA: the text encoder is fused" differs "$TMP/out/text_encoder/model.safetensors" "$CASE/base/text_encoder/model.safetensors"
check "top-level LoRA: the base's U-Net weights are fused" differs "$TMP/out/$U" "$TMP/out2/$U"
check "without it the text encoder is copied" cmp -s "$TMP/out2/text_encoder/model.safetensors" "$CASE/base/text_encoder/model.safetensors"
"$CLI" -m "$TMP/out" -q -p "a cat" --steps 2 -o "$TMP/lora-cat.png"
check "the LoRA-fused merge generates" test -s "$TMP/lora-cat.png"
rm -rf "$TMP/out" "$TMP/out2"

# A single-file source (the same weights as an LDM checkpoint) merges to
# the same bytes as its diffusers folder, gates included.
"$BUILD/md-test-single-file" "$CASE/source_2" "$TMP/s2.safetensors" >/dev/null
config single.yaml 1 attn s2.safetensors
"$CLI" merge -q --dtype f32 "$TMP/good.yaml" "$TMP/out" 2>/dev/null
"$CLI" merge -q --dtype f32 "$TMP/single.yaml" "$TMP/out2" 2>"$TMP/err"; rc=$?
check "single-file source: exit 0" test "$rc" = 0
check "single-file source: the same U-Net file" cmp -s "$TMP/out/$U" "$TMP/out2/$U"
rm -rf "$TMP/out" "$TMP/out2"

config missing.yaml 1 attn source_3
expect "missing source" missing.yaml 4 "missing.yaml: experts[1].source_model: 'source_3' does not exist"
config arch.yaml 1 attn sdxl
expect "experts of another architecture" arch.yaml 3 "arch.yaml: experts[1].source_model" "architecture"
config topk.yaml 3 attn source_2
expect "num_experts_per_tok > experts" topk.yaml 2 "topk.yaml: num_experts_per_tok: 3 is more than the 2 experts"
config layers.yaml 1 mlp source_2
expect "unknown moe_layers" layers.yaml 2 "layers.yaml: moe_layers: 'mlp' is not one of ff, attn, all"
config key.yaml 1 attn source_2 "gate_temperature: 2"
expect "unknown key" key.yaml 2 "key.yaml: unknown key 'gate_temperature'"
config pickle.yaml 1 attn old.ckpt
expect "pickle source" pickle.yaml 3 "pickle.yaml: experts[1].source_model: 'old.ckpt' is a pickle checkpoint"
printf 'base_model: base\nexperts: [\n' >"$TMP/broken.yaml"
expect "not YAML" broken.yaml 2 "broken.yaml:"
"$CLI" merge -q --dtype f8 "$TMP/good.yaml" "$TMP/out" 2>"$TMP/err"; rc=$?
check "--dtype f8: exit 2" test "$rc" = 2

# Ctrl-C while the gate-init runs: exit 130, nothing left. Sixteen experts
# keep it busy long enough to be interrupted after the second starts.
{ sed -n '1,5p' "$TMP/good.yaml"; echo "experts:"
  for i in $(seq 16); do printf '  - source_model: source_%d\n    positive_prompt: "p%d"\n' $((i % 2 + 1)) "$i"; done
} >"$TMP/many.yaml"
sed -i 's/^num_experts: 2/num_experts: 16/' "$TMP/many.yaml"
"$CLI" merge "$TMP/many.yaml" "$TMP/out" 2>"$TMP/err" & pid=$!
for _ in $(seq 400); do grep -q "expert 2 of 16" "$TMP/err" 2>/dev/null && break; sleep 0.05; done
kill -INT "$pid"; wait "$pid"; rc=$?
check "Ctrl-C: exit 130" test "$rc" = 130
check "Ctrl-C: says so" grep -q "cancelled; nothing was written" "$TMP/err"
check "Ctrl-C: nothing left" nothing_left

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]

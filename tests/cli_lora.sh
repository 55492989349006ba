#!/usr/bin/env bash
# End to end: LoRAs from the command line, prompt tags and batch lines,
# recorded in the PNG and reproduced by --from-png, and refused with a
# clear message, the documented exit code and no file when they cannot be
# applied (docs/lora.md).
set -u
BUILD=${1:?build dir}
CLI="$BUILD/moe-diffuse"
IMG="$BUILD/md-test-image"
MKLORA="$BUILD/md-test-lora"
G="${MD_GOLDEN_DIR:?}"
MODEL="$G/tiny-sd-dense"
KOHYA="$G/tiny-sd-lora/lora_kohya.safetensors"
DIFFUSERS="$G/tiny-sd-lora/lora_diffusers/pytorch_lora_weights.safetensors"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
. "$(dirname "$0")/support/checks.sh"
export MOEDIFFUSE_HASH_CACHE="$TMP/hashes.tsv"
unset MOEDIFFUSE_LORA_DIR

gen() { "$CLI" -q -m "$MODEL" -p "a cat" --steps 3 -W 64 -H 64 --seed 7 "$@"; }
same() { cmp -s <("$IMG" pixels "$1") <("$IMG" pixels "$2"); }
# largest per-channel difference of two images (cmp -l lists differing bytes in octal)
maxdiff() {
  local m=0 a b d
  while read -r _ a b; do
    d=$(( 8#$a - 8#$b )); d=${d#-}; [ "$d" -gt "$m" ] && m=$d
  done < <(cmp -l <("$IMG" pixels "$1") <("$IMG" pixels "$2"))
  echo "$m"
}
mkdir -p "$TMP/loras/styles"
cp "$KOHYA" "$TMP/loras/styles/ink.safetensors"
cp "$KOHYA" "$TMP/loras/lora_kohya.safetensors"

# 1. A LoRA changes the image; weight 0 does not; a tag is the same as --lora.
gen -o "$TMP/base.png"
check "--lora FILE:0.8 runs" gen --lora "$KOHYA:0.8" -o "$TMP/lora.png"
if same "$TMP/base.png" "$TMP/lora.png"; then bad "--lora changes the image"
else ok "--lora changes the image"; fi
gen --lora "$KOHYA:0" -o "$TMP/zero.png"
check "--lora FILE:0 is the image without it" same "$TMP/base.png" "$TMP/zero.png"
"$CLI" -q -m "$MODEL" -p "a cat <lora:ink:0.8>" --steps 3 -W 64 -H 64 --seed 7 \
  --lora-dir "$TMP/loras" -o "$TMP/tag.png"
check "<lora:NAME:0.8> found in a subfolder of --lora-dir = --lora FILE:0.8" \
  same "$TMP/lora.png" "$TMP/tag.png"
"$CLI" -q -m "$MODEL" -p "a cat <lora:styles/ink:0.8>" --steps 3 -W 64 -H 64 --seed 7 \
  --lora-dir "$TMP/loras" -o "$TMP/tag2.png"
check "<lora:SUB/NAME:0.8> = --lora FILE:0.8" same "$TMP/lora.png" "$TMP/tag2.png"
gen --lora "$DIFFUSERS:0.8" -o "$TMP/diffusers.png"
d=$(maxdiff "$TMP/lora.png" "$TMP/diffusers.png")
if [ "$d" -le 2 ]; then ok "the diffusers file gives the kohya file's image (max diff $d)"
else bad "diffusers vs kohya file: max diff $d"; fi
gen --lora "$KOHYA:0.4" --lora "$KOHYA:0.4" -o "$TMP/two.png"
d=$(maxdiff "$TMP/lora.png" "$TMP/two.png")
if [ "$d" -le 2 ]; then ok "two LoRAs add up: 0.4 + 0.4 = 0.8 (max diff $d)"
else bad "0.4 + 0.4 vs 0.8: max diff $d"; fi

cp "$DIFFUSERS" "$TMP/loras/dif.safetensors"
gen -p "a cat <lora:ink:0.3>" --lora-dir "$TMP/loras" --lora "$TMP/loras/dif.safetensors:0.5" \
  -o "$TMP/mixed.png"
"$CLI" -q -m "$MODEL" --from-png "$TMP/mixed.png" --lora-dir "$TMP/loras" -o "$TMP/mixed-again.png"
check "a tag and --lora together: --from-png applies them in the same order, same pixels" \
  same "$TMP/mixed.png" "$TMP/mixed-again.png"

# 2. Recorded as A1111 does, and reproduced.
text=$("$IMG" text "$TMP/lora.png" parameters)
case "$text" in
  "a cat <lora:lora_kohya:0.8>"*) ok "parameters: the LoRA is a tag of the prompt" ;;
  *) bad "parameters: $text" ;;
esac
if grep -Eq 'Lora hashes: "lora_kohya: [0-9a-f]{12}"' <<<"$text" &&
   grep -Eq 'Model hash: [0-9a-f]{10}' <<<"$text"; then
  ok "parameters: Model hash and Lora hashes"
else bad "parameters lack the hashes: $text"; fi
"$CLI" -q -m "$MODEL" --from-png "$TMP/lora.png" --lora-dir "$TMP/loras" -o "$TMP/again.png"
check "--from-png with --lora-dir reproduces the image" same "$TMP/lora.png" "$TMP/again.png"
MOEDIFFUSE_LORA_DIR="$TMP/loras" "$CLI" -q -m "$MODEL" --from-png "$TMP/lora.png" \
  -o "$TMP/again2.png"
check "--from-png with \$MOEDIFFUSE_LORA_DIR reproduces the image" \
  same "$TMP/lora.png" "$TMP/again2.png"
check "--from-png writes the same parameters" \
  test "$("$IMG" text "$TMP/again.png" parameters)" = "$text"

mkdir -p "$TMP/other"
cp "$KOHYA" "$TMP/other/lora_kohya.safetensors"
"$BUILD/md-test-zero" "$TMP/other/lora_kohya.safetensors" mlp_fc1 >/dev/null
"$CLI" -m "$MODEL" --from-png "$TMP/lora.png" --lora-dir "$TMP/other" -o "$TMP/other.png" \
  2>"$TMP/err" >/dev/null
grep -q "the image was made with LoRAs lora_kohya: [0-9a-f]*; the ones found now are" "$TMP/err" &&
  ok "--from-png warns when a LoRA found by name has another hash" ||
  bad "no warning for another LoRA file: $(cat "$TMP/err")"
"$CLI" -m "$G/tiny-sd-moe" --from-png "$TMP/lora.png" --lora-dir "$TMP/loras" \
  -o "$TMP/moe.png" 2>"$TMP/err" >/dev/null
grep -q "the image was made with a model of hash [0-9a-f]\{10\}" "$TMP/err" &&
  ok "--from-png warns when the model's hash differs" ||
  bad "no warning for another model: $(cat "$TMP/err")"

gen --plain-prompt --lora "$KOHYA:0.8" -o "$TMP/plain-lora.png"
"$CLI" -q -m "$MODEL" --from-png "$TMP/plain-lora.png" -o "$TMP/plain-again.png"
check "plain syntax: the PNG lists the LoRA files and --from-png applies them" \
  same "$TMP/plain-lora.png" "$TMP/plain-again.png"
grep -q "^a cat$" <("$IMG" text "$TMP/plain-lora.png" parameters) &&
  ok "plain syntax: no tag in the prompt" || bad "plain syntax: a tag in the prompt"

# 3. The plain syntax keeps tags as text (no LoRA folder needed).
check "--plain-prompt leaves <lora:...> as text" \
  "$CLI" -q -m "$MODEL" -p "a cat <lora:nowhere:1>" --plain-prompt --steps 3 -W 64 -H 64 \
  --seed 7 -o "$TMP/plain.png"

# 4. Refusals: message, exit code, nothing written.
"$MKLORA" "$KOHYA" "$TMP/unmatched.safetensors" lora_unet_down_blocks_0 lora_unet_down_blocks_9
"$MKLORA" "$KOHYA" "$TMP/sdxl.safetensors" lora_te_ lora_te2_
head -c 300 "$KOHYA" > "$TMP/torn.safetensors"
touch "$TMP/loras/old.pt"
refused() { # NAME WANT-EXIT WANT-TEXT ARGS...
  local name=$1 want=$2 text=$3 out="$TMP/refused.png"; shift 3
  rm -f "$out"
  "$CLI" -q -m "$MODEL" --steps 3 -W 64 -H 64 --seed 7 -o "$out" "$@" 2>"$TMP/err"; local rc=$?
  if [ "$rc" = "$want" ] && grep -q -- "$text" "$TMP/err" && [ ! -e "$out" ]; then
    ok "$name: exit $want, names it, no file"
  else bad "$name: exit $rc, file $( [ -e "$out" ] && echo written || echo none): $(cat "$TMP/err")"; fi
}
refused "a missing LoRA file" 4 "no-such.safetensors: no such LoRA file" \
  -p "a cat" --lora "$TMP/no-such.safetensors"
refused "a name not in --lora-dir" 4 "<lora:nobody>: no nobody.safetensors" \
  -p "a cat <lora:nobody:1>" --lora-dir "$TMP/loras"
refused "a tag without --lora-dir" 4 "no LoRA folder given" -p "a cat <lora:ink:1>"
refused "a pickle LoRA by name" 2 "old.pt: a pickle checkpoint" \
  -p "a cat <lora:old>" --lora-dir "$TMP/loras"
refused "a pickle LoRA file" 2 "a pickle checkpoint" -p "a cat" --lora "$TMP/loras/old.pt"
refused "a name leaving the folder" 2 "must stay inside the LoRA folder" \
  -p "a cat <lora:../x:1>" --lora-dir "$TMP/loras"
refused "a weight that is not a number" 2 "the weight is not a number" \
  -p "a cat <lora:ink:x>" --lora-dir "$TMP/loras"
refused "modules no layer has" 2 "match no layer of the model: lora_unet_down_blocks_9" \
  -p "a cat" --lora "$TMP/unmatched.safetensors"
refused "another family's LoRA (lora_te2_ on SD 1.x)" 2 "text_encoder_2" \
  -p "a cat" --lora "$TMP/sdxl.safetensors"
refused "a torn LoRA file" 4 "torn.safetensors" -p "a cat" --lora "$TMP/torn.safetensors"
check "--lora-allow-unmatched applies the modules that match" \
  gen --lora "$TMP/unmatched.safetensors:0.8" --lora-allow-unmatched -o "$TMP/partial.png"
if [ -e "$TMP/partial.png" ] && ! same "$TMP/partial.png" "$TMP/base.png" &&
   ! same "$TMP/partial.png" "$TMP/lora.png"; then
  ok "--lora-allow-unmatched: an image between none and all of the LoRA"
else bad "--lora-allow-unmatched image"; fi
grep -q "Lora allow unmatched: true" <(("$IMG" text "$TMP/partial.png" parameters)) &&
  ok "parameters record --lora-allow-unmatched" || bad "parameters lack Lora allow unmatched"

# 5. Batch lines: a list of (path, weight), and tags with --lora-dir.
cat > "$TMP/lines.jsonl" <<JSON
{"prompt": "a cat", "seed": 7, "loras": [{"path": "$KOHYA", "weight": 0.8}], "output": "list.png"}
{"prompt": "a cat <lora:ink:0.8>", "seed": 7, "output": "tag.png"}
{"prompt": "a cat", "seed": 7, "loras": ["$KOHYA:0.8"], "output": "text.png"}
JSON
"$CLI" batch -q -m "$MODEL" --prompts "$TMP/lines.jsonl" -d "$TMP/batch" --steps 3 -W 64 -H 64 \
  --lora-dir "$TMP/loras"; rc=$?
check "batch with LoRAs: exit 0" test "$rc" = 0
for f in list tag text; do
  check "batch $f.png = the CLI's image" same "$TMP/lora.png" "$TMP/batch/$f.png"
done
if grep -q '"loras":\[{"path":"[^"]*lora_kohya.safetensors","weight":0.8' "$TMP/batch/manifest.jsonl"; then
  ok "the manifest records the LoRA list"
else bad "manifest: $(head -c 600 "$TMP/batch/manifest.jsonl")"; fi
echo '{"prompt": "a cat", "loras": [{"path": 3}]}' > "$TMP/bad.jsonl"
"$CLI" batch -q -m "$MODEL" --prompts "$TMP/bad.jsonl" -d "$TMP/batch2" --steps 3 -W 64 -H 64 \
  2>"$TMP/err"; rc=$?
if [ "$rc" = 1 ] && grep -q '"loras" must be a list of LoRAs' "$TMP/err"; then
  ok "batch: a malformed loras value fails its line (exit 1)"
else bad "batch malformed loras: exit $rc: $(cat "$TMP/err")"; fi

echo "cli lora: $pass passed, $fail failed"
[ "$fail" = 0 ]

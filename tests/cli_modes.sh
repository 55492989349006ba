#!/usr/bin/env bash
# End to end: the CLI's modes and outputs on the tiny reference model:
# --from-png re-creates the same pixels, prompts from files and stdin,
# img2img (PNG and JPEG init, resize note), inpainting keeps the unmasked
# pixels, --batch-count seeds, JPEG/BMP outputs, --json events, a random
# seed printed and recorded, `info`, --help fitting one screen, sizes that
# are not multiples of 64.
set -u
BUILD=${1:?build dir}
CLI="$BUILD/moe-diffuse"
IMG="$BUILD/md-test-image"
CASE="${MD_GOLDEN_DIR:?}/tiny-sd-dense"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
. "$(dirname "$0")/support/checks.sh"
same_pixels() { cmp -s <("$IMG" pixels "$1") <("$IMG" pixels "$2"); }
params() { "$IMG" text "$1" parameters; }
run() { "$CLI" -m "$CASE" -q "$@" 2>"$TMP/err" || { echo "run failed: $*: $(cat "$TMP/err")"; return 1; }; }

# 1. --from-png: a long emphasised prompt (3 chunks), negative, clip skip,
#    an ancestral sampler; the re-creation has the same pixels and text
long="a (red:1.3) fox, [[blurry]], \\(not emphasised\\) $(for i in $(seq 150); do printf 'snow '; done)"
run -p "$long" -n "ugly, (bad hands:1.2)" --steps 6 --sampler euler_a --cfg-scale 6.5 \
    --clip-skip 1 --seed 11 -o "$TMP/a.png"
check "parameters in A1111 format" grep -qx \
  "Steps: 6, Sampler: Euler a, CFG scale: 6.5, Seed: 11, Size: 16x16, Model hash: [0-9a-f]\{10\}, Model: tiny-sd-dense, Clip skip: 2, Version: moe-diffuse .*" \
  <(params "$TMP/a.png")
check "negative prompt line" grep -qx "Negative prompt: ugly, (bad hands:1.2)" <(params "$TMP/a.png")
run --from-png "$TMP/a.png" -o "$TMP/b.png"
check "--from-png gives the same pixels" same_pixels "$TMP/a.png" "$TMP/b.png"
check "--from-png gives the same parameters" cmp -s <(params "$TMP/a.png") <(params "$TMP/b.png")
run --from-png "$TMP/a.png" --steps 3 -o "$TMP/c.png"
check "flags override --from-png" grep -q "^Steps: 3, Sampler: Euler a" <(params "$TMP/c.png")
check "an override changes the pixels" bash -c "! cmp -s <('$IMG' pixels '$TMP/a.png') <('$IMG' pixels '$TMP/c.png')"
# AUTOMATIC1111's own text: multi-line prompt, "Schedule type", quoted
# values with commas, keys we do not use
a1111=$'masterpiece, (best quality:1.2), a cat\nwearing a hat\nNegative prompt: lowres, bad anatomy\nSteps: 7, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6, Seed: 1234, Size: 16x16, Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Clip skip: 2, Lora hashes: "foo: abc, bar: def", Version: v1.9.4'
"$IMG" make "$TMP/a1111.png" 16 16 gradient parameters "$a1111"
run --from-png "$TMP/a1111.png" -o "$TMP/a1111_re.png"
check "--from-png reads AUTOMATIC1111's text" cmp -s <(params "$TMP/a1111_re.png") <(printf '%s\n' \
  "masterpiece, (best quality:1.2), a cat" "wearing a hat" "Negative prompt: lowres, bad anatomy" \
  "Steps: 7, Sampler: DPM++ 2M Karras, CFG scale: 6, Seed: 1234, Size: 16x16, Model hash: $(params "$TMP/a.png" | sed -n 's/.*Model hash: \([0-9a-f]*\),.*/\1/p'), Model: tiny-sd-dense, Clip skip: 2, Version: $("$CLI" --version)")
run -p "(red:1.3) fox" --steps 4 --seed 2 -o "$TMP/w.png"
run -p "red fox" --steps 4 --seed 2 -o "$TMP/u.png"
check "emphasis changes the image" bash -c "! cmp -s <('$IMG' pixels '$TMP/w.png') <('$IMG' pixels '$TMP/u.png')"

# 2. prompts from a file and from stdin equal -p
printf 'a lighthouse at dusk\n' > "$TMP/prompt.txt"
printf 'fog\n' > "$TMP/neg.txt"
run -p "a lighthouse at dusk" -n fog --steps 3 --seed 4 -o "$TMP/p1.png"
run --prompt-file "$TMP/prompt.txt" --negative-prompt-file "$TMP/neg.txt" --steps 3 --seed 4 -o "$TMP/p2.png"
check "--prompt-file" same_pixels "$TMP/p1.png" "$TMP/p2.png"
run --prompt-file - -n fog --steps 3 --seed 4 -o "$TMP/p3.png" < "$TMP/prompt.txt"
check "--prompt-file - (stdin)" same_pixels "$TMP/p1.png" "$TMP/p3.png"

# 3. img2img from PNG and JPEG, with the resize note
"$IMG" make "$TMP/init.png" 20 12 gradient
"$IMG" make "$TMP/init.jpg" 24 16 gradient
"$CLI" -m "$CASE" -p "a cat" --steps 6 --seed 1 -i "$TMP/init.png" --strength 0.6 \
  -o "$TMP/i2i.png" 2>"$TMP/err" >/dev/null
check "img2img resize note" grep -q "init.png is 20x12: scaled and centre-cropped to 24x16" "$TMP/err"
check "img2img output size" test "$("$IMG" size "$TMP/i2i.png")" = 24x16
check "img2img strength recorded" grep -q "Denoising strength: 0.6" <(params "$TMP/i2i.png")
run -p "a cat" --steps 6 --seed 1 -i "$TMP/init.jpg" -W 16 -H 16 -o "$TMP/i2j.png"
check "img2img from JPEG at -W/-H" test "$("$IMG" size "$TMP/i2j.png")" = 16x16
run --from-png "$TMP/i2i.png" -i "$TMP/init.png" -o "$TMP/i2i_again.png"
check "img2img --from-png: same pixels" same_pixels "$TMP/i2i.png" "$TMP/i2i_again.png"

# 4. inpainting: white (left half) repainted, the right half keeps the
#    init image's pixels exactly beyond the feathered edge (radius 1, x2)
"$IMG" make "$TMP/init16.png" 16 16 gradient
"$IMG" make "$TMP/mask16.png" 16 16 left-white
run -p "a dog" --steps 6 --seed 3 -i "$TMP/init16.png" --mask "$TMP/mask16.png" --strength 1 \
  -o "$TMP/inp.png"
check "inpaint keeps unmasked pixels" \
  cmp -s <("$IMG" pixels "$TMP/inp.png" 11 0 16 16) <("$IMG" pixels "$TMP/init16.png" 11 0 16 16)
check "inpaint repaints the masked area" bash -c \
  "! cmp -s <('$IMG' pixels '$TMP/inp.png' 0 0 6 16) <('$IMG' pixels '$TMP/init16.png' 0 0 6 16)"
run --from-png "$TMP/inp.png" -i "$TMP/init16.png" --mask "$TMP/mask16.png" -o "$TMP/inp2.png"
check "inpaint --from-png: same pixels" same_pixels "$TMP/inp.png" "$TMP/inp2.png"

# 5. --batch-count: numbered names, seeds counting up
run -p "a cat" --steps 3 --seed 5 -b 3 -o "$TMP/n_%02d.png"
check "batch count names" test -f "$TMP/n_01.png" -a -f "$TMP/n_02.png" -a -f "$TMP/n_03.png"
check "batch count seeds" grep -q "Seed: 7," <(params "$TMP/n_03.png")
run -p "a cat" --steps 3 --seed 6 -o "$TMP/s6.png"
check "image 2 is seed + 1" same_pixels "$TMP/n_02.png" "$TMP/s6.png"

# 6. JPEG and BMP outputs
run -p "a cat" --steps 2 --seed 1 -o "$TMP/o.jpg"
run -p "a cat" --steps 2 --seed 1 -o "$TMP/o.bmp"
check "jpg magic" test "$(head -c 3 "$TMP/o.jpg" | od -An -tx1 | tr -d ' \n')" = ffd8ff
check "bmp magic" test "$(head -c 2 "$TMP/o.bmp")" = BM

# 7. --json events on stdout, one object per line
"$CLI" -m "$CASE" -p "a cat" --steps 3 --seed 1 --json -o "$TMP/j.png" >"$TMP/j.out" 2>/dev/null
check "json start" grep -q '^{"event":"start","image":1,"images":1,"output":".*j.png","seed":1,' "$TMP/j.out"
check "json steps" test "$(grep -c '^{"event":"step",.*"step":[123],"steps":3,"it_per_s":' "$TMP/j.out")" = 3
check "json done" grep -q '^{"event":"done",.*"width":16,"height":16,"seconds":' "$TMP/j.out"
"$CLI" -m "$CASE" -p x --json -i "$TMP/none.png" -o "$TMP/j2.png" >"$TMP/j2.out" 2>/dev/null
check "json error" grep -q '^{"event":"error",.*"exit_code":4,"message":".*none.png: cannot open' "$TMP/j2.out"

# 8. a random seed is printed and recorded
"$CLI" -m "$CASE" -p "a cat" --steps 2 -o "$TMP/r.png" 2>"$TMP/err" >/dev/null
seed=$(sed -n 's/.*: seed \([0-9]*\),.*/\1/p' "$TMP/err")
check "random seed printed and in the PNG" grep -q "Seed: $seed," <(params "$TMP/r.png")

# 9. info, --help, --version
"$CLI" info "${MD_GOLDEN_DIR}/tiny-sd-moe" >"$TMP/info" 2>&1
check "info: MoE layout" grep -q "4 experts per layer, top-2, sequence routing" "$TMP/info"
check "info: active parameters" grep -q "^active per token .* top-2 of 4 experts" "$TMP/info"
check "info: memory" grep -q "^memory .*weights .* activations" "$TMP/info"
"$CLI" --help >"$TMP/help"
check "--help fits 80x24" test "$(wc -l <"$TMP/help")" -le 23 -a "$(awk '{ if (length($0) > m) m = length($0) } END { print m }' "$TMP/help")" -le 80
check "--help lists samplers" grep -q "ddim euler euler_a dpmpp_2m euler_karras dpmpp_2m_karras" "$TMP/help"
check "--version" grep -q "^moe-diffuse [0-9]" <("$CLI" --version)

# 10. sizes that are multiples of 8 but not of 64: a 3-level U-Net with a
#     VAE factor of 8 at 40x24 has latents 5x3 -> 3x2 -> 2x1
"$BUILD/make-random-model" --preset sdxl-small "$TMP/xl" >/dev/null
"$CLI" -m "$TMP/xl" -p "a cat" --steps 2 --seed 1 -W 40 -H 24 -q -o "$TMP/odd.png" 2>"$TMP/err"
check "40x24 on a 3-level U-Net (odd latent sizes)" test "$("$IMG" size "$TMP/odd.png" 2>&1)" = 40x24

if ls "$TMP" | grep -q '\.tmp'; then bad "temporary file left behind"; else ok "no temporary files left"; fi
echo "cli modes: $pass passed, $fail failed"
[ "$fail" = 0 ]

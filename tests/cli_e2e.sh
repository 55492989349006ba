#!/usr/bin/env bash
# End to end: the CLI on a golden case, and bad input giving a clear error,
# the documented exit code and no output file.
set -u
BUILD=${1:?build dir}
CLI="$BUILD/moe-diffuse"
CASE="${MD_GOLDEN_DIR:?}/tiny-sd-dense"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
. "$(dirname "$0")/support/checks.sh"

# expect NAME CODE PATTERN -- command...: exit code, stderr pattern, no out.png left
expect() {
  local name=$1 code=$2 pattern=$3; shift 4
  rm -f "$TMP/out.png"
  "$@" 2>"$TMP/err" >/dev/null; local rc=$?
  if [ "$rc" != "$code" ]; then bad "$name: exit $rc, wanted $code ($(head -c 300 "$TMP/err"))"; return; fi
  if ! grep -qE -- "$pattern" "$TMP/err"; then bad "$name: stderr lacks /$pattern/: $(head -c 300 "$TMP/err")"; return; fi
  if ls "$TMP" | grep -q '^out\.png'; then bad "$name: left an output file"; return; fi
  ok "$name"
}

png_size() { # prints WIDTHxHEIGHT of a PNG from its IHDR
  local w h
  w=$(od -An -tu1 -j16 -N4 "$1" | awk '{print $1*16777216+$2*65536+$3*256+$4}')
  h=$(od -An -tu1 -j20 -N4 "$1" | awk '{print $1*16777216+$2*65536+$3*256+$4}')
  echo "${w}x${h}"
}

# 1. a real run on the golden case writes a 16x16 PNG with its parameters
if "$CLI" -m "$CASE" -p "a photo of a cat" -n "blurry" --steps 4 --sampler ddim --seed 7 \
     -o "$TMP/good.png" -q 2>"$TMP/err"; then
  if [ "$(head -c 8 "$TMP/good.png" | od -An -tx1 | tr -d ' \n')" = "89504e470d0a1a0a" ] &&
     [ "$(png_size "$TMP/good.png")" = "16x16" ] &&
     grep -aq "Steps: 4, Sampler: DDIM, CFG scale: 7.5, Seed: 7, Size: 16x16, Model hash: [0-9a-f]\{10\}, Model: tiny-sd-dense" "$TMP/good.png"; then
    ok "txt2img writes a 16x16 PNG with parameters"
  else bad "txt2img output is not the expected PNG"; fi
  # the same seed gives the same bytes, with any thread count
  "$CLI" -m "$CASE" -p "a photo of a cat" -n "blurry" --steps 4 --sampler ddim --seed 7 -t 1 \
     -o "$TMP/again.png" -q 2>/dev/null
  if cmp -s "$TMP/good.png" "$TMP/again.png"; then ok "same seed, 1 thread: identical image"
  else bad "same seed with 1 thread gave another image"; fi
else
  bad "txt2img run failed: $(cat "$TMP/err")"
fi

# 2. bad input
cp -r "$CASE" "$TMP/model"; chmod -R u+w "$TMP/model"
ST="$TMP/model/unet/diffusion_pytorch_model.safetensors"
cp "$ST" "$TMP/st.orig"
head -c $(( $(stat -c %s "$ST") / 2 )) "$TMP/st.orig" > "$ST"
expect "truncated safetensors" 3 "diffusion_pytorch_model.safetensors.*trunc" -- \
  "$CLI" -m "$TMP/model" -p x --steps 1 -o "$TMP/out.png" -q
cp "$TMP/st.orig" "$ST"
printf '{"garbage' | dd of="$ST" bs=1 seek=8 conv=notrunc 2>/dev/null
expect "corrupted safetensors header" 3 "diffusion_pytorch_model.safetensors" -- \
  "$CLI" -m "$TMP/model" -p x --steps 1 -o "$TMP/out.png" -q
cp "$TMP/st.orig" "$ST"
expect "missing model" 3 "nonexistent" -- "$CLI" -m "$TMP/nonexistent" -p x -o "$TMP/out.png" -q
expect "unknown flag" 2 "unknown option '--bogus'" -- "$CLI" --bogus -p x -o "$TMP/out.png"
expect "unknown sampler" 2 "unknown sampler 'plms'" -- "$CLI" -m "$CASE" -p x --sampler plms -o "$TMP/out.png"
expect "size out of range" 2 "--width expects an integer in 8..8192" -- \
  "$CLI" -m "$CASE" -p x -W 100000 -o "$TMP/out.png"
expect "size not a multiple of 8" 2 "multiple of 8" -- "$CLI" -m "$CASE" -p x -W 100 -o "$TMP/out.png"
long=$(head -c 10000 /dev/zero | tr '\0' 'a')
expect "prompt of 10,000 characters" 2 "longer than" -- "$CLI" -m "$CASE" -p "$long" -o "$TMP/out.png"
expect "601-token prompt" 2 "601 tokens in 9 chunks: longer than the limit of 8 chunks" -- \
  "$CLI" -m "$CASE" -p "$(for i in $(seq 601); do printf 'a '; done)" -o "$TMP/out.png" -q
expect "bad emphasis weight" 2 "bad emphasis weight '1.2.3'" -- \
  "$CLI" -m "$CASE" -p "(cat:1.2.3)" -o "$TMP/out.png" -q
expect "bad -o pattern" 2 "unsupported % directive" -- "$CLI" -m "$CASE" -p x -o "$TMP/out_%s.png"
expect "two -o directives" 2 "more than one directive" -- "$CLI" -m "$CASE" -p x -o "$TMP/%d_%d.png"
expect "batch count without a pattern" 2 "needs a %d" -- \
  "$CLI" -m "$CASE" -p x -b 2 -o "$TMP/out.png"
expect "unknown output type" 2 "out.gif: unknown image type" -- "$CLI" -m "$CASE" -p x -o "$TMP/out.gif"
expect "unknown backend" 2 "unknown backend 'metal'" -- "$CLI" -m "$CASE" -p x --backend metal -o "$TMP/out.png"
expect "missing init image" 4 "nothere.png: cannot open" -- \
  "$CLI" -m "$CASE" -p x -i "$TMP/nothere.png" -o "$TMP/out.png" -q
printf 'not an image' > "$TMP/bad.png"
expect "unreadable init image" 4 "bad.png: not a PNG or JPEG" -- \
  "$CLI" -m "$CASE" -p x -i "$TMP/bad.png" -o "$TMP/out.png" -q
head -c 60 "$TMP/good.png" > "$TMP/cut.png"
expect "truncated init PNG" 4 "cut.png: not a valid PNG" -- \
  "$CLI" -m "$CASE" -p x -i "$TMP/cut.png" -o "$TMP/out.png" -q
expect "mask without init image" 2 "--mask needs --init-img" -- \
  "$CLI" -m "$CASE" -p x --mask "$TMP/good.png" -o "$TMP/out.png"
"$BUILD/md-test-image" make "$TMP/mask8.png" 8 8 left-white
expect "mask size mismatch" 2 "mask8.png is 8x8 but the init image .*good.png is 16x16" -- \
  "$CLI" -m "$CASE" -p x -i "$TMP/good.png" --mask "$TMP/mask8.png" -o "$TMP/out.png" -q
expect "strength out of range" 2 "--strength expects a number in 0..1" -- \
  "$CLI" -m "$CASE" -p x -i "$TMP/good.png" --strength 1.5 -o "$TMP/out.png"
"$BUILD/md-test-image" make "$TMP/plain.png" 16 16 gradient
expect "--from-png without parameters" 4 "plain.png: has no 'parameters' text chunk" -- \
  "$CLI" -m "$CASE" --from-png "$TMP/plain.png" -o "$TMP/out.png"
expect "no prompt" 2 "a prompt is required" -- "$CLI" -m "$CASE" -o "$TMP/out.png"
expect "missing prompt file" 4 "nofile.txt: cannot open" -- \
  "$CLI" -m "$CASE" --prompt-file "$TMP/nofile.txt" -o "$TMP/out.png"
expect "unwritable output" 4 "nodir/out.png" -- \
  "$CLI" -m "$CASE" -p x --steps 1 -o "$TMP/nodir/out.png" -q
if ls "$TMP" "$TMP/model" | grep -q '\.tmp'; then bad "temporary file left behind"; else ok "no temporary files left"; fi

echo "cli: $pass passed, $fail failed"
[ "$fail" = 0 ]

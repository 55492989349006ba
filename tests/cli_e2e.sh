#!/usr/bin/env bash
# End to end: the CLI on a golden case, and bad input giving a clear error,
# the documented exit code and no output file.
set -u
BUILD=${1:?build dir}
CLI="$BUILD/moe-diffuse"
CASE="${MD_GOLDEN_DIR:?}/tiny-sd-dense"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
pass=0; fail=0
ok()  { pass=$((pass+1)); echo "ok   $1"; }
bad() { fail=$((fail+1)); echo "FAIL $1"; }

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
     grep -aq "Steps: 4, Sampler: ddim, CFG scale: 7.5, Seed: 7" "$TMP/good.png"; then
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
expect "unwritable output" 4 "nodir/out.png" -- \
  "$CLI" -m "$CASE" -p x --steps 1 -o "$TMP/nodir/out.png" -q
if ls "$TMP" "$TMP/model" | grep -q '\.tmp'; then bad "temporary file left behind"; else ok "no temporary files left"; fi

echo "cli: $pass passed, $fail failed"
[ "$fail" = 0 ]

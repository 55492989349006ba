#!/usr/bin/env bash
# End to end: --vae-tile decodes in tiles (close to the whole decode,
# recorded as "VAE tile", reproduced by --from-png), "off" and a tile
# larger than the image are the whole decode, and the automatic choice
# tiles only when the available memory cannot hold a whole decode
# ($MOEDIFFUSE_MEM_AVAILABLE stands in for a small machine).
set -u
BUILD=${1:?build dir}
CLI="$BUILD/moe-diffuse"
IMG="$BUILD/md-test-image"
MODEL="${MD_GOLDEN_DIR:?}/tiny-sd-dense"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
. "$(dirname "$0")/support/checks.sh"
gen() { "$CLI" -q -m "$MODEL" -p "a cat" --steps 3 -W 128 -H 96 --seed 3 "$@"; }
same() { cmp -s <("$IMG" pixels "$1") <("$IMG" pixels "$2"); }
params() { "$IMG" text "$1" parameters; }

gen -o "$TMP/whole.png"
gen --vae-tile off -o "$TMP/off.png"
check "--vae-tile off is the whole decode" same "$TMP/whole.png" "$TMP/off.png"
gen --vae-tile 256 -o "$TMP/big.png"
check "a tile larger than the image is the whole decode" same "$TMP/whole.png" "$TMP/big.png"
gen --vae-tile 64 -o "$TMP/t64.png"
if same "$TMP/whole.png" "$TMP/t64.png"; then bad "--vae-tile 64 decodes in tiles"
else ok "--vae-tile 64 decodes in tiles"; fi
maxdiff=0
while read -r _ a b; do
  d=$(( 8#$a - 8#$b )); d=${d#-}; [ "$d" -gt "$maxdiff" ] && maxdiff=$d
done < <(cmp -l <("$IMG" pixels "$TMP/whole.png") <("$IMG" pixels "$TMP/t64.png"))
if [ "$maxdiff" -le 64 ]; then ok "tiles stay close to the whole decode (max diff $maxdiff)"
else bad "tiles differ by up to $maxdiff"; fi
check "parameters record VAE tile" grep -q "VAE tile: 64," <(params "$TMP/t64.png")
"$CLI" -q -m "$MODEL" --from-png "$TMP/t64.png" -o "$TMP/again.png"
check "--from-png reproduces a tiled decode" same "$TMP/t64.png" "$TMP/again.png"
check "the whole decode records no VAE tile" bash -c "! grep -q 'VAE tile' <('$IMG' text '$TMP/whole.png' parameters)"

# img2img encodes the init image in the same tiles
"$CLI" -q -m "$MODEL" -p "a dog" -i "$TMP/whole.png" --strength 0.5 --steps 4 --seed 3 \
  --vae-tile 64 -o "$TMP/i64.png"
"$CLI" -q -m "$MODEL" --from-png "$TMP/i64.png" -i "$TMP/whole.png" -o "$TMP/i64-again.png"
check "img2img with tiles: --from-png reproduces it" same "$TMP/i64.png" "$TMP/i64-again.png"

MOEDIFFUSE_MEM_AVAILABLE=1000000 gen -o "$TMP/auto.png"
if grep -q "VAE tile: [0-9]" <(params "$TMP/auto.png"); then
  ok "little memory: the automatic choice tiles and records it ($(params "$TMP/auto.png" | grep -o 'VAE tile: [0-9]*'))"
else bad "little memory: no tiles: $(params "$TMP/auto.png")"; fi
MOEDIFFUSE_MEM_AVAILABLE=1000000 gen --vae-tile off -o "$TMP/auto-off.png"
check "little memory with --vae-tile off: the whole decode" same "$TMP/whole.png" "$TMP/auto-off.png"

for bad_tile in 12 33 -5 x; do
  rm -f "$TMP/bad.png"
  gen --vae-tile "$bad_tile" -o "$TMP/bad.png" 2>"$TMP/err"; rc=$?
  if [ "$rc" = 2 ] && [ ! -e "$TMP/bad.png" ] && grep -q "vae" "$TMP/err"; then
    ok "--vae-tile $bad_tile refused (exit 2)"
  else bad "--vae-tile $bad_tile: exit $rc: $(cat "$TMP/err")"; fi
done

echo "cli vae tile: $pass passed, $fail failed"
[ "$fail" = 0 ]

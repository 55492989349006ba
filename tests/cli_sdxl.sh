#!/usr/bin/env bash
# SDXL from the CLI: the family's default guidance (5.0) and size, and the
# micro-conditioning flags reaching the U-Net.
set -u
BUILD=${1:?build dir}
CLI="$BUILD/moe-diffuse"
M="${MD_GOLDEN_DIR:?}/tiny-sdxl"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
pass=0; fail=0
check() { if eval "$2"; then pass=$((pass+1)); echo "ok   $1"; else fail=$((fail+1)); echo "FAIL $1"; fi; }

"$CLI" -m "$M" -p "a cat" --steps 2 --seed 5 -q -o "$TMP/a.png"
check "default guidance of SDXL is 5" 'grep -aq "CFG scale: 5," "$TMP/a.png"'
"$CLI" -m "$M" -p "a cat" --steps 2 --seed 5 -q --original-size 64x48 --crop 8x4 --target-size 32x32 -o "$TMP/b.png"
check "micro-conditioning changes the image" '[ -s "$TMP/b.png" ] && ! cmp -s "$TMP/a.png" "$TMP/b.png"'
"$CLI" -m "$M" -p "a cat" --steps 2 --seed 5 -q --original-size 16x16 --crop 0x0 --target-size 16x16 -o "$TMP/c.png"
check "explicit defaults give the default image" 'cmp -s "$TMP/a.png" "$TMP/c.png"'
"$CLI" -m "$M" -p x --crop abc -o "$TMP/d.png" 2>"$TMP/err"
check "bad --crop is a usage error" '[ $? = 2 ] && grep -q "crop expects TOPxLEFT" "$TMP/err" && [ ! -e "$TMP/d.png" ]'
"$CLI" -m "$M" -p "a cat" --steps 2 --seed 5 --cfg-scale 7 -q -o "$TMP/e.png"
check "--cfg-scale overrides the default" 'grep -aq "CFG scale: 7," "$TMP/e.png"'
echo "cli_sdxl: $pass passed, $fail failed"
[ "$fail" = 0 ]

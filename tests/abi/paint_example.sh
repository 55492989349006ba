#!/usr/bin/env bash
# The "paint with experts" example on the demo model (token routing): with
# strength 0 it is the unpainted image; forcing an expert on the left
# half changes the left half more than the right; a PGM mask and the same
# --rect give one image; bad arguments fail with a message, not a crash.
set -u
BUILD=${1:?build dir}
PAINT="$BUILD/moediffuse-paint"
MODEL="${MD_SOURCE_DIR:?}/models/demo"
export MOEDIFFUSE_LIB="$BUILD/libmoediffuse.so.1"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
. "$(dirname "$0")/../support/checks.sh"
PROMPT="a large red circle in the center on a blue background"

# The unpainted image: a rectangle outside the image biases nothing.
"$PAINT" "$MODEL" "$PROMPT" "$TMP/plain.ppm" --expert 1 --rect 1000,0,8,8 --steps 8 \
  2>"$TMP/err" && grep -q "painted on 0 rows in 0 MoE calls" "$TMP/err" &&
  ok "a mask outside the image paints nothing" || bad "outside: $(cat "$TMP/err")"
"$PAINT" "$MODEL" "$PROMPT" "$TMP/zero.ppm" --expert 1 --rect 0,0,32,64 --steps 8 --strength 0 \
  2>"$TMP/err" && cmp -s "$TMP/zero.ppm" "$TMP/plain.ppm" && ok "strength 0: the unpainted image" ||
  bad "strength 0: $(cat "$TMP/err")"
if "$PAINT" "$MODEL" "$PROMPT" "$TMP/left.ppm" --expert 1 --rect 0,0,32,64 --steps 8 \
     2>"$TMP/err"; then
  grep -q "painted on [1-9][0-9]* rows in 24 MoE calls" "$TMP/err" && ok "summary line" ||
    bad "summary: $(cat "$TMP/err")"
  # Mean absolute difference to the plain image, per half (64x64 RGB, 13-byte header).
  read -r left right < <(paste <(tail -c 12288 "$TMP/plain.ppm" | od -An -tu1 -v -w1) \
                               <(tail -c 12288 "$TMP/left.ppm" | od -An -tu1 -v -w1) |
    awk '{ d = $1 - $2; if (d < 0) d = -d; x = int((NR - 1) / 3) % 64;
           if (x < 32) l += d; else r += d }
         END { printf "%.1f %.1f\n", l / 6144, r / 6144 }')
  echo "mean |difference| to the plain image: left (painted) $left, right $right"
  awk -v l="$left" -v r="$right" 'BEGIN { exit !(l > 20 && l > 1.5 * r) }' &&
    ok "the painted half changed most" || bad "left $left, right $right"
else
  bad "paint failed: $(cat "$TMP/err")"
fi

# The same mask as a 4x2 PGM (left column white), stretched over the image.
printf 'P5\n# left half\n4 2\n255\n\377\377\0\0\377\377\0\0' > "$TMP/mask.pgm"
"$PAINT" "$MODEL" "$PROMPT" "$TMP/pgm.ppm" --expert 1 --mask "$TMP/mask.pgm" --steps 8 \
  2>"$TMP/err" && cmp -s "$TMP/pgm.ppm" "$TMP/left.ppm" && ok "PGM mask = --rect" ||
  bad "PGM mask: $(cat "$TMP/err")"

expect_fail() { # args...; message pattern last
  local pat=${!#}
  "$PAINT" "$MODEL" x "$TMP/no.ppm" "${@:1:$#-1}" 2>"$TMP/err"
  local rc=$?
  if [ $rc -ge 1 ] && [ $rc -le 2 ] && grep -q "$pat" "$TMP/err" && [ ! -e "$TMP/no.ppm" ]; then
    ok "rejected: $*"
  else bad "exit $rc for $*: $(cat "$TMP/err")"; fi
}
expect_fail --expert 4 --rect 0,0,8,8 "the model has 4 experts"
expect_fail --expert 1 --mask "$TMP/none.pgm" "cannot open"
printf 'P6\n1 1\n255\n\0\0\0' > "$TMP/colour.ppm"
expect_fail --expert 1 --mask "$TMP/colour.ppm" "not a binary PGM"
printf 'P5\n4 4\n255\n\0' > "$TMP/short.pgm"
expect_fail --expert 1 --mask "$TMP/short.pgm" "ends early"
expect_fail --expert 1 --rect 1,2,0,3 "bad --rect"
expect_fail --expert 1 --strength nan --rect 0,0,1,1 "finite --strength"
expect_fail --expert 1 "one of --mask, --rect"

echo "paint_example: $pass passed, $fail failed"
[ "$fail" = 0 ]

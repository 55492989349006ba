#!/usr/bin/env bash
# GIMP headless: script-fu calls the plug-in's procedures (txt2img into a
# new image, img2img, inpainting over a selection, txt2img into a layer)
# and saves PNGs. GIMP exits 0 even when a batch command fails, so the
# files themselves are checked: size, content, and for inpainting that
# nothing outside the selection changed.
set -u
BUILD=${1:?build dir}
PLUGIN="$BUILD/gimp-plug-ins/moediffuse/moediffuse"
if ! command -v gimp >/dev/null || [ ! -x "$PLUGIN" ]; then echo "gimp or the plug-in missing: skipped"; exit 77; fi
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
"$BUILD/make-random-model" --preset tiny "$TMP/model" >/dev/null || { echo "FAIL: make-random-model"; exit 1; }
# A private GIMP profile holding just this plug-in (kept in the build dir:
# GIMP's first start is the slow one).
export GIMP2_DIRECTORY="$BUILD/gimp-test-home"
mkdir -p "$GIMP2_DIRECTORY/plug-ins/moediffuse" "$GIMP2_DIRECTORY/gradients"
cp "$PLUGIN" "$GIMP2_DIRECTORY/plug-ins/moediffuse/moediffuse"
M="$TMP/model" O="$TMP"
cat >"$TMP/test.scm" <<SCM
(let* ((img (car (plug-in-moediffuse-txt2img RUN-NONINTERACTIVE "$M" "a red circle" "" 4 7.5 42 "ddim" 64 64)))
       (drw (car (gimp-image-get-active-drawable img))))
  (file-png-save-defaults RUN-NONINTERACTIVE img drw "$O/txt2img.png" "txt2img.png")
  (gimp-message (string-append "PARAMS " (caddr (car (gimp-item-get-parasite drw "moediffuse-parameters")))))
  (let* ((img2 (car (gimp-image-duplicate img)))
         (drw2 (car (gimp-image-get-active-drawable img2))))
    (plug-in-moediffuse-img2img RUN-NONINTERACTIVE img2 drw2 "$M" "a blue square" "" 8 7.5 1 "euler" 0.6)
    (file-png-save-defaults RUN-NONINTERACTIVE img2 (car (gimp-image-flatten img2)) "$O/img2img.png" "img2img.png"))
  (gimp-image-select-rectangle img CHANNEL-OP-REPLACE 0 0 32 32)
  (plug-in-moediffuse-img2img RUN-NONINTERACTIVE img drw "$M" "a blue square" "" 8 7.5 1 "euler" 0.8)
  (gimp-selection-none img)
  (file-png-save-defaults RUN-NONINTERACTIVE img (car (gimp-image-flatten img)) "$O/inpaint.png" "inpaint.png"))
(let* ((img (car (gimp-image-new 80 60 RGB)))
       (bg (car (gimp-layer-new img 80 60 RGB-IMAGE "bg" 100 LAYER-MODE-NORMAL))))
  (gimp-image-insert-layer img bg 0 0)
  (plug-in-moediffuse-txt2img-layer RUN-NONINTERACTIVE img bg "$M" "a tree" "" 4 7.5 3 "ddim" 0 0)
  (file-png-save-defaults RUN-NONINTERACTIVE img (car (gimp-image-flatten img)) "$O/layer.png" "layer.png"))
SCM
MOEDIFFUSE_LIB="$BUILD/libmoediffuse.so.1" timeout 300 gimp -i -d -f \
  -b "(load \"$TMP/test.scm\")" -b '(gimp-quit 0)' >"$TMP/log" 2>&1
echo "gimp exit $?"
fail=0
grep -q "PARAMS a red circle" "$TMP/log" && grep -q "Steps: 4, Sampler: ddim, CFG scale: 7.5, Seed: 42, Size: 64x64" "$TMP/log" ||
  { echo "FAIL: the parameters parasite is missing"; fail=1; }
"$BUILD/png-check" "$TMP/txt2img.png" 64 64 || fail=1
"$BUILD/png-check" "$TMP/img2img.png" 64 64 || fail=1
"$BUILD/png-check" "$TMP/inpaint.png" 64 64 || fail=1
"$BUILD/png-check" "$TMP/layer.png" 80 60 || fail=1
"$BUILD/png-check" --same-outside "$TMP/txt2img.png" "$TMP/inpaint.png" 0 0 32 32 || fail=1
if [ $fail != 0 ]; then grep -v "GEGL\|GeglBuffers\|tag cache" "$TMP/log" | tail -30; exit 1; fi
echo "gimp: ok"

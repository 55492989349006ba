#!/usr/bin/env bash
# Krita headless (kritarunner, offscreen Qt): the Python plug-in makes a
# txt2img layer and an inpainting layer in a 64x64 document; the exported
# PNGs must have the right size and content, and outside the selection the
# inpainted document must equal the original.
set -u
BUILD=${1:?build dir}
SRC=${MD_SOURCE_DIR:?}
if ! command -v kritarunner >/dev/null; then echo "kritarunner not installed: skipped"; exit 77; fi
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
mkdir -p "$TMP/py" "$TMP/out"
ln -s "$SRC/plugins/krita/moediffuse" "$TMP/py/moediffuse"
cp "$SRC/tests/abi/krita_moediffuse_test.py" "$TMP/py/"
"$BUILD/make-random-model" --preset tiny "$TMP/model" >/dev/null || { echo "FAIL: make-random-model"; exit 1; }
# Krita's resource database is built on first start (slow): keep it in the build dir.
HOME_DIR="$BUILD/krita-test-home"
mkdir -p "$HOME_DIR/data" "$HOME_DIR/config" "$HOME_DIR/runtime"
chmod 700 "$HOME_DIR/runtime"
XDG_DATA_HOME="$HOME_DIR/data" XDG_CONFIG_HOME="$HOME_DIR/config" XDG_RUNTIME_DIR="$HOME_DIR/runtime" \
  QT_QPA_PLATFORM=offscreen PYTHONPATH="$TMP/py" PYTHONDONTWRITEBYTECODE=1 MOEDIFFUSE_LIB="$BUILD/libmoediffuse.so.1" \
  timeout 300 kritarunner -s krita_moediffuse_test -f run "$TMP/model" "$TMP/out" >"$TMP/log" 2>&1
rc=$?
cat "$TMP/out/status.txt" 2>/dev/null
if [ $rc != 0 ] || ! grep -qx ok "$TMP/out/status.txt" 2>/dev/null; then
  echo "FAIL: kritarunner exit $rc"; grep -v "krita.lib.resources\|QStandardPaths" "$TMP/log" | tail -30; exit 1
fi
fail=0
grep -q "steps=\[1, 2, 3, 4\]" "$TMP/out/status.txt" || { echo "FAIL: progress steps"; fail=1; }
grep -q "Seed: 1, Size: 64x64" "$TMP/out/status.txt" || { echo "FAIL: parameters not kept"; fail=1; }
"$BUILD/png-check" "$TMP/out/txt2img.png" 64 64 || fail=1
"$BUILD/png-check" "$TMP/out/inpaint.png" 64 64 || fail=1
"$BUILD/png-check" --same-outside "$TMP/out/txt2img.png" "$TMP/out/inpaint.png" 0 0 32 32 || fail=1
[ $fail = 0 ] && echo "krita: ok"
exit $fail

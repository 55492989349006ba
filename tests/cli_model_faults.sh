#!/usr/bin/env bash
# End to end: model paths and configs that cannot work each get a message
# of their own and exit 3 (the model cannot be loaded): a loop of symbolic
# links (as the model path, and inside the folder), a folder this user
# cannot read (not checkable as root, who reads everything), and a U-Net
# sample_size whose native size is out of range (was accepted, then every
# default-size generation failed as a usage error, exit 2).
set -u
BUILD=${1:?build dir}
CLI="$BUILD/moe-diffuse"
CASE="${MD_GOLDEN_DIR:?}/tiny-sd-dense"
TMP=$(mktemp -d)
trap 'chmod -R u+rwx "$TMP"; rm -rf "$TMP"' EXIT
. "$(dirname "$0")/support/checks.sh"

AS=() # the user the CLI runs as: root reads every folder, so "nobody" then
expect() { # NAME MODEL EXIT PATTERN
  "${AS[@]}" "$CLI" -m "$2" -q -p "a cat" --steps 1 -o "$TMP/out/out.png" 2>"$TMP/err"; local rc=$?
  if [ "$rc" = "$3" ] && grep -qi -- "$4" "$TMP/err" && [ ! -e "$TMP/out/out.png" ]; then
    ok "$1: exit $rc, '$4'"
  else bad "$1: exit $rc (want $3): $(cat "$TMP/err")"; fi
}
copy() { cp -r "$CASE" "$TMP/$1" && chmod -R u+w "$TMP/$1"; }
# the output folder is writable by whoever runs the CLI: outputs are checked
# before the model is loaded, and these cases are about the model
mkdir "$TMP/out" && chmod 777 "$TMP/out"

ln -s loop-b "$TMP/loop-a"; ln -s loop-a "$TMP/loop-b"
expect "symlink loop as the model" "$TMP/loop-a" 3 "a loop of symbolic links"

copy inner
rm "$TMP/inner/unet/config.json"
ln -s config2.json "$TMP/inner/unet/config.json"; ln -s config.json "$TMP/inner/unet/config2.json"
expect "symlink loop inside the model" "$TMP/inner" 3 "unet/config.json: cannot open: Too many levels of symbolic links"

if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
  AS=(setpriv --reuid=65534 --regid=65534 --clear-groups)
  chmod 711 "$TMP" # nobody may pass through to the copies
fi
if [ "$(id -u)" = 0 ] && [ ${#AS[@]} = 0 ]; then
  ok "permission denied: not checkable as root without setpriv"
else
  copy locked; chmod 000 "$TMP/locked/unet"
  expect "unreadable unet folder" "$TMP/locked" 3 "unet/config.json: cannot open: permission denied"
  mkdir "$TMP/shut"; copy shut/model; chmod 000 "$TMP/shut"
  expect "unsearchable folder on the way" "$TMP/shut/model" 3 "permission denied (a folder on the way"
fi
AS=()

copy big
sed -i 's/"sample_size": *[0-9]*/"sample_size": 100000/' "$TMP/big/unet/config.json"
expect "sample_size out of range" "$TMP/big" 3 "sample_size 100000 gives a native size of 200000 pixels, out of range"

echo "cli model faults: $pass passed, $fail failed"
[ "$fail" = 0 ]

#!/usr/bin/env bash
# Routing health from the command line: --moe-stats per guidance half with
# a labelled heatmap, the -v routing line, the collapse warning on stderr
# (single image and batch), and batch --moe-stats files and manifest
# summaries. Models: the bundled demo (must not warn) and a random tiny
# MoE whose gates only ever pick experts 0 and 1 (must warn).
set -u
BUILD=${1:?build dir}
CLI="$BUILD/moe-diffuse"
IMG="$BUILD/md-test-image"
DEMO="${MD_SOURCE_DIR:?}/models/demo"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
. "$(dirname "$0")/support/checks.sh"
cd "$TMP" || exit 1
json() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1"; }

"$BUILD/make-random-model" --preset tiny --experts 4 --top-k 2 --routing token --f32 collapsed >/dev/null &&
  "$BUILD/md-test-collapse" collapsed/unet/diffusion_pytorch_model.safetensors 2 >/dev/null
check "collapsed test model made" test -s collapsed/unet/config.json

# 1. The demo model at its defaults: stats per half, a labelled heatmap, no warning.
"$CLI" -m "$DEMO" -p "a large yellow star in the center on a black background" --seed 3 -v \
  --moe-stats demo.json -o demo_img.png 2>demo.err
check "demo run ok" test -s demo_img.png
check "demo: no collapse warning" bash -c '! grep -q "routing collapse" demo.err'
check "-v: routing line" grep -Eq "demo_img.png: routing: experts used per layer [0-9]/4 [0-9]/4 [0-9]/4 .*least share" demo.err
check "JSON says there are halves" test "$(json demo.json 'd["cfg_halves"]')" = True
check "halves add up per layer" test "$(json demo.json 'all(sum(l["uncond_load"]) + sum(l["cond_load"]) == sum(l["total_load"]) > 0 for l in d["layers"])')" = True
check "records carry both halves" test "$(json demo.json 'all(len(r["load_uncond"]) == 4 == len(r["load_cond"]) for r in d["records"])')" = True
size=$("$IMG" size demo.png)
w=${size%x*}; h=${size#*x}
# bare grid: 20 steps x 8 px by 12 rows x 8 px + 2 gaps; labelled: wider and taller
check "labelled heatmap larger than the grid ($size)" test "$w" -gt 200 -a "$h" -gt 140

# 2. No guidance: one row group, no halves.
"$CLI" -m "$DEMO" -p "a red circle" --cfg-scale 1 --steps 4 -q --moe-stats nog.json -o nog_img.png
check "no guidance: no halves" test "$(json nog.json 'd["cfg_halves"] or any("cond_load" in l for l in d["layers"])')" = False

# 3. The collapsed model: a warning on stderr (and not with -q).
"$CLI" -m collapsed -p "a cat" -W 64 -H 64 -o col.png 2>col.err
check "collapsed: still an image" test -s col.png
check "collapsed: warning on stderr" grep -q "warning: routing collapse: in 3 of 3 MoE layers at most 2 of the 4 experts" col.err
"$CLI" -m collapsed -p "a cat" -W 64 -H 64 -q -o colq.png 2>colq.err
check "-q: no warning" test ! -s colq.err

# 4. Batch: stats beside each image, routing in the manifest, the warning.
printf 'a large red circle in the center on a blue background\n{"prompt": "a small cyan ring at the top on a white background", "output": "ring"}\n' > p.txt
"$CLI" batch -m "$DEMO" --prompts p.txt -d out --seed 7 --moe-stats 2>batch.err
check "batch ok" test $? = 0
check "batch stats files" test -s out/00000.moe.json -a -s out/00000.moe.png -a -s out/ring.moe.json -a -s out/ring.moe.png
check "batch heatmap labelled like the single one" test "$("$IMG" size out/00000.moe.png)" = "$size"
check "batch: demo does not warn" bash -c '! grep -q "routing collapse" batch.err'
check "manifest: routing summary per image" test "$(python3 -c '
import json
rs = [json.loads(l) for l in open("out/manifest.jsonl")]
print(all(r["routing"]["collapse"] is False and 0.5 <= r["routing"]["experts_used"] <= 1 and r["routing"]["layers"] == 3 and r["moe_stats"].endswith(".moe.json") for r in rs), len(rs))')" = "True 2"
"$CLI" batch -m collapsed --prompts p.txt -d cout -W 64 -H 64 2>cbatch.err
check "batch: collapse warned" grep -q "warning: routing collapse" cbatch.err
check "manifest: collapse recorded" test "$(python3 -c '
import json
print([json.loads(l)["routing"]["collapse"] for l in open("cout/manifest.jsonl")], [json.loads(l)["routing"]["experts_used"] for l in open("cout/manifest.jsonl")])')" = "[True, True] [0.5, 0.5]"
"$CLI" batch -m "${MD_GOLDEN_DIR:?}/tiny-sd-dense" --prompts p.txt -d dout --moe-stats -q 2>dense.err
rc=$?
check "batch --moe-stats on a dense model: usage error" test "$rc" = 2
check "... saying why" grep -q "no MoE layers" dense.err
echo "cli_moe_routing: $pass passed, $fail failed"
[ "$fail" = 0 ]

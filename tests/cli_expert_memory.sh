#!/usr/bin/env bash
# --max-expert-memory from the command line, batch files and `info`, on the
# bundled demo model: the image is the unbounded one at any bound; the
# `parameters` text records the bound as given and --from-png repeats it;
# sizes and percentages parse, bad ones and bounds below the least one are
# usage errors naming the flag; a batch line's max_expert_memory works and
# the manifest keeps it; info reports the expert memory, a bound's resident
# share and the loads per step, replayed from a routes file; on Vulkan the
# experts load onto the device and the image matches the host-routed one.
set -u
BUILD=${1:?build dir}
CLI="$BUILD/moe-diffuse"
IMG="$BUILD/md-test-image"
MODEL="${MD_SOURCE_DIR:?}/models/demo"
DENSE="${MD_GOLDEN_DIR:?}/tiny-sd-dense"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
cd "$TMP" || exit 1
pass=0; fail=0
check() { if eval "$2"; then pass=$((pass+1)); echo "ok   $1"; else fail=$((fail+1)); echo "FAIL $1"; fi; }
same_pixels() { cmp -s <("$IMG" pixels "$1") <("$IMG" pixels "$2"); }
P="a large red circle on the left on a blue background"
run() { local out=$1; shift; "$CLI" -m "$MODEL" -p "$P" --seed 5 --steps 6 -q -o "$out" "$@"; }

run base.png
least=$("$CLI" info "$MODEL" | sed -n 's/.*the least bound \([0-9.]*\) KiB.*/\1/p')
check "info names the least bound" '[ -n "$least" ]'

while IFS='|' read -r name flag text; do
  run "$name.png" --max-expert-memory "$flag" 2>err
  check "$flag: renders" '[ $? = 0 ] && [ -s $name.png ]'
  check "$flag: the unbounded image" 'same_pixels $name.png base.png'
  check "$flag: parameters hold $text" '"$IMG" text $name.png parameters | grep -qF "$text"'
  "$CLI" -m "$MODEL" --from-png "$name.png" -o "again-$name.png" -v 2>err
  check "$flag: --from-png repeats it" 'same_pixels again-$name.png base.png && grep -q "(bound [0-9.]* MiB)" err'
done <<'T'
half|50%|Max expert memory: 50%
kib|96K|Max expert memory: 96K
bytes|98304|Max expert memory: 96K
T

"$CLI" -m "$MODEL" -p "$P" --seed 5 --steps 6 -o v.png --max-expert-memory 25% -v 2>err
check "-v reports the bound held and experts evicted" \
  'grep -q "expert memory: peak [0-9.]* of [0-9.]* MiB resident (bound [0-9.]* MiB); [1-9][0-9]* loads, [0-9]* hits, [1-9][0-9]* evictions" err'

for bad in -1 abc 0% 150% 12Q 1.5; do
  run x.png --max-expert-memory "$bad" 2>err
  check "--max-expert-memory $bad: usage error naming the flag" '[ $? = 2 ] && grep -q -- "--max-expert-memory" err'
done
run x.png --max-expert-memory 1K 2>err
check "a bound below the least one: refused with the sizes" '[ $? = 2 ] && grep -q "below this model.s largest expert" err'
check "nothing written for bad values" '[ ! -e x.png ]'
"$CLI" -m "$DENSE" -p "$P" --seed 5 --steps 2 -q -o dense.png --max-expert-memory 1K
check "a dense model ignores the bound" '[ $? = 0 ] && [ -s dense.png ]'

# Batch: per line, and the run's default.
printf '{"prompt": "%s", "seed": 5, "steps": 6, "max_expert_memory": "50%%", "output": "pct"}\n{"prompt": "%s", "seed": 5, "steps": 6, "max_expert_memory": 98304, "output": "num"}\n{"prompt": "%s", "seed": 5, "steps": 6, "output": "dflt"}\n' "$P" "$P" "$P" > lines.jsonl
"$CLI" batch -m "$MODEL" --prompts lines.jsonl -d b -q --max-expert-memory 30% 2>err
check "batch with max_expert_memory: exit 0" '[ $? = 0 ]'
check "batch images = the unbounded one" 'same_pixels b/pct.png base.png && same_pixels b/num.png base.png && same_pixels b/dflt.png base.png'
check "the manifest keeps each line's bound" 'grep -q "\"max_expert_memory\":\"50%\"" b/manifest.jsonl && grep -q "\"max_expert_memory\":\"96K\"" b/manifest.jsonl && grep -q "\"max_expert_memory\":\"30%\"" b/manifest.jsonl'
printf '{"prompt": "x", "max_expert_memory": "lots", "output": "bad"}\n' > bad.jsonl
"$CLI" batch -m "$MODEL" --prompts bad.jsonl -d c -q 2>err
check "a bad batch value names the key" '[ $? != 0 ] && grep -q "max_expert_memory" err'

# info: the bound's share and the loads per step, replayed from a recording.
run rec.png --moe-stats st.json
"$CLI" info "$MODEL" --max-expert-memory 50% --moe-routes st.routes.json > info.txt
check "info: the bound's resident share" 'grep -q "^bound .*(50%): at most" info.txt'
check "info: loads per step replayed from the routes" 'grep -q "^expected loads   [0-9.]* experts per step" info.txt && grep -q "replayed from st.routes.json, 6 steps" info.txt'
"$CLI" info "$MODEL" --max-expert-memory 100% --moe-routes st.routes.json > full.txt
check "info: at 100% nothing loads after the first step" 'grep -q "^expected loads   0.0 experts per step" full.txt'
"$CLI" info "$MODEL" --max-expert-memory 50% > est.txt
check "info: an estimate without routes" 'grep -q "^expected loads   about" est.txt'
"$CLI" info "$DENSE" --max-expert-memory 1G >/dev/null 2>err
check "info: a dense model has nothing to bound" '[ $? = 2 ] && grep -q "no MoE layers" err'

# Vulkan: experts on the device under the bound; skipped without a device.
if "$CLI" devices 2>/dev/null | grep -q "^[0-9]"; then
  MD_VK_MOE=host run vk-host.png --backend vulkan
  run vk.png --backend vulkan --max-expert-memory 30%
  "$CLI" -m "$MODEL" -p "$P" --seed 5 --steps 6 -o vk2.png --backend vulkan --max-expert-memory 30% -v 2>err
  check "Vulkan: experts loaded on the device, prefetched" 'grep -q "on the device, [1-9][0-9]* prefetched" err'
  check "Vulkan bounded = Vulkan host-routed unbounded (same pixels)" 'same_pixels vk.png vk-host.png'
else
  echo "skip Vulkan: no Vulkan device"
fi
echo "cli_expert_memory: $pass passed, $fail failed"
[ "$fail" = 0 ]

#!/usr/bin/env bash
# The MoE controls of ABI 1.4 from the command line on the bundled demo
# model (4 experts, top-2, token routing): each flag changes the image, its
# `parameters` text records it, and --from-png reproduces the same pixels;
# --moe-stats writes a routes file that --moe-routes replays exactly,
# whatever other MoE flags say; bad values are usage errors naming the
# range; and one batch JSON Lines line with every key gives the command
# line's image.
set -u
BUILD=${1:?build dir}
CLI="$BUILD/moe-diffuse"
IMG="$BUILD/md-test-image"
MODEL="${MD_SOURCE_DIR:?}/models/demo"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
cd "$TMP" || exit 1
pass=0; fail=0
check() { if eval "$2"; then pass=$((pass+1)); echo "ok   $1"; else fail=$((fail+1)); echo "FAIL $1"; fi; }
same_pixels() { cmp -s <("$IMG" pixels "$1") <("$IMG" pixels "$2"); }
P="a large red circle on the left on a blue background"
run() { local out=$1; shift; "$CLI" -m "$MODEL" -p "$P" --seed 5 --steps 6 -q -o "$out" "$@"; }

run base.png
check "default render" '[ -s base.png ]'

# name | flags | what the parameters text must hold
while IFS='|' read -r name flags text; do
  eval "run $name.png $flags"
  check "$name: renders" '[ $? = 0 ] && [ -s $name.png ]'
  check "$name: changes the image" '! same_pixels $name.png base.png'
  check "$name: parameters hold $text" '"$IMG" text $name.png parameters | grep -qF "$text"'
  "$CLI" -m "$MODEL" --from-png $name.png -q -o again-$name.png
  check "$name: --from-png gives the same pixels" 'same_pixels again-$name.png $name.png'
done <<'T'
topk|--moe-top-k 1|MoE top-k: 1
routing|--moe-routing sequence|MoE routing: sequence
split|--moe-routing sequence-split|MoE routing: sequence-split
capacity|--moe-capacity 0.6|MoE capacity: 0.6
skip|--moe-skip 0.45|MoE skip: 0.45
schedule|--moe-schedule "0-0.5:experts=0,2;0.5-1:k=1/skip=0.2"|MoE schedule: "0-0.5:experts=0,2;0.5-1:k=1/skip=0.2"
T

# Route replay: record the capacity run, replay it with other MoE flags.
run rec.png --moe-capacity 0.6 --moe-skip 0.2 --moe-stats st.json
check "--moe-stats writes the routes file" 'grep -q "\"format\": \"moe-diffuse-routes\"" st.routes.json'
check "the statistics report the skipped work" 'grep -q "\"skipped_fraction\": 0\.[0-9]*[1-9]" st.json'
run replay.png --moe-routes st.routes.json --moe-top-k 1 --moe-routing sequence
check "--moe-routes replays the recorded image exactly" 'same_pixels replay.png rec.png'
check "parameters hold the routes file" '"$IMG" text replay.png parameters | grep -qF "MoE routes: st.routes.json"'
"$CLI" -m "$MODEL" --from-png replay.png -q -o again-replay.png
check "--from-png reloads the routes" 'same_pixels again-replay.png rec.png'
run bad.png --moe-routes st.routes.json --steps 7 2>err
check "routes of another step count: refused with the reason" '[ $? = 2 ] && grep -q "recorded for steps 1..6 of 6, but this request runs steps 1..7 of 7" err'
run bad.png --moe-routes missing.json 2>err
check "a missing routes file: I/O error" '[ $? = 4 ] && grep -q "missing.json: cannot open" err'
"$CLI" -m "$MODEL" -p "$P" --seed 5 --steps 6 -o v.png --moe-skip 0.45 -v 2>err
check "-v reports the skipped work" 'grep -q "MoE expert work skipped: [0-9.]*% ([0-9]* of [0-9]* expert-rows)" err'

# Bad values: usage errors that name the range.
run x.png --moe-top-k 5 2>err
check "--moe-top-k 5: names 1..4" '[ $? = 2 ] && grep -q "out of range 1..4" err'
run x.png --moe-skip 1 2>err
check "--moe-skip 1: names [0, 1)" '[ $? = 2 ] && grep -q "moe_skip must be in \[0, 1)" err'
run x.png --moe-capacity -1 2>err
check "--moe-capacity -1: refused" '[ $? = 2 ] && grep -q "moe_capacity must be" err'
run x.png --moe-routing sequence --moe-capacity 1 2>err
check "capacity with sequence routing: refused" '[ $? = 2 ] && grep -q "token routing only" err'
run x.png --moe-routing bogus 2>err
check "--moe-routing bogus: lists the choices" '[ $? = 2 ] && grep -q "sequence-split" err'
run x.png --moe-schedule "0-1:k=2,skip=0.1" 2>err
check "--moe-schedule: error at a byte" '[ $? = 2 ] && grep -q "at byte 7" err'
check "nothing written for bad values" '[ ! -e x.png ]'

# One batch line with every key = the command line.
printf '{"prompt": "%s", "seed": 5, "steps": 6, "moe_top_k": 1, "moe_routing": "token", "moe_capacity": 0.6, "moe_skip": 0.2, "moe_schedule": "0-0.5:experts=0,2;0.5-1:k=1", "output": "all"}\n{"prompt": "%s", "seed": 5, "steps": 6, "moe_routes": "st.routes.json", "output": "routes"}\n' "$P" "$P" > lines.jsonl
"$CLI" batch -m "$MODEL" --prompts lines.jsonl -d b -q 2>err
check "batch with the MoE keys: exit 0" '[ $? = 0 ]'
run all.png --moe-top-k 1 --moe-routing token --moe-capacity 0.6 --moe-skip 0.2 --moe-schedule "0-0.5:experts=0,2;0.5-1:k=1"
check "batch line = the flags (same pixels)" 'same_pixels b/all.png all.png'
check "batch moe_routes replays the recording" 'same_pixels b/routes.png rec.png'
check "the manifest records the keys" 'grep -q "\"moe_schedule\":\"0-0.5:experts=0,2;0.5-1:k=1\"" b/manifest.jsonl && grep -q "\"moe_routes\":\"st.routes.json\"" b/manifest.jsonl'
# Vulkan routes controlled calls on the host plan: the same experts, so the
# image agrees with the CPU's (within 2 levels). Skipped without a device.
if "$CLI" devices 2>/dev/null | grep -q "^[0-9]"; then
  flags="--moe-capacity 0.6 --moe-skip 0.3 --moe-schedule 0-0.5:experts=1,3"
  run cpu.png --steps 2 $flags
  run vk.png --steps 2 --backend vulkan $flags
  far=$(paste <("$IMG" pixels cpu.png | od -An -tu1 -v | tr -s ' ' '\n' | grep .) \
              <("$IMG" pixels vk.png | od -An -tu1 -v | tr -s ' ' '\n' | grep .) |
        awk '{d = $1 - $2; if (d < 0) d = -d; if (d > 2) n++} END {print n + 0}')
  check "Vulkan with capacity, skip and pinned experts = CPU (within 2 levels)" '[ -s vk.png ] && [ "$far" = 0 ]'
else
  echo "skip Vulkan agreement: no Vulkan device"
fi
echo "cli_moe_controls: $pass passed, $fail failed"
[ "$fail" = 0 ]

#!/usr/bin/env bash
# End to end: `moe-diffuse batch` on the tiny golden model (16x16, 2 steps):
# plain and JSON Lines prompts, per-line overrides, failing lines, resume,
# N local shards whose union equals an unsharded run, --shard auto/N from
# Slurm and Kubernetes indices, bad shard specs, and Ctrl-C.
set -u
BUILD=$(cd "${1:?build dir}" && pwd) || exit 1
CLI="$BUILD/moe-diffuse"
MODEL="$(cd "${MD_GOLDEN_DIR:?}/tiny-sd-dense" && pwd)" || exit 1
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
cd "$TMP" || exit 1
unset SLURM_ARRAY_TASK_ID SLURM_ARRAY_TASK_MIN SLURM_ARRAY_TASK_MAX JOB_COMPLETION_INDEX
. "$(dirname "$0")/support/checks.sh"
not() { ! "$@"; }

batch() { "$CLI" batch -m "$MODEL" --steps 2 "$@"; }
rec() { grep -E "\"index\":$2," "$1"; }                    # manifest record of entry N
has() { rec "$1" "$2" | grep -qF -- "$3"; }                  # record N contains text
n_ok() { grep -c '"status":"ok"' "$@" | awk -F: '{s+=$NF} END {print s+0}'; }
png_size() {
  local w h
  w=$(od -An -tu1 -j16 -N4 "$1" | awk '{print $1*16777216+$2*65536+$3*256+$4}')
  h=$(od -An -tu1 -j20 -N4 "$1" | awk '{print $1*16777216+$2*65536+$3*256+$4}')
  echo "${w}x${h}"
}
valid_lines() { # every line of a manifest is one whole JSON object
  ! grep -qvE '^\{.*\}$' "$1"
}
stamp() { stat -c '%n %i %y' "$@"; } # name, inode, mtime (ns): a rewrite changes them

# ---- 1. plain lines: comments and blanks skipped, names and seeds from the entry index
printf '# a comment\na red circle\n\n  a blue square  \n# another\na green triangle\na yellow star\n' > plain.txt
batch --prompts plain.txt -d plain --seed 100 -q 2>err; rc=$?
check "plain: exit 0" [ "$rc" = 0 ]
check "plain: 4 images named by entry index" [ "$(cd plain && echo *.png)" = "00000.png 00001.png 00002.png 00003.png" ]
check "plain: 16x16 PNGs" [ "$(png_size plain/00003.png)" = "16x16" ]
check "plain: 4 ok records" [ "$(n_ok plain/manifest.jsonl)" = 4 ]
check "plain: seed = base + index, line numbers, trimmed prompt" \
  has plain/manifest.jsonl 1 '"line":4,"output":"plain/00001.png","name":"00001.png","status":"ok","error":null,"prompt":"a blue square","negative_prompt":null,"sampler":null,"seed":101,'
check "plain: entry 3 is file line 7" has plain/manifest.jsonl 3 '"line":7,'
check "plain: different seeds give different images" not cmp -s plain/00000.png plain/00001.png
grep -q 'Seed: 103' plain/00003.png; check "plain: PNG parameters carry the seed" [ $? = 0 ]
"$CLI" -m "$MODEL" -p "a blue square" --steps 2 --seed 101 -o single.png -q 2>/dev/null
check "plain: same bytes as the single-image command" cmp -s single.png plain/00001.png

# ---- 2. JSON Lines with per-line overrides (and a plain line in between)
cat > jobs.jsonl <<'J'
{"prompt": "a red circle", "seed": 100}
{"prompt": "a fox", "negative_prompt": "blurry", "seed": 7, "steps": 3, "cfg_scale": 4.5, "sampler": "euler_a", "width": 24, "height": 32, "output": "fox", "clip_skip": 1}
a plain line among JSON
{"prompt": "ddim", "sampler": "ddim", "output": "ddim.png"}
J
batch --prompts jobs.jsonl -d jl --seed 500 -q 2>err; rc=$?
check "jsonl: exit 0" [ "$rc" = 0 ]
check "jsonl: override record" has jl/manifest.jsonl 1 \
  '"name":"fox.png","status":"ok","error":null,"prompt":"a fox","negative_prompt":"blurry","sampler":"euler_a","seed":7,"init_image":null,"mask":null,"width":24,"height":32,"steps":3,"guidance":4.5,"strength":0.75,"clip_skip":1,'
check "jsonl: override size in the PNG" [ "$(png_size jl/fox.png)" = "24x32" ]
check "jsonl: defaults elsewhere" has jl/manifest.jsonl 2 '"sampler":null,"seed":502,"init_image":null,"mask":null,"width":0,"height":0,"steps":2,"guidance":-1,'
check "jsonl: defaults resolved by the model" has jl/manifest.jsonl 2 '"resolved":{"prompt":"a plain line among JSON","negative_prompt":null,"sampler":"dpmpp_2m_karras","seed":502,"init_image":null,"mask":null,"width":16,"height":16,"steps":2,"guidance":7.5,'
check "jsonl: sampler override" has jl/manifest.jsonl 3 '"name":"ddim.png","status":"ok"'
check "jsonl: seed 100 line == plain entry 0 (same bytes)" cmp -s jl/00000.png plain/00000.png
check "jsonl: files" [ "$(cd jl && echo *.png)" = "00000.png 00002.png ddim.png fox.png" ]

# ---- 3. failing lines fail alone; exit code 1
cat > mixed.jsonl <<'J'
first good line
{"prompt": "bad size", "width": 100}
{"prompt": "broken json",
{"prompt": "unknown key", "strenght": 0.5}
{"prompt": "bad sampler", "sampler": "plms"}
{"prompt": "takes a used name", "output": "00000"}
last good line
J
batch --prompts mixed.jsonl -d mx --seed 1 2>err; rc=$?
check "failures: exit code 1" [ "$rc" = 1 ]
check "failures: good lines written" [ "$(cd mx && echo *.png)" = "00000.png 00006.png" ]
check "failures: 2 ok, 5 error records" [ "$(n_ok mx/manifest.jsonl)/$(grep -c '"status":"error"' mx/manifest.jsonl)" = "2/5" ]
check "failures: bad size names file:line" grep -q 'mixed.jsonl:2: "width" must be a multiple of 8, got 100' err
check "failures: malformed JSON names file:line" grep -q 'mixed.jsonl:3: malformed JSON' err
check "failures: unknown key" grep -q 'mixed.jsonl:4: unknown key "strenght"' err
check "failures: unknown sampler" grep -q "mixed.jsonl:5: unknown sampler 'plms'" err
check "failures: duplicate output name" grep -q "mixed.jsonl:6: output '00000.png' is already used by line 1" err
check "failures: error in the manifest" has mx/manifest.jsonl 2 '"status":"error","error":"mixed.jsonl:3: malformed JSON'
check "failures: manifest lines are whole JSON" valid_lines mx/manifest.jsonl
check "failures: no temporary files" [ -z "$(ls -A mx | grep -v -e '\.png$' -e '^manifest\.jsonl$')" ]

# ---- 4. resume
stamp plain/*.png > before
batch --prompts plain.txt -d plain --seed 100 2>err; rc=$?
check "resume: exit 0" [ "$rc" = 0 ]
check "resume: nothing rewritten (inode, mtime)" cmp -s before <(stamp plain/*.png)
check "resume: reports skips" [ "$(grep -c 'done earlier, skipped' err)" = 4 ]
check "resume: no new records" [ "$(wc -l < plain/manifest.jsonl)" = 4 ]
cp plain/00002.png keep2.png
rm plain/00001.png
head -c 100 keep2.png > plain/00002.png                       # a torn file
printf '{"index":3,"line":7,"status":"o' >> plain/manifest.jsonl  # a crash mid-append
batch --prompts plain.txt -d plain --seed 100 -q 2>err; rc=$?
check "resume: partial manifest line tolerated" [ "$rc" = 0 ]
check "resume: missing and torn outputs redone, identical bytes" cmp -s plain/00002.png keep2.png
check "resume: exactly 2 new ok records" [ "$(n_ok plain/manifest.jsonl)" = 6 ]
check "resume: the partial line stays on its own line" [ "$(grep -c '^{"index":3,"line":7,"status":"o$' plain/manifest.jsonl)" = 1 ]
batch --prompts plain.txt -d plain --seed 100 --steps 3 -q 2>err
check "resume: changed parameters are redone" [ "$(n_ok plain/manifest.jsonl)" = 10 ]
batch --prompts mixed.jsonl -d mx --seed 1 -q 2>err; rc=$?
check "resume: failing lines fail again, good ones skipped" [ "$rc/$(n_ok mx/manifest.jsonl)" = "1/2" ]

# random base seed: recorded, and reused by the resumed run
printf 'one\ntwo\n' > two.txt
batch --prompts two.txt -d rnd -q 2>/dev/null
base=$(grep -o '"base_seed":[0-9]*' rnd/manifest.jsonl | head -1 | cut -d: -f2)
check "random base: recorded" grep -q "\"seed\":$((base + 1)),.*\"base_seed_random\":true" rnd/manifest.jsonl
rm rnd/00001.png
batch --prompts two.txt -d rnd -q 2>/dev/null
check "random base: reused on resume" [ "$(grep -c "\"seed\":$((base + 1))," rnd/manifest.jsonl)" = 2 ]

# ---- 5. shards: 3 separate processes, union == unsharded run, no overlap
for i in $(seq 0 9); do echo "prompt number $i"; done > ten.txt
echo '{"prompt": "named", "output": "named"}' >> ten.txt
batch --prompts ten.txt -d whole --seed 42 -q 2>/dev/null
for k in 0 1 2; do batch --prompts ten.txt -d sh --seed 42 --shard $k/3 -q 2>/dev/null || bad "shard $k/3 run"; done
check "shards: one manifest per shard" [ "$(cd sh && echo manifest*)" = "manifest.shard-0-of-3.jsonl manifest.shard-1-of-3.jsonl manifest.shard-2-of-3.jsonl" ]
check "shards: union = whole (same names)" [ "$(cd sh && echo *.png)" = "$(cd whole && echo *.png)" ]
same=1; for f in whole/*.png; do cmp -s "$f" "sh/${f#whole/}" || same=0; done
check "shards: same bytes as the unsharded run" [ "$same" = 1 ]
idx() { grep -o '"index":[0-9]*' "$@" | cut -d: -f2 | sort -n | tr '\n' ' '; }
check "shards: each index exactly once" [ "$(idx -h sh/manifest.shard-*.jsonl)" = "0 1 2 3 4 5 6 7 8 9 10 " ]
check "shards: shard 1 has i % 3 == 1" [ "$(idx sh/manifest.shard-1-of-3.jsonl)" = "1 4 7 10 " ]
check "shards: record names its shard" has sh/manifest.shard-2-of-3.jsonl 5 '"shard":"2/3"'

# ---- 6. --shard auto/3: Slurm (1-based array) and Kubernetes Indexed Job pick the same shards
for id in 1 2 3; do
  env SLURM_ARRAY_TASK_ID=$id SLURM_ARRAY_TASK_MIN=1 SLURM_ARRAY_TASK_MAX=3 \
    "$CLI" batch -m "$MODEL" --steps 2 --prompts ten.txt -d slurm --seed 42 --shard auto/3 -q 2>/dev/null || bad "slurm task $id"
  env SLURM_ARRAY_TASK_ID=$((id - 1)) SLURM_ARRAY_TASK_MIN=0 \
    "$CLI" batch -m "$MODEL" --steps 2 --prompts ten.txt -d slurm0 --seed 42 --shard auto/3 -q 2>/dev/null || bad "0-based slurm task $id"
  env JOB_COMPLETION_INDEX=$((id - 1)) \
    "$CLI" batch -m "$MODEL" --steps 2 --prompts ten.txt -d k8s --seed 42 --shard auto/3 -q 2>/dev/null || bad "k8s index $((id - 1))"
done
for k in 0 1 2; do
  m=manifest.shard-$k-of-3.jsonl
  check "auto: shard $k same entries (explicit, Slurm 1-based, Slurm 0-based, k8s)" \
    [ "$(idx sh/$m)" = "$(idx slurm/$m)" -a "$(idx sh/$m)" = "$(idx slurm0/$m)" -a "$(idx sh/$m)" = "$(idx k8s/$m)" ]
done
same=1; for f in whole/*.png; do cmp -s "$f" "slurm/${f#whole/}" && cmp -s "$f" "k8s/${f#whole/}" || same=0; done
check "auto: same bytes as the unsharded run" [ "$same" = 1 ]

# ---- 7. bad shard specs: usage error (2), a clear message, nothing created
expect_shard() {
  local spec=$1 pattern=$2; shift 2
  env "$@" "$CLI" batch -m "$MODEL" --prompts ten.txt -d badshard --shard "$spec" 2>err >/dev/null; local rc=$?
  if [ "$rc" = 2 ] && grep -qE -- "$pattern" err && [ ! -e badshard ]; then ok "bad shard '$spec' $*"
  else bad "bad shard '$spec' $*: exit $rc: $(cat err)"; fi
}
expect_shard 3/3 "K must be an integer in 0..2"
expect_shard -1/3 "K must be an integer in 0..2"
expect_shard 1/0 "N must be an integer"
expect_shard a/3 "K must be"
expect_shard 1 "expects K/N or auto/N"
expect_shard 1/3x "N must be an integer"
expect_shard auto/3 "needs SLURM_ARRAY_TASK_ID .* or JOB_COMPLETION_INDEX"
expect_shard auto/3 "SLURM_ARRAY_TASK_ID=4 - SLURM_ARRAY_TASK_MIN=1 gives shard 3, outside 0..2" SLURM_ARRAY_TASK_ID=4 SLURM_ARRAY_TASK_MIN=1
expect_shard auto/4 "spans tasks 2..2, not 4 tasks" SLURM_ARRAY_TASK_ID=2 SLURM_ARRAY_TASK_MIN=2 SLURM_ARRAY_TASK_MAX=2
expect_shard auto/3 "JOB_COMPLETION_INDEX=3 gives shard 3" JOB_COMPLETION_INDEX=3
expect_shard auto/3 "JOB_COMPLETION_INDEX='x' is not an integer" JOB_COMPLETION_INDEX=x

# ---- 8. other errors
"$CLI" batch -m "$MODEL" -d e1 2>err; rc=$?
check "usage: --prompts required (2)" [ "$rc" = 2 ] && grep -q -- "--prompts FILE is required" err
"$CLI" batch -m "$MODEL" --prompts nonexistent.txt -d e2 2>err; rc=$?
check "I/O: missing prompts file (4)" [ "$rc" = 4 ] && grep -q "nonexistent.txt: cannot open" err
"$CLI" batch -m "$TMP/no-model" --prompts two.txt -d e3 2>err; rc=$?
check "model: missing model (3)" [ "$rc" = 3 ] && grep -q "no-model" err

# ---- 9. Ctrl-C: stops after the current image, no partial file, manifest consistent;
# a second process on the same manifest is refused; the rerun completes the set
for i in $(seq 0 29); do echo "{\"prompt\": \"p$i\", \"width\": 32, \"height\": 32}"; done > many.jsonl
"$CLI" batch -m "$MODEL" --steps 4 --prompts many.jsonl -d cc --seed 3 -q 2>cc.err &
pid=$!
for _ in $(seq 1 600); do [ "$({ wc -l < cc/manifest.jsonl; } 2>/dev/null || echo 0)" -ge 2 ] && break; sleep 0.05; done
"$CLI" batch -m "$MODEL" --steps 4 --prompts many.jsonl -d cc --seed 3 -q 2>err; rc=$?
check "lock: a second process on one manifest is refused (4)" [ "$rc" = 4 ] && grep -q "in use by another process" err
kill -INT $pid; wait $pid; rc=$?
done_n=$(n_ok cc/manifest.jsonl)
check "ctrl-c: exit 130" [ "$rc" = 130 ]
check "ctrl-c: stopped early ($done_n of 30)" [ "$done_n" -lt 30 ]
check "ctrl-c: no partial or temporary file" [ "$(ls cc | grep -vc -e '^[0-9]*\.png$' -e '^manifest\.jsonl$')" = 0 ]
check "ctrl-c: images == ok records" [ "$(ls cc/*.png | wc -l)" = "$done_n" ]
check "ctrl-c: manifest lines are whole JSON" valid_lines cc/manifest.jsonl
batch --steps 4 --prompts many.jsonl -d cc --seed 3 -q 2>/dev/null; rc=$?
check "ctrl-c: rerun completes (30 distinct, none redone)" \
  [ "$rc/$(ls cc/*.png | wc -l)/$(n_ok cc/manifest.jsonl)" = "0/30/30" ]

# Guidance not given: the model family's (SDXL 5), recorded as used.
printf 'a lighthouse\n' > xl.txt
"$CLI" batch -m "$MD_GOLDEN_DIR/tiny-sdxl" --steps 1 --seed 9 --prompts xl.txt -d xl -q 2>/dev/null
check "sdxl: the family's guidance 5 recorded" has xl/manifest.jsonl 0 '"resolved":{"prompt":"a lighthouse","negative_prompt":null,"sampler":"dpmpp_2m_karras","seed":9,"init_image":null,"mask":null,"width":16,"height":16,"steps":1,"guidance":5,'
check "sdxl: ... as the model's default" has xl/manifest.jsonl 0 '"steps":1,"guidance":-1,'
# A resume with a given guidance redoes entries made with the model's default.
"$CLI" batch -m "$MD_GOLDEN_DIR/tiny-sdxl" --steps 1 --seed 9 --prompts xl.txt -d xl -q 2>/dev/null
check "sdxl: same default guidance: skipped" [ "$(n_ok xl/manifest.jsonl)" = 1 ]
"$CLI" batch -m "$MD_GOLDEN_DIR/tiny-sdxl" --steps 1 --seed 9 --cfg-scale 5 --prompts xl.txt -d xl -q 2>/dev/null
check "sdxl: guidance given (even equal): redone" [ "$(n_ok xl/manifest.jsonl)" = 2 ]

echo "cli_batch: $pass passed, $fail failed"
[ "$fail" = 0 ]

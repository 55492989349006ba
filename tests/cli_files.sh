#!/usr/bin/env bash
# Files made safely and resume that trusts only what is on disk: planted
# symlinks, FIFOs and folders at output and manifest paths, unwritable
# folders and over-long names caught before generating, a file-size limit
# (SIGXFSZ) leaving no temporary file, orphan temporaries removed on resume,
# replaced or torn outputs of every format redone, out-of-range manifest
# numbers refused, and concurrent runs on one folder rendering each entry once.
set -u
BUILD=$(cd "${1:?build dir}" && pwd) || exit 1
CLI="$BUILD/moe-diffuse"
MODEL="$(cd "${MD_GOLDEN_DIR:?}/tiny-sd-dense" && pwd)" || exit 1
HERE=$(cd "$(dirname "$0")" && pwd)
TMP=$(mktemp -d)
trap 'pkill -P $$ 2>/dev/null; rm -rf "$TMP"' EXIT
cd "$TMP" || exit 1
unset SLURM_ARRAY_TASK_ID SLURM_ARRAY_TASK_MIN SLURM_ARRAY_TASK_MAX JOB_COMPLETION_INDEX
. "$HERE/support/checks.sh"
all() { local c; for c in "$@"; do sh -c "$c" || return 1; done; }

one() { timeout 60 "$CLI" -m "$MODEL" --steps 2 --seed 1 -p "a fox" -q "$@"; }
batch() { timeout -s KILL 120 "$CLI" batch -m "$MODEL" --steps 2 "$@"; }
n_ok() { cat "$@" | grep -c '"status":"ok"'; }

# ---- 1. an existing output that is not a regular file is refused, not replaced
echo secret > victim
ln -s victim link.png
one -o link.png 2>err; rc=$?
check "symlink output: refused (4)" all "[ $rc = 4 ]" "grep -q 'link.png: is a symbolic link, not a regular file' err"
check "symlink output: left alone" all "[ -L link.png ]" "[ \"\$(cat victim)\" = secret ]"
mkfifo fifo.png
one -o fifo.png 2>err; rc=$?
check "fifo output: refused, still a FIFO" all "[ $rc = 4 ]" "[ -p fifo.png ]" "grep -q 'fifo.png: is a FIFO, not a regular file' err"
mkdir dir.png
one -o dir.png 2>err; rc=$?
check "folder output: refused by name" all "[ $rc = 4 ]" "grep -q 'dir.png: is a folder, not a regular file' err"
one -o plain.png 2>err && one -o plain.png 2>err; rc=$?
check "regular output: replaced" all "[ $rc = 0 ]" "[ -f plain.png ]"
check "no temporaries left" [ -z "$(ls -A | grep -i tmp)" ]

# ---- 2. unwritable folder and over-long names: refused before generating
one -o no/such/dir/x.png 2>err; rc=$?
check "missing folder: refused before loading (4)" all "[ $rc = 4 ]" "grep -q 'no/such/dir/x.png: cannot write in no/such/dir: the folder does not exist' err"
timeout 60 "$CLI" -m "$TMP/no-such-model" --steps 2 -p "a fox" -q -o no/such/dir/x.png 2>err; rc=$?
check "missing folder: found before the model is opened" all "[ $rc = 4 ]" "grep -q 'the folder does not exist' err"
long=$(printf 'a%.0s' $(seq 1 300))
one -o "$long.png" 2>err; rc=$?
check "name over NAME_MAX: refused (2)" all "[ $rc = 2 ]" "grep -q 'the name is longer than 255 bytes' err"
if [ "$(id -u)" != 0 ]; then
    mkdir ro && chmod 555 ro
    one -o ro/x.png 2>err; rc=$?
    check "read-only folder: refused before generating (4)" all "[ $rc = 4 ]" "grep -q 'ro/x.png: cannot create a file in ro' err"
fi
printf 'a\n' > a.txt

# ---- 3. a file-size limit (SIGXFSZ / EFBIG) leaves no temporary file
mkdir fz
(ulimit -f 4; cd fz && timeout 60 "$CLI" -m "$MODEL" --steps 2 --seed 1 -p "a fox" -W 96 -H 96 -o big.bmp -q) 2>err; rc=$?
check "file-size limit: an error (4), not a signal ($rc)" all "[ $rc = 4 ]" "grep -q 'big.bmp: cannot write the file: the file size limit was reached' err"
check "file-size limit: nothing left behind" [ -z "$(ls -A fz)" ]

# ---- 4. planted manifest: symlink and FIFO refused, never followed or waited on
mkdir ms mf
ln -s ../victim ms/manifest.jsonl
batch --prompts a.txt -d ms --seed 1 -q 2>err; rc=$?
check "symlink manifest: refused (4)" all "[ $rc = 4 ]" "grep -q 'manifest.jsonl: is a symbolic link, not a regular file' err" "[ \"\$(cat victim)\" = secret ]"
mkfifo mf/manifest.jsonl
batch --prompts a.txt -d mf --seed 1 -q 2>err; rc=$?
check "fifo manifest: refused, not blocked (4)" all "[ $rc = 4 ]" "grep -q 'manifest.jsonl: not a regular file' err"
mkdir mo && mkfifo mo/manifest.other.jsonl && ln -s ../victim mo/manifest.link.jsonl
batch --prompts a.txt -d mo --seed 1 -q 2>err; rc=$?
check "planted manifests of other runs: passed over" all "[ $rc = 0 ]" "[ -f mo/00000.png ]" "[ \"\$(cat victim)\" = secret ]"

# ---- 5. orphan temporaries of a killed run are removed on resume; nothing else
mkdir or
touch or/.moe-diffuse-tmp-orphan1 or/.moe-diffuse-tmp-orphan2 or/keep.tmp or/.moe-diffuse-tmp-held
ln -s ../victim or/.moe-diffuse-tmp-link
flock or/.moe-diffuse-tmp-held sleep 300 </dev/null >/dev/null 2>&1 & holder=$!
sleep 0.3
batch --prompts a.txt -d or --seed 1 2>err; rc=$?
check "orphans: unheld temporaries removed" all "[ $rc = 0 ]" "[ ! -e or/.moe-diffuse-tmp-orphan1 ]" "[ ! -e or/.moe-diffuse-tmp-orphan2 ]" "grep -q 'removed 3 temporary file' err"
check "orphans: one a live writer holds is kept, other files too" all "[ -e or/.moe-diffuse-tmp-held ]" "[ -e or/keep.tmp ]"
check "orphans: a symlink is removed, its target kept" all "[ ! -L or/.moe-diffuse-tmp-link ]" "[ \"\$(cat victim)\" = secret ]"
kill $(pgrep -P $holder) $holder 2>/dev/null

# ---- 6. resume: a replaced, torn or missing file of any format is redone
printf '{"prompt": "p0", "output": "a.png"}\n{"prompt": "p1", "output": "b.png"}\n{"prompt": "p2", "output": "c.bmp"}\n{"prompt": "p3", "output": "d.jpg"}\n' > fmt.jsonl
batch --prompts fmt.jsonl -d rs --seed 5 -q 2>/dev/null
check "resume: size and hash recorded" grep -q '"status":"ok".*"size":[0-9]*,"fnv1a64":"[0-9a-f]\{16\}"' rs/manifest.jsonl
cp rs/b.png keep_b.png; cp rs/c.bmp keep_c.bmp; cp rs/d.jpg keep_d.jpg
cp rs/a.png rs/b.png                                  # a complete PNG, but not the one recorded
head -c 100 keep_c.bmp > rs/c.bmp                     # a torn BMP (no end marker to check)
f=$(stat -c %s keep_d.jpg); { head -c $((f - 12)) keep_d.jpg; printf '\377\331'; } > rs/d.jpg  # torn JPEG ending in EOI
batch --prompts fmt.jsonl -d rs --seed 5 -q 2>err; rc=$?
check "resume: replaced PNG redone" all "[ $rc = 0 ]" "cmp -s rs/b.png keep_b.png"
check "resume: torn BMP redone" cmp -s rs/c.bmp keep_c.bmp
check "resume: torn JPEG redone" cmp -s rs/d.jpg keep_d.jpg
check "resume: the intact one skipped" [ "$(n_ok rs/manifest.jsonl)" = 7 ]
batch --prompts fmt.jsonl -d rs --seed 5 -q 2>err
check "resume: all intact, all skipped" [ "$(n_ok rs/manifest.jsonl)" = 7 ]
rm rs/c.bmp
batch --prompts fmt.jsonl -d rs --seed 5 -q 2>err
check "resume: a missing file redone" all "cmp -s rs/c.bmp keep_c.bmp" "[ \"\$(grep -c '\"status\":\"ok\"' rs/manifest.jsonl)\" = 8 ]"
batch --prompts fmt.jsonl -d rs --seed 6 -q 2>err
check "resume: other settings (seed) re-render all" [ "$(n_ok rs/manifest.jsonl)" = 12 ]

# ---- 7. numbers read back from a manifest are range-checked
mkdir rg
printf '{"index":0,"status":"ok","base_seed":1e300,"base_seed_random":true}\n{"index":0,"status":"ok","base_seed":-5,"base_seed_random":true}\n{"index":0.5,"status":"ok"}\n{"index":1e300,"status":"ok"}\n{"index":0,"status":"ok","output":"rg/00000.png","size":1e300,"fnv1a64":"0000000000000000"}\n' > rg/manifest.jsonl
batch --prompts a.txt -d rg 2>err; rc=$?
check "range: out-of-range base seeds ignored" all "[ $rc = 0 ]" "grep -q '(random);' err"
check "range: such records counted as unreadable" grep -q '(4 unreadable manifest line' err
check "range: a record with an out-of-range size does not skip" [ -f rg/00000.png ]

# ---- 8. claims: concurrent runs on one folder render each entry once
for i in $(seq 0 11); do echo "prompt $i"; done > twelve.txt
batch --prompts twelve.txt -d cc --manifest cc/manifest.a.jsonl --seed 2 -q 2>a.err & pa=$!
batch --prompts twelve.txt -d cc --manifest cc/manifest.b.jsonl --seed 2 -q 2>b.err & pb=$!
wait $pa; ra=$?; wait $pb; rb=$?
total=$(n_ok cc/manifest.a.jsonl cc/manifest.b.jsonl)
check "claims: both runs succeed" [ "$ra/$rb" = 0/0 ]
check "claims: 12 entries rendered exactly once in all ($total)" [ "$total" = 12 ]
check "claims: each index once" [ "$(cat cc/manifest.*.jsonl | grep '"status":"ok"' | grep -o '"index":[0-9]*' | sort -u | wc -l)" = 12 ]
check "claims: none left behind" [ -z "$(ls -A cc | grep claim)" ]
batch --prompts twelve.txt -d cs --seed 2 -q 2>a.err & pa=$!
batch --prompts twelve.txt -d cs --shard 1/2 --seed 2 -q 2>b.err & pb=$!
wait $pa; wait $pb
check "claims: sharded + unsharded, each entry once" [ "$(n_ok cs/manifest*.jsonl)" = 12 ]
# a claim a live run holds is respected; one whose run died is taken over
mkdir cl
flock cl/.00000.png.claim sleep 300 </dev/null >/dev/null 2>&1 & live=$!
echo "pid 1 on elsewhere" > cl/.00001.png.claim
sleep 0.3
printf 'a\nb\n' > two.txt
batch --prompts two.txt -d cl --seed 1 2>err; rc=$?
check "claims: a live claim is left to its owner" all "[ $rc = 0 ]" "[ ! -e cl/00000.png ]" "[ -e cl/.00000.png.claim ]" "grep -q '00000.png claimed by' err"
check "claims: a dead claim is taken over" all "[ -e cl/00001.png ]" "[ ! -e cl/.00001.png.claim ]"
kill $(pgrep -P $live) $live 2>/dev/null; wait $live 2>/dev/null  # flock(1) and its sleep, which holds the lock
batch --prompts two.txt -d cl --seed 1 -q 2>err; rc=$?
check "claims: released when its run ends, then rendered" all "[ $rc = 0 ]" "[ -e cl/00000.png ]"

echo "cli_files: $pass passed, $fail failed"
[ "$fail" = 0 ]

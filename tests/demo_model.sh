#!/usr/bin/env bash
# The bundled demo model (models/demo): the token ids the training tools use
# are the engine's, the CLI uses the model when no --model is given, and the
# prompt-fidelity evaluator (tools/eval) on a subset of held-out prompts
# reaches the thresholds recorded with the exported model
# (models/demo/eval_thresholds.json: its measured figures less a margin).
set -u
BUILD=$(cd "${1:?build dir}" && pwd)
SRC=${MD_SOURCE_DIR:?}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
. "$(dirname "$0")/support/checks.sh"

# 1. md-tokenize: BOS, the words, EOS, EOS padding to 77.
ids=$(echo "a red circle" | "$BUILD/md-tokenize")
want="[49406,320,736,7117,49407"
if [[ "$ids" == "$want"* ]] && [ "$(echo "$ids" | tr ',' '\n' | wc -l)" = 77 ]; then
  ok "md-tokenize ids"
else
  bad "md-tokenize ids: $ids"
fi

# 2. No --model: the compiled-in default is the demo model, 64x64 output.
if (cd "$TMP" && "$BUILD/moe-diffuse" -p "a red circle on a blue background" --steps 4 --seed 1 \
      -o default.png >/dev/null 2>"$TMP/err"); then
  sz=$(od -An -tu1 -j16 -N8 "$TMP/default.png" | awk '{print ($3*256+$4) "x" ($7*256+$8)}')
  [ "$sz" = "64x64" ] && ok "default model, 64x64" || bad "default model: size $sz"
else
  bad "default model: $(head -c 300 "$TMP/err")"
fi

# 3. The model's own guidance ("_default_guidance_scale" in model_index.json)
# is the default; an out-of-range one is refused, naming the file.
want_cfg=$(python3 -c "import json,sys; print('%g' % json.load(open(sys.argv[1]))['_default_guidance_scale'])" \
  "$SRC/models/demo/model_index.json")
if grep -a -q "CFG scale: $want_cfg," "$TMP/default.png"; then
  ok "default guidance from model_index.json ($want_cfg)"
else
  bad "default guidance: $(grep -a -o 'CFG scale: [0-9.]*' "$TMP/default.png")"
fi
cp -r "$SRC/models/demo" "$TMP/badcfg"
sed -i 's/"_default_guidance_scale": [0-9.]*/"_default_guidance_scale": 99/' "$TMP/badcfg/model_index.json"
"$BUILD/moe-diffuse" -m "$TMP/badcfg" -p "a red circle" --steps 1 -o "$TMP/bad.png" >/dev/null 2>"$TMP/err"
rc=$?
if [ $rc = 3 ] && grep -q "badcfg/model_index.json.*_default_guidance_scale" "$TMP/err" && [ ! -e "$TMP/bad.png" ]; then
  ok "out-of-range default guidance refused (exit 3)"
else
  bad "out-of-range default guidance: exit $rc, $(head -c 300 "$TMP/err")"
fi

# 4. Prompt fidelity on 12 held-out prompts at 20 steps.
if ! command -v python3 >/dev/null; then
  bad "python3 missing: the evaluator cannot run"
else
  read -r min_overall min_colour < <(python3 -c "import json,sys; t=json.load(open(sys.argv[1])); print(t['min_overall'], t['min_colour'])" "$SRC/models/demo/eval_thresholds.json")
  if python3 "$SRC/tools/eval/evaluate.py" --cli "$BUILD/moe-diffuse" --count 12 --steps 20 \
       --out "$TMP/eval" --min-overall "$min_overall" --min-colour "$min_colour"; then
    ok "evaluator (overall >= $min_overall, colour >= $min_colour)"
  else
    bad "evaluator below thresholds (overall $min_overall, colour $min_colour)"
  fi
fi

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]

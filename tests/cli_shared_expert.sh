#!/usr/bin/env bash
# End to end: shared experts in both config forms (SegMoE's segmoe_config,
# sequence routing; our moe_config, token routing), made by
# make-random-model with MoE feed-forwards and q/k/v. The shared expert
# changes the image; zeroing its weights gives exactly the image of the
# same model with shared_expert false (so it is added, nothing else). The
# flag is read (true without the weights: the missing weight is named),
# and an unknown MoE key or a bad value ends the run with exit 3 and a
# message naming the file and the key.
set -u
BUILD=${1:?build dir}
CLI="$BUILD/moe-diffuse"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
. "$(dirname "$0")/support/checks.sh"

gen() { # MODEL OUT: 2 steps, fixed seed; the pixels' checksum on stdout
  "$CLI" -m "$1" -p "a red circle" --steps 2 --seed 3 -q -o "$2" || return 1
  "$BUILD/md-test-image" pixels "$2" | md5sum | cut -d' ' -f1
}
set_flag() { # MODEL true|false
  sed -i -E "s/\"shared_expert\":[[:space:]]*(true|false)/\"shared_expert\": $2/" "$1/unet/config.json"
}
expect_fault() { # NAME MODEL PATTERN: exit 3, PATTERN on stderr, no image
  "$CLI" -m "$2" -p x --steps 1 -q -o "$TMP/fault.png" 2>"$TMP/err"; local rc=$?
  if [ "$rc" = 3 ] && grep -qF -- "$3" "$TMP/err" && [ ! -e "$TMP/fault.png" ]; then
    ok "$1: exit 3, '$3'"
  else bad "$1: exit $rc (want 3): $(cat "$TMP/err")"; fi
}

for form in segmoe_config moe_config; do
  routing=sequence; [ "$form" = moe_config ] && routing=token
  m="$TMP/$form"
  "$BUILD/make-random-model" --preset tiny --experts 3 --top-k 2 --moe-layers all \
    --routing "$routing" --shared-expert "$m" >/dev/null
  check "$form: made with a shared expert" grep -q "\"$form\"" "$m/unet/config.json"
  check "$form: config says shared_expert true" grep -Eq '"shared_expert":[[:space:]]*true' "$m/unet/config.json"

  with=$(gen "$m" "$TMP/$form-with.png")
  cp -r "$m" "$m-zero"
  n=$("$BUILD/md-test-zero" "$m-zero/unet/diffusion_pytorch_model.safetensors" .shared_expert.)
  # tiny: 3 MoE blocks, each an ff (4 tensors) and six q/k/v (1 each)
  check "$form: 30 shared-expert tensors zeroed (got $n)" [ "$n" = 30 ]
  zero=$(gen "$m-zero" "$TMP/$form-zero.png")
  cp -r "$m-zero" "$m-off"
  set_flag "$m-off" false
  off=$(gen "$m-off" "$TMP/$form-off.png")
  check "$form: all three images made" [ -n "$with" -a -n "$zero" -a -n "$off" ]
  check "$form: the shared expert changes the image" [ "$with" != "$zero" ]
  check "$form: zeroed shared expert = shared_expert false" [ "$zero" = "$off" ]

  # The flag is honoured: without the weights, the first missing one is named.
  "$BUILD/make-random-model" --preset tiny --experts 3 --top-k 2 --moe-layers all \
    --routing "$routing" "$m-none" >/dev/null
  sed -i -E 's/"num_experts":/"shared_expert": true, "num_experts":/' "$m-none/unet/config.json"
  expect_fault "$form: shared_expert true without its weights" "$m-none" \
    "weight 'down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.shared_expert.weight' is missing"

  cp -r "$m" "$m-foo"
  sed -i -E 's/"num_experts":/"foo": 1, "num_experts":/' "$m-foo/unet/config.json"
  expect_fault "$form: unknown key" "$m-foo" "$m-foo/unet/config.json: $form: unknown key \"foo\""
  cp -r "$m" "$m-bad"
  sed -i -E 's/"shared_expert":[[:space:]]*true/"shared_expert": 2/' "$m-bad/unet/config.json"
  expect_fault "$form: shared_expert not a bool" "$m-bad" "\"shared_expert\" must be true or false"
done

echo "cli_shared_expert: $pass passed, $fail failed"
[ "$fail" = 0 ]

#!/usr/bin/env bash
# A whole generation with a LoRA, each way it can be applied, against the
# same generation without one: wall time and peak RSS per process
# (bench-lora --generate; docs/lora.md, "Which way is faster").
#   bench/lora_generation.sh BUILD MODEL [STEPS] [SIZE] [RUNS]
# The ways alternate within each run, so a run's figures share the
# machine's load; compare within a run.
set -eu
BUILD=${1:?build dir}; MODEL=${2:?model}; STEPS=${3:-4}; SIZE=${4:-512}; RUNS=${5:-2}
echo "# $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, commit $(git -C "$(dirname "$0")" rev-parse --short HEAD 2>/dev/null || echo unknown)"
for run in $(seq 1 "$RUNS"); do
  for way in none fused side; do
    printf 'run %s: ' "$run"
    "$BUILD/bench-lora" "$MODEL" --size "$SIZE" --rank 32 --generate "$STEPS" --apply "$way" | grep '^generate'
  done
done

#!/usr/bin/env bash
# The checks that need a real GPU, prepared to run in one go on a lent
# device machine (one command, a few minutes): builds, then prints figures
# for bench/RESULTS.md. Usage, from the repository root:
#   tools/gpu-check.sh [BUILD_DIR] [MODELS_DIR]
# Each part prints its own Markdown table; a part that fails says so and the
# next one still runs.
set -uo pipefail
BUILD=${1:-build-gpu}
MODELS=${2:-/tmp/md-models}
echo "== $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
if [ ! -x "$BUILD/moe-diffuse" ]; then
    cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null && cmake --build "$BUILD" -j"$(nproc)" >/dev/null ||
        { echo "build failed"; exit 1; }
fi
"$BUILD/moe-diffuse" devices || true

# Expert memory (docs/moe.md "Expert memory"): an SD1.5-size SegMoE 4x2 on
# the GPU without a bound and at 100/50/25% of its experts, peak host RSS,
# s/step, the cache's loads and whether the image is unchanged.
echo "== expert memory on the GPU"
timeout 300 python3 bench/expert_memory.py --build "$BUILD" --models "$MODELS" --backend vulkan \
    --size 512 --steps 8 || echo "expert memory: failed or timed out"

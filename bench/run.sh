#!/usr/bin/env bash
# Benchmarks behind bench/RESULTS.md. Usage: bench/run.sh BUILD_DIR MODELS_DIR
#  - bench-step on a random SD1.5-size model at 512x512 (made once with
#    make-random-model --preset sd15 into MODELS_DIR/sd15)
#  - bench-conv: Winograd against im2col per SD1.5 layer shape, then over a
#    whole U-Net step and VAE decode of that model, both ways, twice
#  - a whole 20-step 256x256 CLI run of the golden tiny model, wall time and
#    peak memory from /usr/bin/time
set -euo pipefail
BUILD=${1:?build dir}
MODELS=${2:?models dir}
GOLDEN=${MD_GOLDEN_DIR:-$(dirname "$0")/../../shared/golden}
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; commit $(git rev-parse --short HEAD)"
[ -d "$MODELS/sd15" ] || "$BUILD/make-random-model" --preset sd15 "$MODELS/sd15"
"$BUILD/bench-step" "$MODELS/sd15" --size 512 --reps 2
"$BUILD/bench-conv" "$MODELS/sd15" --size 512 --reps 3 --runs 2
# Peak memory of a whole generation (one step) against the weights' size on disk.
echo "sd15 weights on disk: $(du -sm "$MODELS/sd15" | cut -f1) MiB"
/usr/bin/time -f "sd15 512x512 1 step, whole CLI run: %e s wall, %M KiB peak RSS" \
  "$BUILD/moe-diffuse" -m "$MODELS/sd15" -p "a photo of a cat" -W 512 -H 512 \
  --steps 1 --seed 1 -q -o /tmp/md-bench-sd15-512.png
/usr/bin/time -f "tiny-sd-dense 20 steps 256x256: %e s wall, %M KiB peak RSS" \
  "$BUILD/moe-diffuse" -m "$GOLDEN/tiny-sd-dense" -p "a photo of a cat" -W 256 -H 256 \
  --steps 20 --seed 1 -q -o /tmp/md-bench-tiny256.png
"$BUILD/bench-step" "$GOLDEN/tiny-sd-dense" --size 256 --reps 2

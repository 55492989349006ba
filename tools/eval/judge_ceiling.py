#!/usr/bin/env python3
"""How often the judge is right about images whose attributes are known: the
data set's own renderer draws each held-out evaluation prompt (random
jitter and rotation, as in training), the image goes through what the demo
model's VAE does to it (4x4 average, nearest 4x upsampling, 8-bit), and
optionally per-block Gaussian noise; judge.py then labels it. Prints the
fraction right per attribute and exits 1 when any is below --min.

This is the judge's ceiling: what evaluate.py would report for a perfect
U-Net. Needs numpy and PIL (the renderer's); judge.py itself does not.

    python3 tools/eval/judge_ceiling.py --reps 3 [--noise 8] [--min 0.98]
"""
import argparse
import os
import sys

sys.dont_write_bytecode = True  # runs from ctest: leave no __pycache__ in the source tree
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "dataset"))
import numpy as np  # noqa: E402

import judge  # noqa: E402
import shapes  # noqa: E402
import spec  # noqa: E402

ATTRS = ["background", "colour", "shape", "position", "size"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=68, help="held-out prompts (spec.eval_prompts)")
    ap.add_argument("--reps", type=int, default=1, help="renders per prompt, each with its own jitter")
    ap.add_argument("--noise", type=float, default=0.0, help="std of Gaussian noise per 4x4 block (0-255)")
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--min", type=float, default=0.0, help="exit 1 when an attribute is below this fraction")
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    right = {k: 0 for k in ATTRS}
    misses = []
    n = 0
    for _ in range(a.reps):
        for it in spec.eval_prompts(a.count):
            rotated = it["shape"] in ("square", "triangle", "star")
            obj = {"shape": it["shape"], "size": it["size"], "position": it["position"], "colour": it["colour"],
                   "jitter": [float(v) for v in rng.uniform(-spec.JITTER, spec.JITTER, 2)],
                   "angle": float(rng.uniform(-8.0, 8.0)) if rotated else 0.0}
            img = shapes.render({"background": it["background"], "objects": [obj], "split": None})
            side = spec.SIZE // 4
            blocks = img.astype(np.float64).reshape(side, 4, side, 4, 3).mean((1, 3))
            blocks += rng.normal(0.0, a.noise, blocks.shape) if a.noise > 0 else 0.0
            full = np.clip(np.round(blocks), 0, 255).astype(np.uint8).repeat(4, 0).repeat(4, 1)
            got = judge.judge([[tuple(int(v) for v in px) for px in row] for row in full])
            n += 1
            for k in ATTRS:
                if got[k] == it[k]:
                    right[k] += 1
                else:
                    misses.append(f"{k}: {it[k]} judged {got[k]} ({it['prompt']})")
    per = {k: v / n for k, v in right.items()}
    print(f"judge on {n} renders of held-out prompts (noise {a.noise}): " +
          " ".join(f"{k} {v * 100:.1f}%" for k, v in per.items()))
    for m in misses[:20]:
        print("  miss", m)
    if min(per.values()) < a.min:
        print(f"below {a.min}")
        sys.exit(1)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Prompt-fidelity evaluation of the demo model (standard library only;
PIL, when installed, labels the grid with the prompts).

For each of --count held-out prompts (tools/dataset/spec.py: single object,
solid background, (colour, shape, background) triples never seen in
training) the moe-diffuse CLI generates an image with seed --seed + i; the
image is judged by judge.py. Prints the fraction right per attribute
(background, colour, shape, position, size) and overall, writes
report.json, samples/NNN.png and grid.png under --out, and exits 1 when the
overall or colour fraction is below --min-overall / --min-colour.
--split seen prompts over triples training saw instead: a validation set
for choosing sampling settings without looking at the held-out one.

    python3 tools/eval/evaluate.py --cli build/moe-diffuse --count 68 --out /tmp/eval
"""
import argparse
import json
import os
import shlex
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # runs from ctest: leave no __pycache__ in the source tree
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "dataset"))
import judge  # noqa: E402
import spec  # noqa: E402

ATTRS = ["background", "colour", "shape", "position", "size"]


def grid(path, items, cols=8):
    """Tiles the samples; with PIL each tile gets its prompt and a mark per wrong attribute."""
    n = len(items)
    rows_n = (n + cols - 1) // cols
    try:
        from PIL import Image, ImageDraw
    except ImportError:
        Image = None
    if Image is None:
        tiles = [judge.read_png(it["file"])[2] for it in items]
        out = []
        for r in range(rows_n):
            for y in range(64):
                line = []
                for c in range(cols):
                    k = r * cols + c
                    line += tiles[k][y] if k < n else [(0, 0, 0)] * 64
                out.append(line)
        judge.write_png(path, 64 * cols, 64 * rows_n, out)
        return
    tw, th = 192, 250
    sheet = Image.new("RGB", (tw * cols, th * rows_n), (255, 255, 255))
    d = ImageDraw.Draw(sheet)
    for k, it in enumerate(items):
        x0, y0 = (k % cols) * tw, (k // cols) * th
        img = Image.open(it["file"]).convert("RGB").resize((128, 128), Image.NEAREST)
        sheet.paste(img, (x0 + 32, y0 + 4))
        words, line, lines = it["prompt"].split(), "", []
        for w in words:
            if len(line) + len(w) + 1 > 30:
                lines.append(line)
                line = w
            else:
                line = (line + " " + w).strip()
        lines.append(line)
        wrong = [a for a in ATTRS if not it["right"][a]]
        short = {"background": "bg", "colour": "col", "shape": "shape", "position": "pos", "size": "size"}
        lines.append("ok" if not wrong else "wrong: " + " ".join(short[w] for w in wrong))
        for j, t in enumerate(lines):
            d.text((x0 + 4, y0 + 136 + 12 * j), t, fill=(0, 0, 0) if j < len(lines) - 1 or not wrong else (200, 0, 0))
    sheet.save(path)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cli", default=os.path.join(HERE, "..", "..", "build", "moe-diffuse"))
    ap.add_argument("--model", help="model folder (default: the CLI's default, the bundled demo)")
    ap.add_argument("--count", type=int, default=len(spec.held_out_triples()))
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--sampler", default=None)
    ap.add_argument("--cfg-scale", type=float, default=None)
    ap.add_argument("--seed", type=int, default=1000)
    ap.add_argument("--extra", default="", help="more CLI flags for every image, e.g. '--moe-top-k 1'")
    ap.add_argument("--split", choices=["held-out", "seen"], default="held-out",
                    help="seen: prompts over triples training saw (for choosing settings)")
    ap.add_argument("--out", default="eval-out")
    ap.add_argument("--min-overall", type=float, default=0.0)
    ap.add_argument("--min-colour", type=float, default=0.0)
    a = ap.parse_args()
    os.makedirs(os.path.join(a.out, "samples"), exist_ok=True)
    items = []
    t0 = time.time()
    for i, p in enumerate(spec.eval_prompts(a.count, split=a.split)):
        f = os.path.join(a.out, "samples", f"{i:03d}.png")
        cmd = [a.cli, "-p", p["prompt"], "--steps", str(a.steps), "--seed", str(a.seed + i), "-o", f]
        if a.model:
            cmd += ["-m", a.model]
        if a.sampler:
            cmd += ["--sampler", a.sampler]
        if a.cfg_scale is not None:
            cmd += ["--cfg-scale", str(a.cfg_scale)]
        cmd += shlex.split(a.extra)
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"evaluate: {' '.join(cmd)} failed ({r.returncode}): {r.stderr.strip()}")
        w, h, rows = judge.read_png(f)
        if (w, h) != (64, 64):
            sys.exit(f"evaluate: {f} is {w}x{h}, expected 64x64")
        got = judge.judge(rows)
        right = {k: got[k] == p[k] for k in ATTRS}
        items.append({"prompt": p["prompt"], "file": f, "expected": {k: p[k] for k in ATTRS},
                      "judged": got, "right": right})
    n = len(items)
    per = {k: sum(it["right"][k] for it in items) / n for k in ATTRS}
    overall = sum(per.values()) / len(ATTRS)
    report = {"count": n, "steps": a.steps, "seed": a.seed, "per_attribute": per, "overall": overall,
              "seconds": round(time.time() - t0, 1), "items": items}
    with open(os.path.join(a.out, "report.json"), "w") as f:
        json.dump(report, f, indent=1)
    grid(os.path.join(a.out, "grid.png"), items)
    print(f"{n} {a.split} prompts, {a.steps} steps, {report['seconds']}s")
    for k in ATTRS:
        print(f"  {k:<10} {per[k] * 100:5.1f}%")
    print(f"  {'overall':<10} {overall * 100:5.1f}%")
    if overall < a.min_overall or per["colour"] < a.min_colour:
        print(f"below the thresholds (overall {a.min_overall}, colour {a.min_colour})")
        sys.exit(1)


if __name__ == "__main__":
    main()

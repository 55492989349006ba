#!/usr/bin/env python3
"""What each MoE control does to speed and to the image (docs/moe.md,
bench/RESULTS.md). Standard library only.

  bench/moe_controls.py --build build --models /tmp/md-models [--count 68]

1. The bundled demo model (token routing, 4 experts, top-2): prompt
   fidelity by tools/eval/evaluate.py (held-out prompts) for each setting.
2. An SD1.5-size SegMoE 4x2 with random weights (make-random-model --preset
   segmoe-sd15-4x2, made once in MODELS): seconds per denoising step (from
   the CLI's --json step events, so text encoding and the VAE are left
   out), and PSNR / SSIM of the image against the default settings. Every
   setting is run in two passes; both timings are printed.
Each row also gives the expert work actually run: expert slots (one expert
applied to one row) recorded by --moe-stats, over rows x the model's top-k
(one representative image per setting on the demo model).
Prints a Markdown table per model.
"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tools", "eval"))
sys.dont_write_bytecode = True
import judge  # noqa: E402

SETTINGS = [
    ("default", []),
    ("k=1", ["--moe-top-k", "1"]),
    ("k=2", ["--moe-top-k", "2"]),
    ("k=3", ["--moe-top-k", "3"]),
    ("k=4", ["--moe-top-k", "4"]),
    ("skip 0.1", ["--moe-skip", "0.1"]),
    ("skip 0.2", ["--moe-skip", "0.2"]),
    ("skip 0.3", ["--moe-skip", "0.3"]),
    ("capacity 1.0", ["--moe-capacity", "1.0"]),
    ("capacity 1.25", ["--moe-capacity", "1.25"]),
    ("schedule 0-0.3:k=2;0.3-1:k=1", ["--moe-schedule", "0-0.3:k=2;0.3-1:k=1"]),
    ("schedule 0-0.5:experts=0,2;0.5-1:k=2", ["--moe-schedule", "0-0.5:experts=0,2;0.5-1:k=2"]),
]
# SegMoE routes by sequence: capacity needs token routing, measured with it
# (and token routing alone as that rows' reference).
SEGMOE_EXTRA = [("token routing", ["--moe-routing", "token"])]


def segmoe_flags(flags):
    return (["--moe-routing", "token"] + flags) if "--moe-capacity" in flags else flags


def expert_fraction(stats_path):
    with open(stats_path) as f:
        s = json.load(f)
    used = sum(sum(layer["total_load"]) for layer in s["layers"])
    k = {i: layer["top_k"] for i, layer in enumerate(s["layers"])}
    base = sum(r["rows"] * k[r["layer"]] for r in s["records"])
    return used, base


def run_cli(cli, args, out, stats=None, json_events=False):
    cmd = [cli] + args + ["-o", out] + (["--moe-stats", stats] if stats else [])
    if not json_events:
        cmd += ["-q"]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode:
            sys.exit(f"moe_controls: {' '.join(cmd)}: {r.stderr.strip()}")
        return None
    p = subprocess.Popen(cmd + ["--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stamps = []
    for line in p.stdout:
        ev = json.loads(line)
        if ev.get("event") == "step":
            stamps.append(time.monotonic())
    err = p.stderr.read()
    if p.wait():
        sys.exit(f"moe_controls: {' '.join(cmd)}: {err.strip()}")
    return (stamps[-1] - stamps[0]) / (len(stamps) - 1)


def luma(path):
    w, h, rows = judge.read_png(path)
    return w, h, [[0.299 * r + 0.587 * g + 0.114 * b for (r, g, b) in row] for row in rows]


def psnr_ssim(a, b):
    w, h, x = luma(a)
    _, _, y = luma(b)
    mse = sum((x[i][j] - y[i][j]) ** 2 for i in range(h) for j in range(w)) / (w * h)
    psnr = float("inf") if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)
    # SSIM on 8x8 windows (stride 4), luminance, the usual constants
    c1, c2, vals = (0.01 * 255) ** 2, (0.03 * 255) ** 2, []
    for i in range(0, h - 7, 4):
        for j in range(0, w - 7, 4):
            xs = [x[i + u][j + v] for u in range(8) for v in range(8)]
            ys = [y[i + u][j + v] for u in range(8) for v in range(8)]
            mx, my = sum(xs) / 64, sum(ys) / 64
            vx = sum((t - mx) ** 2 for t in xs) / 63
            vy = sum((t - my) ** 2 for t in ys) / 63
            cxy = sum((s - mx) * (t - my) for s, t in zip(xs, ys)) / 63
            vals.append(((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2)))
    return psnr, sum(vals) / len(vals)


def demo(a, tmp):
    print(f"\n### Demo model ({a.count} held-out prompts, 20 steps, evaluator overall / colour / shape)\n")
    print("| setting | overall | colour | shape | expert work run |")
    print("|---|---|---|---|---|")
    default_base = None
    for name, flags in SETTINGS:
        out = os.path.join(tmp, "demo-" + name.replace(" ", "_").replace("/", "_"))
        r = subprocess.run([sys.executable, os.path.join(HERE, "..", "tools", "eval", "evaluate.py"),
                            "--cli", a.cli, "--count", str(a.count), "--out", out,
                            "--extra", " ".join(f"'{f}'" for f in flags)],
                           capture_output=True, text=True)
        if r.returncode:
            sys.exit(f"moe_controls: evaluate {name}: {r.stdout}{r.stderr}")
        with open(os.path.join(out, "report.json")) as f:
            rep = json.load(f)
        stats = os.path.join(tmp, "demo-stats.json")
        run_cli(a.cli, ["-p", "a red circle in the center on a white background", "--seed", "1000"]
                + flags, os.path.join(tmp, "demo.png"), stats)
        used, base = expert_fraction(stats)
        default_base = default_base or base  # rows x the model's top-k
        per = rep["per_attribute"]
        print(f"| {name} | {rep['overall'] * 100:.1f}% | {per['colour'] * 100:.1f}% | "
              f"{per['shape'] * 100:.1f}% | {used / default_base:.3f} |", flush=True)


def segmoe(a, tmp):
    model = os.path.join(a.models, "segmoe-sd15-4x2")
    if not os.path.isdir(model):
        os.makedirs(a.models, exist_ok=True)
        subprocess.run([a.make_model, "--preset", "segmoe-sd15-4x2", model], check=True,
                       stdout=subprocess.DEVNULL)
    base = ["-m", model, "-p", "a photo of a cat in a garden", "--seed", "1", "-W", str(a.size),
            "-H", str(a.size), "--steps", str(a.steps)]
    settings = SETTINGS[:1] + SEGMOE_EXTRA + SETTINGS[1:]
    timing, fraction = {}, {}
    for pass_ in (1, 2):
        for idx, (name, flags) in enumerate(settings):
            png = os.path.join(tmp, f"seg-{idx}-{pass_}.png")
            stats = os.path.join(tmp, "seg-stats.json") if pass_ == 1 else None
            t = run_cli(a.cli, base + segmoe_flags(flags), png, stats, json_events=True)
            timing.setdefault(name, []).append(t)
            if stats:
                fraction[name] = expert_fraction(stats)
                os.replace(png, os.path.join(tmp, f"seg-{name}.png"))
    print(f"\n### SD1.5-size SegMoE 4x2 (random weights, {a.size}x{a.size}, {a.steps} steps, CFG; "
          "time per step, passes 1 and 2)\n")
    print("| setting | s/step (pass 1, pass 2) | vs default | PSNR vs default | SSIM vs default | expert work run |")
    print("|---|---|---|---|---|---|")
    ref = os.path.join(tmp, "seg-default.png")
    t0 = sum(timing["default"]) / 2
    for name, flags in settings:
        psnr, ssim = psnr_ssim(ref, os.path.join(tmp, f"seg-{name}.png"))
        used, b = fraction[name]
        t = timing[name]
        label = name + (" (token routing)" if "--moe-capacity" in flags else "")
        print(f"| {label} | {t[0]:.2f}, {t[1]:.2f} | {sum(t) / 2 / t0:.2f}x | "
              f"{'identical' if psnr == float('inf') else f'{psnr:.1f} dB'} | {ssim:.3f} | "
              f"{used / fraction['default'][1]:.3f} |", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--models", required=True, help="where the random SegMoE model is made once")
    ap.add_argument("--count", type=int, default=68)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--only", choices=["demo", "segmoe"])
    ap.add_argument("--settings", help="only settings whose name contains this (default first)")
    a = ap.parse_args()
    if a.settings:
        SETTINGS[1:] = [s for s in SETTINGS[1:] if a.settings in s[0]]
        SEGMOE_EXTRA[:] = [s for s in SEGMOE_EXTRA if a.settings in s[0]]
    a.cli = os.path.abspath(os.path.join(a.build, "moe-diffuse"))
    a.make_model = os.path.abspath(os.path.join(a.build, "make-random-model"))
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    commit = subprocess.run(["git", "-C", HERE, "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    print(f"machine: {cpu}, {os.cpu_count()} cores; commit {commit}")
    with tempfile.TemporaryDirectory() as tmp:
        if a.only != "segmoe":
            demo(a, tmp)
        if a.only != "demo":
            segmoe(a, tmp)


if __name__ == "__main__":
    main()

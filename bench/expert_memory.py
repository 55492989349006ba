#!/usr/bin/env python3
"""Peak memory and speed under --max-expert-memory (docs/moe.md "Expert
memory", bench/RESULTS.md). Standard library only.

  bench/expert_memory.py --build build --models /tmp/md-models [--backend cpu]

An SD1.5-size SegMoE 4x2 with random weights (make-random-model --preset
segmoe-sd15-4x2, made once in MODELS) is run without a bound and at 100%,
50% and 25% of its experts' size, in two passes (the order repeated, so
every figure is compared within one run):
  - peak RSS of the process (/usr/bin/time %M);
  - seconds per denoising step from the CLI's --json step events (text
    encoding and the VAE left out), and the ratio to the unbounded run of
    the same pass;
  - the cache's own figures from one -v run per bound (peak resident,
    loads, hits, evictions);
  - whether the image is byte for byte the one at 100% (PNG pixel data): on
    the CPU the unbounded run computes alike; on Vulkan a bound makes the
    layers route on the host while the unbounded run routes on the device,
    so "none" may differ from the bounded ones in rounding.
Prints a Markdown table.
"""
import argparse
import json
import os
import re
import struct
import subprocess
import sys
import tempfile
import time
import zlib

BOUNDS = [("none", None), ("100%", "100%"), ("50%", "50%"), ("25%", "25%")]


def pixels(path):
    with open(path, "rb") as f:
        d = f.read()[8:]
    idat = b""
    while d:
        n = struct.unpack(">I", d[:4])[0]
        if d[4:8] == b"IDAT":
            idat += d[8:8 + n]
        d = d[12 + n:]
    return zlib.decompress(idat)


def base_cmd(a, model, out, bound):
    cmd = [os.path.join(a.build, "moe-diffuse"), "-m", model, "-p", "a lighthouse on a cliff at dusk",
           "-W", str(a.size), "-H", str(a.size), "--steps", str(a.steps), "--seed", "1",
           "-t", str(a.threads), "--backend", a.backend, "-o", out]
    return cmd + (["--max-expert-memory", bound] if bound else [])


def timed_run(a, model, out, bound):
    """(s/step, peak RSS KiB) of one run."""
    cmd = ["/usr/bin/time", "-f", "MAXRSS %M"] + base_cmd(a, model, out, bound) + ["--json"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stamps = []
    for line in p.stdout:
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        if ev.get("event") == "step":
            stamps.append(time.monotonic())
    err = p.stderr.read()
    if p.wait():
        sys.exit(f"expert_memory: {' '.join(cmd)}: {err.strip()}")
    rss = int(re.search(r"MAXRSS (\d+)", err).group(1))
    return (stamps[-1] - stamps[0]) / (len(stamps) - 1), rss


def counters(a, model, out, bound):
    cmd = base_cmd(a, model, out, bound) + ["-v"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode:
        sys.exit(f"expert_memory: {' '.join(cmd)}: {r.stderr.strip()}")
    m = re.search(r"expert memory: peak ([\d.]+) of ([\d.]+) MiB resident \(bound ([^)]*)\); "
                  r"(\d+) loads, (\d+) hits, (\d+) evictions", r.stderr)
    if not m:
        sys.exit(f"expert_memory: no expert memory line in: {r.stderr[-500:]}")
    return m.groups()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build")
    ap.add_argument("--models", required=True, help="folder holding (or to hold) segmoe-sd15-4x2")
    ap.add_argument("--backend", default="cpu", help="cpu or vulkan")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args()
    model = os.path.join(a.models, "segmoe-sd15-4x2")
    if not os.path.isdir(model):
        os.makedirs(a.models, exist_ok=True)
        subprocess.run([os.path.join(a.build, "make-random-model"), "--preset", "segmoe-sd15-4x2",
                        model], check=True, stdout=subprocess.DEVNULL)
    cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    cpu = re.search(r"Model name:\s*(.*)", cpu).group(1).strip() if "Model name" in cpu else "?"
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    print(f"machine: {cpu}, {os.cpu_count()} cores; commit {commit}; backend {a.backend}; "
          f"{a.size}x{a.size}, {a.steps} steps, CFG")
    with tempfile.TemporaryDirectory(prefix="md-expert-memory-") as tmp:
        results = {name: {"t": [], "rss": []} for name, _ in BOUNDS}
        for _ in range(2):
            base_t = None
            for name, bound in BOUNDS:
                out = os.path.join(tmp, f"{name.strip('%')}.png")
                t, rss = timed_run(a, model, out, bound)
                base_t = t if bound is None else base_t
                results[name]["t"].append(t)
                results[name]["ratio"] = results[name].get("ratio", []) + [t / base_t]
                results[name]["rss"].append(rss)
            for name, _ in BOUNDS:
                out = os.path.join(tmp, f"{name.strip('%')}.png")
                results[name]["same"] = pixels(out) == pixels(os.path.join(tmp, "100.png"))
        print("\n| bound | peak RSS, MiB (pass 1, 2) | s/step (pass 1, 2) | vs unbounded | "
              "experts resident at most | loads / hits / evictions | image vs 100% |")
        print("|---|---|---|---|---|---|---|")
        for name, bound in BOUNDS:
            r = results[name]
            peak, total, _, loads, hits, ev = counters(a, model, os.path.join(tmp, "c.png"), bound)
            print(f"| {name} | {r['rss'][0] / 1024:.0f}, {r['rss'][1] / 1024:.0f} | "
                  f"{r['t'][0]:.2f}, {r['t'][1]:.2f} | "
                  f"{r['ratio'][0]:.2f}x, {r['ratio'][1]:.2f}x | {float(peak):.0f} of {float(total):.0f} MiB | "
                  f"{loads} / {hits} / {ev} | {'identical' if r['same'] else 'differs'} |")


if __name__ == "__main__":
    main()

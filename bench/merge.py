#!/usr/bin/env python3
"""Peak memory and wall time of `moe-diffuse merge` (docs/merge.md,
bench/RESULTS.md). Standard library only.

  bench/merge.py --build build --models /tmp/md-models [--experts 4]
                 [--gate-init random|hidden|both] [--threads 0]

Makes (once, in MODELS) SD1.5-size random dense models with
make-random-model --preset sd15 --seed 1..E+1 (E+1 distinct checkpoints:
a base and E sources), writes a SegMoE config merging them (moe_layers
attn, top-2), and runs the merge under /usr/bin/time for each gate
initialisation asked for. Prints a Markdown table: wall time, peak RSS,
the size of one source model on disk, the output's size. The output
folders are removed afterwards.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile


def folder_bytes(path):
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            total += os.path.getsize(os.path.join(root, f))
    return total


def make_model(build, path, seed):
    if os.path.isdir(path):
        return
    print(f"making {path} (seed {seed})", file=sys.stderr)
    subprocess.run([os.path.join(build, "make-random-model"), "--preset", "sd15", "--seed",
                    str(seed), path], check=True, stdout=subprocess.DEVNULL)


def run_merge(build, config, out, gate_init, threads):
    cmd = ["/usr/bin/time", "-f", "%e %M", os.path.join(build, "moe-diffuse"), "merge", "-q",
           "--gate-init", gate_init, "--threads", str(threads), config, out]
    r = subprocess.run(cmd, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        sys.exit(f"merge failed ({r.returncode}): {r.stderr}")
    wall, rss_kb = r.stderr.strip().splitlines()[-1].split()
    return float(wall), int(rss_kb) / 1024.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--models", default="/tmp/md-models")
    ap.add_argument("--experts", type=int, default=4)
    ap.add_argument("--gate-init", default="both", choices=["random", "hidden", "both"])
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args()

    names = [f"sd15-merge-src{i}" for i in range(a.experts + 1)]
    for i, n in enumerate(names):
        make_model(a.build, os.path.join(a.models, n), i + 1)
    work = tempfile.mkdtemp(prefix="bench-merge-", dir=a.models)
    config = os.path.join(work, "merge.yaml")
    with open(config, "w") as f:
        f.write(f"base_model: {os.path.join(a.models, names[0])}\n")
        f.write("num_experts_per_tok: 2\nmoe_layers: attn\ntype: sd\nexperts:\n")
        for i, n in enumerate(names[1:]):
            f.write(f"  - source_model: {os.path.join(a.models, n)}\n")
            f.write(f'    positive_prompt: "style {i}, detailed"\n')
            f.write('    negative_prompt: "blurry, low quality"\n')
    source = folder_bytes(os.path.join(a.models, names[1]))
    modes = ["random", "hidden"] if a.gate_init == "both" else [a.gate_init]
    print("| gate init | experts | wall | peak RSS | one source on disk | output on disk |")
    print("|---|---|---|---|---|---|")
    try:
        for mode in modes:
            out = os.path.join(work, f"out-{mode}")
            wall, rss = run_merge(a.build, config, out, mode, a.threads)
            size = folder_bytes(out)
            shutil.rmtree(out)
            print(f"| {mode} | {a.experts} | {wall:.1f} s | {rss:.0f} MiB | "
                  f"{source / 2**20:.0f} MiB | {size / 2**20:.0f} MiB |", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

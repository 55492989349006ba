#!/usr/bin/env python3
"""Samples the training checkpoint in PyTorch (DDIM, eta 0, classifier-free
guidance) and judges the images like tools/eval does: a check of the model
itself, independent of the engine.

    /usr/bin/python3 tools/train/sample.py [--count 24] [--steps 20] [--cfg 4.0] [--raw]
"""
import argparse
import os
import sys

import torch

import recipe
from model import CLIPTextModel, UNet2DConditionModel

sys.path.insert(0, os.path.join(recipe.ROOT, "tools", "eval"))
import judge  # noqa: E402
import spec  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=24)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--cfg", type=float, default=recipe.GUIDANCE)
    ap.add_argument("--raw", action="store_true", help="the optimiser weights instead of the EMA")
    a = ap.parse_args()
    s = torch.load(os.path.join(recipe.RUN_DIR, "unet.pt"), map_location="cpu")
    te = CLIPTextModel(recipe.TEXT_CFG)
    unet = UNet2DConditionModel(recipe.UNET_CFG, recipe.MOE_CFG)
    te.load_state_dict(s["te"] if a.raw else s["ema"]["te"])
    unet.load_state_dict(s["unet"] if a.raw else s["ema"]["unet"])
    scale = s["scaling_factor"]
    items = spec.eval_prompts(a.count)
    ids = torch.tensor(recipe.tokenize([it["prompt"] for it in items] + [""]), dtype=torch.long)
    ac = recipe.alphas_cumprod()
    ts = list(range(999, -1, -1000 // a.steps))[:a.steps]
    g = torch.Generator().manual_seed(0)
    x = torch.randn(a.count, 4, 16, 16, generator=g)
    with torch.no_grad():
        ctx = te(ids)
        cond, unc = ctx[:-1], ctx[-1:].expand(a.count, -1, -1)
        for i, t in enumerate(ts):
            tt = torch.full((a.count,), t)
            e_c, _ = unet(x, tt, cond)
            e_u, _ = unet(x, tt, unc)
            e = e_u + a.cfg * (e_c - e_u)
            x0 = (x - (1 - ac[t]).sqrt() * e) / ac[t].sqrt()
            prev = ac[ts[i + 1]] if i + 1 < len(ts) else torch.tensor(1.0)
            x = prev.sqrt() * x0 + (1 - prev).sqrt() * e
    rgb = ((x[:, :3] / scale).clamp(-1, 1) + 1) * 127.5
    right = {k: 0 for k in ("background", "colour", "shape", "position", "size")}
    for k, it in enumerate(items):
        img = rgb[k].round().to(torch.uint8).repeat_interleave(4, 1).repeat_interleave(4, 2)
        rows = [[tuple(int(v) for v in img[:, y, xx]) for xx in range(64)] for y in range(64)]
        got = judge.judge(rows)
        for attr in right:
            right[attr] += got[attr] == it[attr]
    print(f"step {s['step']} ({'raw' if a.raw else 'EMA'}), {a.count} prompts, DDIM {a.steps}, cfg {a.cfg}: " +
          " ".join(f"{k} {v / a.count:.0%}" for k, v in right.items()))


if __name__ == "__main__":
    main()

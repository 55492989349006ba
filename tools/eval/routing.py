#!/usr/bin/env python3
"""What do the demo model's experts specialise in? Runs the PyTorch U-Net
(EMA weights of the training checkpoint) on noised latents of fresh scenes
and tallies, per MoE layer, the share of routed slots each expert gets for
tokens on the object vs the background, by noise level, by the object's
colour and by its shape.

    /usr/bin/python3 tools/eval/routing.py [--count 256] [--json out.json]
"""
import argparse
import json
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "train"))
import recipe  # noqa: E402
import shapes  # noqa: E402
from model import CLIPTextModel, MoEFeedForward, UNet2DConditionModel  # noqa: E402
from vae_fixed import pool_latents  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=256)
    ap.add_argument("--seed", type=int, default=99)
    ap.add_argument("--json")
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    s = torch.load(os.path.join(recipe.RUN_DIR, "unet.pt"), map_location="cpu")
    te = CLIPTextModel(recipe.TEXT_CFG)
    te.load_state_dict(s["ema"]["te"])
    unet = UNet2DConditionModel(recipe.UNET_CFG, recipe.MOE_CFG)
    unet.load_state_dict(s["ema"]["unet"])
    scale = s["scaling_factor"]

    rng = np.random.default_rng(a.seed)
    scenes = []
    while len(scenes) < a.count:  # single-object scenes with solid backgrounds
        sc = shapes.sample_scene(rng)
        if len(sc["objects"]) == 1 and not isinstance(sc["background"], list):
            scenes.append(sc)
    imgs = np.stack([shapes.render(sc) for sc in scenes])
    caps = [shapes.caption(sc) for sc in scenes]
    bg = np.array([shapes.PALETTE[sc["background"]] for sc in scenes], np.float32)[:, None, None]
    on_obj = (np.abs(imgs.astype(np.float32) - bg).sum(-1) > 30)  # [N,64,64]
    z0 = torch.from_numpy(pool_latents(imgs)) * scale
    ids = torch.tensor(recipe.tokenize(caps), dtype=torch.long)

    # Record each MoE layer's top-k choices.
    chosen = {}

    def hook(name):
        def f(mod, inp, out):
            x = inp[0].reshape(-1, inp[0].shape[-1])
            chosen.setdefault(name, []).append(mod.gate(x).topk(mod.top_k, -1).indices)
        return f

    for name, m in unet.named_modules():
        if isinstance(m, MoEFeedForward):
            m.register_forward_hook(hook(name))
    ac = recipe.alphas_cumprod()
    levels = {"t=100": 100, "t=500": 500, "t=900": 900}
    E = recipe.MOE_CFG["num_experts"]
    out = {}
    with torch.no_grad():
        ctx = te(ids)
        for tname, t in levels.items():
            chosen.clear()
            g = torch.Generator().manual_seed(a.seed + t)
            noise = torch.randn(z0.shape, generator=g)
            zt = ac[t].sqrt() * z0 + (1 - ac[t]).sqrt() * noise
            unet(zt, torch.full((a.count,), t), ctx)
            for name, (sel,) in chosen.items():
                n_tok = sel.shape[0] // a.count
                side = int(round(n_tok ** 0.5))
                f = 64 // side
                mask = on_obj.reshape(a.count, side, f, side, f).mean((2, 4)).reshape(-1) > 0.5
                onehot = torch.nn.functional.one_hot(sel, E).sum(1).float().numpy()  # [tokens, E]
                rec = out.setdefault(name, {})
                rec[f"{tname} object"] = (onehot[mask].sum(0) / max(1, onehot[mask].sum())).round(3).tolist()
                rec[f"{tname} background"] = (onehot[~mask].sum(0) / max(1, onehot[~mask].sum())).round(3).tolist()
                if t == 500:
                    per_img = onehot.reshape(a.count, n_tok, E)
                    obj_img = mask.reshape(a.count, n_tok)
                    for key in ("colour", "shape"):
                        for v in sorted({sc["objects"][0][key] for sc in scenes}):
                            sel_i = [i for i, sc in enumerate(scenes) if sc["objects"][0][key] == v]
                            tot = sum(per_img[i][obj_img[i]].sum(0) for i in sel_i)
                            if np.sum(tot) > 0:
                                rec[f"t=500 object {key}={v}"] = (tot / np.sum(tot)).round(3).tolist()
    for name, rec in out.items():
        print(name)
        for k, v in rec.items():
            print(f"  {k:<32} " + " ".join(f"{x:.2f}" for x in v))
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(out, fh, indent=1)


if __name__ == "__main__":
    main()

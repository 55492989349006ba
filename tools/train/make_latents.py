#!/usr/bin/env python3
"""Builds the U-Net training set: procedural scenes (tools/dataset, training
split only, seed SEEDS["data"]), their latents from the fixed VAE (a 4x4 pool,
see vae_fixed.py) and the engine's token ids of their captions, cached in
RUN_DIR/latents.pt.

    /usr/bin/python3 tools/train/make_latents.py --count 40000
"""
import argparse
import os

import numpy as np
import torch

import recipe
import shapes
from vae_fixed import pool_latents


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=40000)
    a = ap.parse_args()
    imgs, caps, _ = shapes.make_dataset(a.count, recipe.SEEDS["data"])
    lat = pool_latents(imgs)
    scale = 1.0 / float(lat[:, :3].std())
    uniq = sorted(set(caps))
    ids = recipe.tokenize(uniq)
    index = {c: i for i, c in enumerate(uniq)}
    os.makedirs(recipe.RUN_DIR, exist_ok=True)
    torch.save({"mean": torch.from_numpy(lat).half(), "std": torch.zeros(1, 4, 16, 16).half(),
                "scaling_factor": scale, "ids": torch.tensor(ids, dtype=torch.int32),
                "cap_index": torch.tensor(np.array([index[c] for c in caps]), dtype=torch.int32),
                "captions": uniq}, os.path.join(recipe.RUN_DIR, "latents.pt"))
    print(f"{a.count} scenes, {len(uniq)} distinct captions, scaling_factor {scale:.4f}")


if __name__ == "__main__":
    main()

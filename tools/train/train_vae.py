#!/usr/bin/env python3
"""Stage 1: trains the small KL-VAE on procedural shapes, then encodes the
U-Net training set to latents (cached in RUN_DIR/latents.pt).

Resumable: the state is saved to RUN_DIR/vae.pt every --save-every seconds
and at the end; rerunning continues from it until --steps is reached.

    nice -n 10 /usr/bin/python3 tools/train/train_vae.py --steps 1500
"""
import argparse
import os
import time

import numpy as np
import torch
import torch.nn.functional as F

import recipe
from model import AutoencoderKL
import shapes


def to_tensor(imgs):
    return torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def save(path, obj):
    tmp = path + ".tmp"
    torch.save(obj, tmp)
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--kl", type=float, default=1e-6)
    ap.add_argument("--train-images", type=int, default=60000, help="U-Net training set size")
    ap.add_argument("--save-every", type=float, default=120.0)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    os.makedirs(recipe.RUN_DIR, exist_ok=True)
    ck = os.path.join(recipe.RUN_DIR, "vae.pt")

    torch.manual_seed(recipe.SEEDS["vae"])
    vae = AutoencoderKL(recipe.VAE_CFG)
    opt = torch.optim.AdamW(vae.parameters(), lr=a.lr, weight_decay=0.0)
    step, wall = 0, 0.0
    if os.path.exists(ck):
        s = torch.load(ck)
        vae.load_state_dict(s["model"])
        opt.load_state_dict(s["opt"])
        step, wall = s["step"], s["wall"]
        print(f"resumed at step {step}")

    # VAE images: their own stream of scenes (held-out triples included: the
    # autoencoder never sees captions, so this leaks no combination).
    rng = np.random.default_rng(recipe.SEEDS["data"] + 7)
    t_last = t0 = time.time()
    while step < a.steps:
        scenes = [shapes.sample_scene(rng, allow_held_out=True) for _ in range(a.batch)]
        x = to_tensor(np.stack([shapes.render(s) for s in scenes]))
        lr = a.lr * min(1.0, (step + 1) / 100) * (0.1 + 0.9 * (1 - step / a.steps))
        for g in opt.param_groups:
            g["lr"] = lr
        m, lv = vae.encode(x)
        z = m + torch.randn_like(m) * (0.5 * lv).exp()
        y = vae.decode(z)
        rec = F.mse_loss(y, x) + 0.5 * (y - x).abs().mean()
        kl = 0.5 * (m.pow(2) + lv.exp() - 1 - lv).sum((1, 2, 3)).mean()
        loss = rec + a.kl * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        if step % 10 == 0:
            print(f"vae step {step} rec {rec.item():.5f} kl {kl.item():.1f} lr {lr:.2e} "
                  f"{(time.time() - t0) / step if step else 0:.2f}s/step", flush=True)
        if time.time() - t_last > a.save_every or step == a.steps:
            wall += time.time() - t_last
            t_last = time.time()
            save(ck, {"model": vae.state_dict(), "opt": opt.state_dict(), "step": step, "wall": wall})
    print(f"vae done: {step} steps, {wall:.0f}s of training wall time")

    # Encode the U-Net training set.
    out = os.path.join(recipe.RUN_DIR, "latents.pt")
    if os.path.exists(out):
        print("latents already cached")
        return
    imgs, caps, _ = shapes.make_dataset(a.train_images, recipe.SEEDS["data"])
    vae.eval()
    means, stds = [], []
    with torch.no_grad():
        for i in range(0, len(imgs), 256):
            m, lv = vae.encode(to_tensor(imgs[i:i + 256]))
            means.append(m.half())
            stds.append((0.5 * lv).exp().half())
        mean = torch.cat(means)
        scale = 1.0 / mean.float().std().item()
        # Reconstruction error of the cached set, as a sanity figure.
        y = vae.decode(mean[:256].float())
        err = (y - to_tensor(imgs[:256])).abs().mean().item() * 127.5
    uniq = sorted(set(caps))
    ids = recipe.tokenize(uniq)
    index = {c: i for i, c in enumerate(uniq)}
    save(out, {"mean": mean, "std": torch.cat(stds), "scaling_factor": scale,
               "ids": torch.tensor(ids, dtype=torch.int32),
               "cap_index": torch.tensor([index[c] for c in caps], dtype=torch.int32),
               "captions": uniq})
    print(f"cached {len(imgs)} latents, {len(uniq)} distinct captions, scaling_factor {scale:.4f}, "
          f"mean abs reconstruction error {err:.2f}/255")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Stage 1b: trains the VAE decoder on the fixed encoder's latents.

The encoder stays the exact 4x4 average pool of vae_fixed.py, so the latent
space the U-Net learned does not move; only the decoder (and
post_quant_conv) learn to turn a 16x16 latent back into a sharp 64x64
image instead of the fixed decoder's nearest 4x blocks. The decoder starts
from a fresh initialisation: fine-tuning the hand-set one was measured to
lose its exactness within a few hundred steps (its normalisation trick is
fragile) without learning anything better. The latents get small Gaussian
noise, also on the unused channel 3, because the U-Net's samples are never
exactly pooled images.

Scenes are drawn fresh for each step from the training distribution
(held-out combinations excluded), seeded by the step number, so a run is
reproducible and resumable: the state is saved to RUN_DIR/vae_dec.pt every
--save-every seconds and at the end. export.py uses it when it exists.

    OMP_WAIT_POLICY=PASSIVE nice -n 19 /usr/bin/python3 tools/train/train_decoder.py --minutes 40
"""
import argparse
import os
import sys
import time

import torch
import torch.nn.functional as F

import recipe
from model import AutoencoderKL

sys.path.insert(0, os.path.join(recipe.ROOT, "tools", "dataset"))
import shapes  # noqa: E402
from vae_fixed import pool_latents  # noqa: E402


def save(path, obj):
    tmp = path + ".tmp"
    torch.save(obj, tmp)
    os.replace(tmp, path)


def batch(step, size, noise, gen):
    imgs, _, _ = shapes.make_dataset(size, 7_000_000 + step)
    x = torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    z = torch.from_numpy(pool_latents(imgs))
    z = z + noise * torch.randn(z.shape, generator=gen)
    return x, z


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=40.0)
    ap.add_argument("--max-steps", type=int, default=100000)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--warmup", type=int, default=100, help="steps of linear learning-rate warm-up")
    ap.add_argument("--noise", type=float, default=0.05, help="std of the noise on the latents")
    ap.add_argument("--save-every", type=float, default=120.0)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    ck = os.path.join(recipe.RUN_DIR, "vae_dec.pt")
    vae = AutoencoderKL(recipe.VAE_CFG)
    step, wall, state = 0, 0.0, None
    if os.path.exists(ck):
        state = torch.load(ck, map_location="cpu")
        vae.load_state_dict(state["model"])
        step, wall = state["step"], state["wall"]
        print(f"resumed at step {step} ({wall:.0f}s)", flush=True)
    else:
        # The fixed encoder and latent layout, a freshly initialised decoder.
        fixed = torch.load(os.path.join(recipe.RUN_DIR, "vae.pt"))["model"]
        torch.manual_seed(recipe.SEEDS["vae"])
        fresh = AutoencoderKL(recipe.VAE_CFG).state_dict()
        vae.load_state_dict({k: (fresh[k] if k.startswith(("decoder.", "post_quant_conv."))
                                 else fixed[k]) for k in fixed})
    params = list(vae.decoder.parameters()) + list(vae.post_quant_conv.parameters())
    for p in vae.encoder.parameters():
        p.requires_grad_(False)
    opt = torch.optim.AdamW(params, lr=a.lr, weight_decay=0.0)
    if state is not None:
        opt.load_state_dict(state["opt"])
    gen = torch.Generator().manual_seed(recipe.SEEDS["vae"] + step)

    # What the fixed decoder scores on the same kind of batch: the baseline.
    with torch.no_grad():
        x, z = batch(10**9, 64, 0.0, gen)
        up = z[:, :3].repeat_interleave(4, 2).repeat_interleave(4, 3)
        print(f"nearest-4x baseline L1 {F.l1_loss(up, x).item():.4f}", flush=True)

    t_start = t_save = t_win = time.time()
    run, n = 0.0, 0
    while step < a.max_steps and time.time() - t_start < a.minutes * 60:
        x, z = batch(step, a.batch, a.noise, gen)
        for g in opt.param_groups:
            g["lr"] = a.lr * min(1.0, (step + 1) / a.warmup)
        y = vae.decode(z)
        loss = F.l1_loss(y, x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        run, n = run + loss.item(), n + 1
        if step % 50 == 0:
            print(f"dec step {step} L1 {run / n:.4f} {(time.time() - t_win) / n:.2f}s/step",
                  flush=True)
            run, n, t_win = 0.0, 0, time.time()
        if time.time() - t_save > a.save_every:
            save(ck, {"model": vae.state_dict(), "opt": opt.state_dict(), "step": step,
                      "wall": wall + time.time() - t_start})
            t_save = time.time()
    save(ck, {"model": vae.state_dict(), "opt": opt.state_dict(), "step": step,
              "wall": wall + time.time() - t_start})
    with torch.no_grad():
        x, z = batch(10**9, 64, 0.0, gen)
        print(f"held batch L1 {F.l1_loss(vae.decode(z), x).item():.4f} at step {step}", flush=True)


if __name__ == "__main__":
    main()

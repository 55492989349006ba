#!/usr/bin/env python3
"""Stage 2: trains the text encoder and the MoE U-Net jointly on the cached
latents of train_vae.py (epsilon prediction, DDPM scaled_linear betas
0.00085..0.012 over 1000 steps, offset noise 0.2, min-SNR-5 loss weights, 10% empty captions
for classifier-free guidance, Switch load-balancing loss weight 0.01, EMA).

Resumable: RUN_DIR/unet.pt is rewritten every --save-every seconds; rerun
the same command to continue. --minutes bounds this invocation's wall time.

    nice -n 10 /usr/bin/python3 tools/train/train_unet.py --minutes 50
"""
import argparse
import copy
import os
import time

import torch
import torch.nn.functional as F

import recipe
from model import CLIPTextModel, UNet2DConditionModel


def save(path, obj):
    tmp = path + ".tmp"
    torch.save(obj, tmp)
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=50.0)
    ap.add_argument("--max-steps", type=int, default=100000)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--aux", type=float, default=0.01, help="load-balancing loss weight")
    ap.add_argument("--uncond", type=float, default=0.1, help="share of empty captions")
    ap.add_argument("--offset-noise", type=float, default=0.2,
                    help="std of a per-image, per-channel constant added to the noise")
    ap.add_argument("--pyramid-noise", type=float, default=0.0,
                    help="std of 2x2 and 4x4 noise, upsampled bilinearly, added to the noise")
    ap.add_argument("--decay", type=int, nargs=2, metavar=("FROM", "TO"),
                    help="linear learning-rate decay to 5%% of --lr between these steps")
    ap.add_argument("--save-every", type=float, default=180.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    data = torch.load(os.path.join(recipe.RUN_DIR, "latents.pt"))
    ck = os.path.join(recipe.RUN_DIR, "unet.pt")
    mean, std, scale = data["mean"], data["std"], data["scaling_factor"]
    ids, cap_index = data["ids"].long(), data["cap_index"].long()
    empty = torch.tensor(recipe.tokenize([""])[0], dtype=torch.long)
    n = mean.shape[0]

    torch.manual_seed(recipe.SEEDS["unet"])
    te = CLIPTextModel(recipe.TEXT_CFG)
    unet = UNet2DConditionModel(recipe.UNET_CFG, recipe.MOE_CFG)
    for m in (te, unet):  # small init keeps the untrained embeddings tame
        for name, p in m.named_parameters():
            if name.endswith("embedding.weight"):
                torch.nn.init.normal_(p, std=0.02)
    te.to(dev)
    unet.to(dev)
    ema = {"te": copy.deepcopy(te.state_dict()), "unet": copy.deepcopy(unet.state_dict())}
    step, wall = 0, 0.0
    gen = torch.Generator().manual_seed(recipe.SEEDS["unet"] + 1)
    s = torch.load(ck, map_location=dev) if os.path.exists(ck) else None
    if s:
        te.load_state_dict(s["te"])
        unet.load_state_dict(s["unet"])
        ema = s["ema"]
        step, wall = s["step"], s["wall"]
        gen.set_state(s["gen"])
        print(f"resumed at step {step} ({wall:.0f}s)")

    # Only the token embedding rows of ids the captions use are trained: the
    # optimiser and EMA then skip the other 49,000 rows (a third of a CPU
    # step otherwise). They are written back into the full table on saving.
    EMB = "text_model.embeddings.token_embedding.weight"
    used = torch.tensor(sorted(set(ids.flatten().tolist()) | set(empty.tolist())))
    remap = torch.zeros(recipe.TEXT_CFG["vocab_size"], dtype=torch.long)
    remap[used] = torch.arange(len(used))
    full = te.text_model.embeddings.token_embedding.weight
    full.requires_grad_(False)
    rows = torch.nn.Parameter(full.detach()[used.to(dev)].clone())
    ema_rows = ema["te"][EMB][used.to(dev)].clone()
    remap, used = remap.to(dev), used.to(dev)
    params = [p for p in te.parameters() if p.requires_grad] + [rows] + list(unet.parameters())
    opt = torch.optim.AdamW(params, lr=a.lr, weight_decay=0.01)
    if s and s.get("emb_rows"):
        opt.load_state_dict(s["opt"])
    elif s:
        print("optimiser state of an older checkpoint layout: starting fresh moments")
    s = None

    def checkpoint():
        with torch.no_grad():
            full[used] = rows
            ema["te"][EMB][used] = ema_rows
        save(ck, {"te": te.state_dict(), "unet": unet.state_dict(), "opt": opt.state_dict(),
                  "ema": ema, "step": step, "wall": wall, "gen": gen.get_state(),
                  "scaling_factor": scale, "emb_rows": True})

    ac = recipe.alphas_cumprod().to(dev)
    snr = ac / (1 - ac)
    loss_w = torch.clamp(snr, max=5.0) / snr  # min-SNR-5 for epsilon prediction
    moe = unet.moe_layers()
    t_start = t_last = time.time()
    run_loss, run_aux, run_n, t_win = 0.0, 0.0, 0, time.time()
    while step < a.max_steps and time.time() - t_start < a.minutes * 60:
        idx = torch.randint(0, n, (a.batch,), generator=gen)
        # Random draws stay on the CPU generator so runs match across devices.
        z0 = (mean[idx].float() * scale).to(dev)  # the fixed VAE has no posterior noise
        tok = ids[cap_index[idx]]
        drop = torch.rand(a.batch, generator=gen) < a.uncond
        tok[drop] = empty
        t = torch.randint(0, recipe.SCHED["num_train_timesteps"], (a.batch,), generator=gen)
        noise = torch.randn(z0.shape, generator=gen)
        # Offset noise: the schedule never reaches zero SNR, so without it the
        # mean of a 16x16 noisy latent still tells the background colour and
        # the model learns to read it there instead of from the caption (at
        # sampling time the random mean of the start noise then picks it).
        noise = noise + a.offset_noise * torch.randn(a.batch, 4, 1, 1, generator=gen)
        # Pyramid noise, for the same reason one octave up: where the object
        # is lies in the 2x2 and 4x4 content of the latent, so at the highest
        # timesteps the noise's own low frequencies tell the model where to
        # draw and it never learns "left" or "top" from the caption (it drew
        # wherever the seed put a blob, whatever the prompt said). Noise
        # with more energy there teaches it to take the layout from the text.
        if a.pyramid_noise > 0:
            for cells in (2, 4):
                low = torch.randn(a.batch, 4, cells, cells, generator=gen)
                noise = noise + a.pyramid_noise * F.interpolate(low, size=z0.shape[-2:], mode="bilinear",
                                                                align_corners=False)
        noise = noise.to(dev)
        tok, t = tok.to(dev), t.to(dev)
        at = ac[t][:, None, None, None]
        zt = at.sqrt() * z0 + (1 - at).sqrt() * noise
        lr = a.lr * min(1.0, (step + 1) / 100)
        if a.decay and step >= a.decay[0]:
            lr *= max(0.05, 1.0 - 0.95 * (step - a.decay[0]) / (a.decay[1] - a.decay[0]))
        for g in opt.param_groups:
            g["lr"] = lr
        eps, aux = unet(zt, t, te(tok, rows[remap[tok]]))
        mse = ((eps - noise) ** 2).mean((1, 2, 3))
        loss = (mse * loss_w[t]).mean() + a.aux * aux / len(moe)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        decay = min(0.995, (1 + step) / (10 + step))
        with torch.no_grad():
            for key, m in (("te", te), ("unet", unet)):
                for k, v in m.named_parameters():
                    if v.requires_grad:
                        ema[key][k].mul_(decay).add_(v, alpha=1 - decay)
            ema_rows.mul_(decay).add_(rows, alpha=1 - decay)
        run_loss += mse.mean().item()
        run_aux += aux.item() / len(moe)
        run_n += 1
        if step % 20 == 0:
            loads = " ".join("/".join(f"{x:.2f}" for x in m.last_load.tolist()) for _, m in moe)
            print(f"step {step} mse {run_loss / run_n:.4f} balance {run_aux / run_n:.3f} "
                  f"{(time.time() - t_win) / max(run_n, 1):.2f}s/step load {loads}", flush=True)
            run_loss, run_aux, run_n, t_win = 0.0, 0.0, 0, time.time()
        if time.time() - t_last > a.save_every:
            wall += time.time() - t_last
            t_last = time.time()
            checkpoint()
    wall += time.time() - t_last
    checkpoint()
    print(f"saved at step {step}, {wall:.0f}s of training wall time in total")


if __name__ == "__main__":
    main()

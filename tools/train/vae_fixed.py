#!/usr/bin/env python3
"""A hand-set AutoencoderKL (no training): the encoder is a 4x4 average pool
of RGB into latent channels 0-2 (channel 3 is 0, the log-variance a constant
-30), the decoder a nearest 4x upsampling back. Training a VAE on the shared
2-core machine would have cost most of the time budget; this one is exact
and lets the U-Net train on latents computed in numpy.

How it fits diffusers' AutoencoderKL:
  * every ResnetBlock2D has conv2 = 0, so it is the identity, and the mid
    block attention has to_out = 0, so it is too;
  * the Downsample2D convs (stride 2, pad (0,1,0,1)) average their 2x2
    window; the Upsample2D convs (after nearest 2x) are the identity;
  * the only normalisation left is conv_norm_out (GroupNorm, 4 groups of 4
    channels) followed by SiLU. conv_in lays each group out as
    (s, -s, K, -K): the group mean is then exactly 0 and its variance
    (mean(s^2) + K^2) / 2, so with K = 32 the normalised s is s * sqrt(2) / K
    up to a relative 1/(2K^2) < 0.05%; and conv_out reads
    silu(n) - silu(-n) = n, which undoes the SiLU exactly.

    /usr/bin/python3 tools/train/vae_fixed.py   # writes RUN_DIR/vae.pt and checks it
"""
import math
import os

import numpy as np
import torch

import recipe
from model import AutoencoderKL

K = 32.0


def fixed_state():
    torch.manual_seed(0)
    vae = AutoencoderKL(recipe.VAE_CFG)
    sd = {k: torch.zeros_like(v) for k, v in vae.state_dict().items()}
    C = recipe.VAE_CFG["block_out_channels"][0]
    for k in sd:
        if k.endswith("norm1.weight") or k.endswith("norm2.weight") or k.endswith("group_norm.weight") \
                or k.endswith("conv_norm_out.weight"):
            sd[k].fill_(1.0)

    def signed_in(w, b, n_in):
        # channel 4g = +in g, 4g+1 = -in g (g < n_in), 4g+2 = +K, 4g+3 = -K
        for g in range(C // 4):
            if g < n_in:
                w[4 * g, g, 1, 1] = 1.0
                w[4 * g + 1, g, 1, 1] = -1.0
            b[4 * g + 2] = K
            b[4 * g + 3] = -K

    def read_out(w, n_out):
        # out g = K/sqrt(2) * (silu(n_4g) - silu(n_4g+1))
        for g in range(n_out):
            w[g, 4 * g, 1, 1] = K / math.sqrt(2.0)
            w[g, 4 * g + 1, 1, 1] = -K / math.sqrt(2.0)

    signed_in(sd["encoder.conv_in.weight"], sd["encoder.conv_in.bias"], 3)
    read_out(sd["encoder.conv_out.weight"], 3)
    sd["encoder.conv_out.bias"][4:] = -30.0  # log-variance
    signed_in(sd["decoder.conv_in.weight"], sd["decoder.conv_in.bias"], 3)
    read_out(sd["decoder.conv_out.weight"], 3)
    for i in range(8):
        sd["quant_conv.weight"][i, i, 0, 0] = 1.0
    for i in range(4):
        sd["post_quant_conv.weight"][i, i, 0, 0] = 1.0
    for k in sd:
        if "downsamplers.0.conv.weight" in k:
            for c in range(C):
                sd[k][c, c, 0:2, 0:2] = 0.25
        if "upsamplers.0.conv.weight" in k:
            for c in range(C):
                sd[k][c, c, 1, 1] = 1.0
    return sd


def pool_latents(images):
    """uint8 [N,64,64,3] -> float32 [N,4,16,16]: what the fixed encoder computes."""
    x = images.astype(np.float32) / 127.5 - 1.0
    n = x.shape[0]
    p = x.reshape(n, 16, 4, 16, 4, 3).mean((2, 4)).transpose(0, 3, 1, 2)
    return np.concatenate([p, np.zeros((n, 1, 16, 16), np.float32)], axis=1)


def main():
    import shapes
    sd = fixed_state()
    vae = AutoencoderKL(recipe.VAE_CFG)
    vae.load_state_dict(sd)
    imgs, _, _ = shapes.make_dataset(8, 5)
    x = torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    with torch.no_grad():
        m, lv = vae.encode(x)
        ref = torch.from_numpy(pool_latents(imgs))
        e_enc = (m - ref).abs().max().item()
        y = vae.decode(ref)
        up = ref[:, :3].repeat_interleave(4, 2).repeat_interleave(4, 3)
        e_dec = (y - up).abs().max().item()
    print(f"encoder vs 4x4 pool: max abs err {e_enc:.2e}; decoder vs nearest 4x: {e_dec:.2e}; "
          f"logvar {lv.mean().item():.1f}")
    assert e_enc < 2e-3 and e_dec < 2e-3
    os.makedirs(recipe.RUN_DIR, exist_ok=True)
    torch.save({"model": sd}, os.path.join(recipe.RUN_DIR, "vae.pt"))


if __name__ == "__main__":
    main()

"""The demo model's architecture and training recipe, in one place (the
training scripts and the exporter read it; docs/demo-model.md records it)."""
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tools", "dataset"))

RUN_DIR = os.environ.get("MD_TRAIN_DIR", "/work/train-runs/demo")

TEXT_CFG = {
    "hidden_size": 32,
    "intermediate_size": 128,
    "num_attention_heads": 2,
    "num_hidden_layers": 2,
    "max_position_embeddings": 77,
    "vocab_size": 49408,
}

VAE_CFG = {
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": 4,
    # Factor 4 (64x64x3 -> 16x16x4). The weights are set by hand, not
    # trained (vae_fixed.py): 16 channels = 4 GroupNorm groups of 4.
    "block_out_channels": [16, 16, 16],
    "layers_per_block": 1,
    "norm_num_groups": 4,
}

UNET_CFG = {
    "in_channels": 4,
    "out_channels": 4,
    "sample_size": 16,
    # Sized for the shared 2-core CPU (about half a core in practice): a
    # [32, 64] U-Net ran at ~40 s per batch of 32 there.
    "block_out_channels": [16, 32],
    "layers_per_block": 1,
    # Attention only at the 8x8 level: self-attention over 256 tokens at
    # 16x16 would cost most of the CPU training time.
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D"],
    "up_block_types": ["CrossAttnUpBlock2D", "UpBlock2D"],
    "attention_head_dim": [2, 4],  # diffusers' quirk: these are head counts
    "cross_attention_dim": TEXT_CFG["hidden_size"],
    "norm_num_groups": 8,
    "norm_eps": 1e-5,
}

MOE_CFG = {
    "num_experts": 4,
    "top_k": 2,
    "shared_expert": False,
    "expert_inner_mult": 2,  # GEGLU width of an expert = 2 * dim (a dense FF uses 4 * dim)
}

SCHED = {"beta_start": 0.00085, "beta_end": 0.012, "num_train_timesteps": 1000}

# Classifier-free guidance the model samples best at: the middle of the
# 3..5 plateau on evaluate.py --split seen (7.5 over-saturates and leaves
# speckle on gray backgrounds).
GUIDANCE = 4.0

SEEDS = {"data": 1234, "vae": 1, "unet": 2}


def tokenize(captions):
    """77 CLIP ids per caption from the engine's own tokenizer (md-tokenize)."""
    exe = os.environ.get("MD_TOKENIZE")
    if not exe:
        for d in ("build-demo", "build"):
            p = os.path.join(ROOT, d, "md-tokenize")
            if os.path.exists(p):
                exe = p
                break
    if not exe:
        raise SystemExit("md-tokenize not found: build it (cmake --build build --target md-tokenize) or set MD_TOKENIZE")
    out = subprocess.run([exe], input="\n".join(captions) + "\n", capture_output=True, text=True, check=True)
    return [json.loads(line) for line in out.stdout.splitlines()]


def alphas_cumprod():
    import torch
    b = torch.linspace(SCHED["beta_start"] ** 0.5, SCHED["beta_end"] ** 0.5,
                       SCHED["num_train_timesteps"], dtype=torch.float64) ** 2
    return torch.cumprod(1.0 - b, 0).float()

#!/usr/bin/env python3
"""Exports the trained demo model as a diffusers folder with f16 weights:
model_index.json, scheduler/, text_encoder/ (HF CLIPTextModel names), unet/
(with "moe_config", routing "token"), vae/. No tokenizer/ folder: the engine
uses its builtin CLIP vocabulary, the one the training captions went through.

    /usr/bin/python3 tools/train/export.py [--out models/demo] [--raw]

Uses the EMA weights (--raw: the last optimiser weights) and, when present,
the decoder fine-tuned by finetune_decoder.py.
"""
import argparse
import json
import os
import struct

import torch

import recipe


def write_safetensors(path, tensors):
    """Minimal safetensors writer: 8-byte header size, JSON header, raw data."""
    header, blobs, off = {}, [], 0
    for k in sorted(tensors):
        t = tensors[k].detach().to(torch.float16).contiguous()
        b = t.numpy().tobytes()
        header[k] = {"dtype": "F16", "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(path + ".tmp", path)


def dump(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


def unet_config():
    u = recipe.UNET_CFG
    return {
        "_class_name": "UNet2DConditionModel",
        "act_fn": "silu",
        "attention_head_dim": u["attention_head_dim"],
        "block_out_channels": u["block_out_channels"],
        "center_input_sample": False,
        "conv_in_kernel": 3,
        "conv_out_kernel": 3,
        "cross_attention_dim": u["cross_attention_dim"],
        "down_block_types": u["down_block_types"],
        "downsample_padding": 1,
        "flip_sin_to_cos": True,
        "freq_shift": 0,
        "in_channels": u["in_channels"],
        "layers_per_block": u["layers_per_block"],
        "mid_block_type": "UNetMidBlock2DCrossAttn",
        "norm_eps": u["norm_eps"],
        "norm_num_groups": u["norm_num_groups"],
        "num_attention_heads": None,
        "only_cross_attention": False,
        "out_channels": u["out_channels"],
        "sample_size": u["sample_size"],
        "transformer_layers_per_block": 1,
        "up_block_types": u["up_block_types"],
        "upcast_attention": False,
        "use_linear_projection": False,
        "moe_config": {
            "num_experts": recipe.MOE_CFG["num_experts"],
            "top_k": recipe.MOE_CFG["top_k"],
            "routing": "token",
            "moe_layers": "ff",
            "shared_expert": recipe.MOE_CFG["shared_expert"],
            "down_idx_start": 0,
            "down_idx_end": len(u["block_out_channels"]),
            "up_idx_start": 0,
            "up_idx_end": len(u["block_out_channels"]),
        },
    }


def vae_config(scaling_factor):
    v = recipe.VAE_CFG
    n = len(v["block_out_channels"])
    return {
        "_class_name": "AutoencoderKL",
        "act_fn": "silu",
        "block_out_channels": v["block_out_channels"],
        "down_block_types": ["DownEncoderBlock2D"] * n,
        "up_block_types": ["UpDecoderBlock2D"] * n,
        "in_channels": v["in_channels"],
        "out_channels": v["out_channels"],
        "latent_channels": v["latent_channels"],
        "layers_per_block": v["layers_per_block"],
        "norm_num_groups": v["norm_num_groups"],
        "sample_size": 64,
        "scaling_factor": round(scaling_factor, 6),
        "force_upcast": False,
    }


def text_config():
    t = recipe.TEXT_CFG
    return {
        "architectures": ["CLIPTextModel"],
        "model_type": "clip_text_model",
        "hidden_act": "quick_gelu",
        "hidden_size": t["hidden_size"],
        "intermediate_size": t["intermediate_size"],
        "num_attention_heads": t["num_attention_heads"],
        "num_hidden_layers": t["num_hidden_layers"],
        "max_position_embeddings": t["max_position_embeddings"],
        "vocab_size": t["vocab_size"],
        "layer_norm_eps": 1e-5,
        "bos_token_id": 49406,
        "eos_token_id": 49407,
        "pad_token_id": 49407,
        "torch_dtype": "float16",
    }


SCHEDULER = {
    "_class_name": "DDIMScheduler",
    "beta_start": recipe.SCHED["beta_start"],
    "beta_end": recipe.SCHED["beta_end"],
    "beta_schedule": "scaled_linear",
    "num_train_timesteps": recipe.SCHED["num_train_timesteps"],
    "prediction_type": "epsilon",
    "steps_offset": 1,
    "set_alpha_to_one": False,
    "clip_sample": False,
}

MODEL_INDEX = {
    "_class_name": "StableDiffusionPipeline",
    # moe-diffuse's default guidance for this model (diffusers ignores
    # "_"-keys): chosen on the validation split, docs/demo-model.md.
    "_default_guidance_scale": recipe.GUIDANCE,
    "requires_safety_checker": False,
    "feature_extractor": [None, None],
    "safety_checker": [None, None],
    "scheduler": ["diffusers", "DDIMScheduler"],
    "text_encoder": ["transformers", "CLIPTextModel"],
    "tokenizer": [None, None],
    "unet": ["diffusers", "UNet2DConditionModel"],
    "vae": ["diffusers", "AutoencoderKL"],
}


def load_weights(raw=False, fixed_vae=False):
    """(text encoder state, unet state, vae state, scaling factor)."""
    s = torch.load(os.path.join(recipe.RUN_DIR, "unet.pt"), map_location="cpu")
    te, un = (s["te"], s["unet"]) if raw else (s["ema"]["te"], s["ema"]["unet"])
    dec = os.path.join(recipe.RUN_DIR, "vae_dec.pt")  # train_decoder.py
    if fixed_vae or not os.path.exists(dec):
        dec = os.path.join(recipe.RUN_DIR, "vae.pt")
    vae = torch.load(dec, map_location="cpu")["model"]
    return te, un, vae, s["scaling_factor"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(recipe.ROOT, "models", "demo"))
    ap.add_argument("--raw", action="store_true")
    ap.add_argument("--fixed-vae", action="store_true", help="the hand-set decoder even when a "
                    "trained one (vae_dec.pt) exists")
    a = ap.parse_args()
    te, un, vae, scale = load_weights(a.raw, a.fixed_vae)
    for d in ("unet", "vae", "text_encoder", "scheduler"):
        os.makedirs(os.path.join(a.out, d), exist_ok=True)
    dump(os.path.join(a.out, "model_index.json"), MODEL_INDEX)
    dump(os.path.join(a.out, "scheduler", "scheduler_config.json"), SCHEDULER)
    dump(os.path.join(a.out, "unet", "config.json"), unet_config())
    dump(os.path.join(a.out, "vae", "config.json"), vae_config(scale))
    dump(os.path.join(a.out, "text_encoder", "config.json"), text_config())
    write_safetensors(os.path.join(a.out, "unet", "diffusion_pytorch_model.safetensors"), un)
    write_safetensors(os.path.join(a.out, "vae", "diffusion_pytorch_model.safetensors"), vae)
    write_safetensors(os.path.join(a.out, "text_encoder", "model.safetensors"), te)
    total = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(a.out) for f in fs)
    print(f"exported to {a.out}: {total / 1e6:.1f} MB")


if __name__ == "__main__":
    main()

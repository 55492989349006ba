#!/usr/bin/env python3
"""Checks that the C engine reproduces the PyTorch demo model: builds a
golden-check case (CHECKING.md contract) from the exported folder, with the
PyTorch outputs of the exported f16 weights computed in float32, and runs
golden-check on it. Records: text encoder (2 prompts), one U-Net call
(batch 2, real prompts), VAE encode and decode. Tolerance: max rel err 1e-3.

    /usr/bin/python3 tools/train/check_engine.py [--model models/demo] [--golden-check build/golden-check]
"""
import argparse
import json
import os
import struct
import subprocess
import tempfile

import numpy as np
import torch

import recipe
from model import AutoencoderKL, CLIPTextModel, UNet2DConditionModel

TOL = 1e-3
DT = {"F16": np.float16, "F32": np.float32, "I32": np.int32}


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        arr = np.frombuffer(data[a:b], dtype=DT[v["dtype"]]).reshape(v["shape"])
        out[k] = torch.from_numpy(arr.astype(np.float32))
    return out


def write_safetensors(path, tensors):
    header, blobs, off = {}, [], 0
    for k, t in tensors.items():
        a = t.numpy()
        kind = "I32" if a.dtype == np.int32 else "F32"
        b = a.astype(np.int32 if kind == "I32" else np.float32).tobytes()
        header[k] = {"dtype": kind, "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(recipe.ROOT, "models", "demo"))
    ap.add_argument("--golden-check", default=None)
    a = ap.parse_args()
    gc = a.golden_check
    if not gc:
        for d in ("build-demo", "build"):
            p = os.path.join(recipe.ROOT, d, "golden-check")
            if os.path.exists(p):
                gc = p
                break
    torch.manual_seed(0)
    te = CLIPTextModel(recipe.TEXT_CFG)
    te.load_state_dict(read_safetensors(os.path.join(a.model, "text_encoder", "model.safetensors")))
    unet = UNet2DConditionModel(recipe.UNET_CFG, recipe.MOE_CFG)
    unet.load_state_dict(read_safetensors(os.path.join(a.model, "unet", "diffusion_pytorch_model.safetensors")))
    vae = AutoencoderKL(recipe.VAE_CFG)
    vae.load_state_dict(read_safetensors(os.path.join(a.model, "vae", "diffusion_pytorch_model.safetensors")))
    prompts = ["a large red circle on the left on a blue background", ""]
    ids = torch.tensor(recipe.tokenize(prompts), dtype=torch.int32)
    g = torch.Generator().manual_seed(3)
    sample = torch.randn(2, 4, 16, 16, generator=g)
    t = torch.tensor([981.0, 301.0])
    img = torch.rand(1, 3, 64, 64, generator=g) * 2 - 1
    with torch.no_grad():
        ctx = te(ids.long())
        eps, _ = unet(sample, t, ctx)
        mean, logvar = vae.encode(img)
        with open(os.path.join(a.model, "vae", "config.json")) as f:
            sf = json.load(f)["scaling_factor"]
        dec = vae.decode(sample[:1] / sf)  # the record is the scaled latent
    gold = {"text_encoder.ids": ids, "text_encoder.last_hidden_state": ctx,
            "unet.call0.sample": sample, "unet.call0.timestep": t, "unet.call0.encoder_hidden_states": ctx,
            "unet.call0.eps": eps, "vae.encode.image": img, "vae.encode.mean": mean,
            "vae.encode.logvar": logvar, "vae.decode.latent": sample[:1], "vae.decode.output": dec}
    with tempfile.TemporaryDirectory() as d:
        for sub in ("model_index.json", "unet", "vae", "text_encoder", "scheduler"):
            os.symlink(os.path.abspath(os.path.join(a.model, sub)), os.path.join(d, sub))
        meta = {"case": "demo-model", "tensors": {k: {"shape": list(v.shape), "tolerance": TOL}
                                                   for k, v in gold.items()}}
        meta["tensors"]["text_encoder.ids"]["tolerance"] = 0.0
        with open(os.path.join(d, "golden.json"), "w") as f:
            json.dump(meta, f)
        write_safetensors(os.path.join(d, "golden.safetensors"), gold)
        r = subprocess.run([gc, d], capture_output=True, text=True)
        print(r.stdout, end="")
        print(r.stderr, end="")
    raise SystemExit(r.returncode)


if __name__ == "__main__":
    main()

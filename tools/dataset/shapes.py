#!/usr/bin/env python3
"""Procedural captioned shapes: the demo model's training and evaluation data.

A scene is one or two flat-coloured objects (circle, square, triangle, star,
ring; small or large; left/right/top/bottom/center) on a solid or two-tone
background, drawn at 64x64 (rendered 4x larger and box-filtered, so edges are
anti-aliased). Every scene has a natural-language caption such as
"a small red circle on the left on a blue background".

Held-out split: a fixed 10% of the (object colour, shape, background colour)
triples never appears in training, in any role (single object, either object
of a pair, either half of a two-tone background). The evaluator prompts only
with held-out triples, so every evaluated prompt is a combination the model
has not seen, although each attribute on its own has been seen. The choice is
a pure function of the names (see is_held_out), so it never drifts.

Everything is deterministic given the seed (numpy PCG64).

    python3 tools/dataset/shapes.py --count 16 --seed 1 --out /tmp/shapes.npz
    python3 tools/dataset/shapes.py --heldout     # lists the held-out triples
"""
import argparse
import json
import math

import numpy as np
from PIL import Image, ImageDraw

SUPER = 4  # render scale before box-filtering down to SIZE

from spec import (COLOURS, JITTER, PAIR_RADIUS, PALETTE, POSITION_TEXT, POSITIONS, SHAPES,  # noqa: E402
                  SIZE, SIZES, held_out_triples, is_held_out)


def _backgrounds(scene):
    bg = scene["background"]
    return bg if isinstance(bg, list) else [bg]


def scene_is_train(scene):
    """A scene may be used for training when none of its triples is held out."""
    return not any(is_held_out(o["colour"], o["shape"], b)
                   for o in scene["objects"] for b in _backgrounds(scene))


def sample_scene(rng, allow_held_out=False):
    """Draws a random scene (dict of names and jittered geometry)."""
    while True:
        two_tone = rng.random() < 0.15
        bgs = [str(c) for c in rng.choice(COLOURS, size=2 if two_tone else 1, replace=False)]
        objects = []
        if rng.random() < 0.25:
            pair = [("left", "right"), ("top", "bottom")][rng.integers(2)]
            for pos in pair:
                objects.append({"shape": str(rng.choice(SHAPES)), "size": None, "position": pos})
        else:
            objects.append({"shape": str(rng.choice(SHAPES)),
                            "size": str(rng.choice(list(SIZES))),
                            "position": str(rng.choice(list(POSITIONS)))})
        for o in objects:
            o["colour"] = str(rng.choice([c for c in COLOURS if c not in bgs]))
            o["jitter"] = [float(v) for v in rng.uniform(-JITTER, JITTER, size=2)]
            o["angle"] = float(rng.uniform(-8.0, 8.0)) if o["shape"] in ("square", "triangle", "star") else 0.0
        if len(objects) == 2 and objects[0]["colour"] == objects[1]["colour"] \
                and objects[0]["shape"] == objects[1]["shape"]:
            continue
        scene = {"background": bgs if two_tone else bgs[0], "objects": objects,
                 "split": ["vertical", "horizontal"][rng.integers(2)] if two_tone else None}
        if allow_held_out or scene_is_train(scene):
            return scene


def _polygon(cx, cy, r, shape, angle_deg):
    a0 = math.radians(angle_deg) - math.pi / 2
    if shape == "square":
        h = r * 0.85
        pts = [(-h, -h), (h, -h), (h, h), (-h, h)]
        ca, sa = math.cos(math.radians(angle_deg)), math.sin(math.radians(angle_deg))
        return [(cx + x * ca - y * sa, cy + x * sa + y * ca) for x, y in pts]
    if shape == "triangle":
        # Centroid at the centre; pointing up.
        return [(cx + r * math.cos(a0 + k * 2 * math.pi / 3),
                 cy + r * 1.0 * math.sin(a0 + k * 2 * math.pi / 3) + r * 0.1) for k in range(3)]
    if shape == "star":
        pts = []
        for k in range(10):
            rr = r if k % 2 == 0 else r * 0.45
            a = a0 + k * math.pi / 5
            pts.append((cx + rr * math.cos(a), cy + rr * math.sin(a)))
        return pts
    raise ValueError(shape)


def render(scene):
    """64x64x3 uint8 image of a scene."""
    n = SIZE * SUPER
    bgs = _backgrounds(scene)
    img = Image.new("RGB", (n, n), PALETTE[bgs[0]])
    d = ImageDraw.Draw(img)
    if len(bgs) == 2:
        box = (n // 2, 0, n, n) if scene["split"] == "vertical" else (0, n // 2, n, n)
        d.rectangle(box, fill=PALETTE[bgs[1]])
    for o in scene["objects"]:
        r = (SIZES[o["size"]] if o["size"] else PAIR_RADIUS) * SUPER
        cx, cy = POSITIONS[o["position"]]
        cx = (cx + o["jitter"][0]) * SUPER
        cy = (cy + o["jitter"][1]) * SUPER
        col = PALETTE[o["colour"]]
        if o["shape"] == "circle":
            d.ellipse((cx - r, cy - r, cx + r, cy + r), fill=col)
        elif o["shape"] == "ring":
            d.ellipse((cx - r, cy - r, cx + r, cy + r), outline=col, width=int(round(r * 0.42)))
        else:
            d.polygon(_polygon(cx, cy, r, o["shape"], o["angle"]), fill=col)
    img = img.resize((SIZE, SIZE), Image.BOX)
    return np.asarray(img, dtype=np.uint8)


def caption(scene, rng=None, drop_size=0.0, drop_position=0.0):
    """Natural-language caption. With rng, size and position words of a single
    object are each dropped with the given probabilities (so that short
    prompts like "a red circle on a blue background" also work)."""
    def phrase(o, with_size, with_pos):
        words = []
        if with_size and o["size"]:
            words.append(o["size"])
        words += [o["colour"], o["shape"]]
        words.insert(0, "an" if words[0][0] in "aeiou" else "a")
        if with_pos:
            words.append(POSITION_TEXT[o["position"]])
        return " ".join(words)

    objs = scene["objects"]
    keep_size = keep_pos = True
    if rng is not None and len(objs) == 1:
        keep_size = rng.random() >= drop_size
        keep_pos = rng.random() >= drop_position
    text = " and ".join(phrase(o, keep_size, keep_pos or len(objs) == 2) for o in objs)
    bgs = _backgrounds(scene)
    return f"{text} on a {' and '.join(bgs)} background"


def make_dataset(count, seed, drop_size=0.25, drop_position=0.25):
    """count training scenes: (images uint8 [N,64,64,3], captions, scenes)."""
    rng = np.random.default_rng(seed)
    images = np.empty((count, SIZE, SIZE, 3), dtype=np.uint8)
    captions, scenes = [], []
    for i in range(count):
        s = sample_scene(rng)
        images[i] = render(s)
        captions.append(caption(s, rng, drop_size, drop_position))
        scenes.append(s)
    return images, captions, scenes


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=16)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", help="write images + captions to this .npz")
    ap.add_argument("--grid", help="write a PNG contact sheet of the first 16")
    ap.add_argument("--heldout", action="store_true", help="print the held-out triples as JSON")
    a = ap.parse_args()
    if a.heldout:
        print(json.dumps(held_out_triples()))
        return
    imgs, caps, _ = make_dataset(a.count, a.seed)
    if a.out:
        np.savez_compressed(a.out, images=imgs, captions=np.array(caps))
    if a.grid:
        k = min(16, len(imgs))
        sheet = np.zeros((SIZE * 4, SIZE * 4, 3), np.uint8)
        for i in range(k):
            sheet[(i // 4) * SIZE:(i // 4 + 1) * SIZE, (i % 4) * SIZE:(i % 4 + 1) * SIZE] = imgs[i]
        Image.fromarray(sheet).save(a.grid)
    for c in caps[:16]:
        print(c)


if __name__ == "__main__":
    main()

"""The vocabulary of the procedural shapes data set (standard library only,
so the evaluator can use it without numpy or PIL): palette, shapes, sizes,
positions, the held-out split and the evaluation prompts."""
import hashlib
import random

SIZE = 64

# Names and sRGB values; chosen far apart so the nearest palette entry of a
# slightly-off colour is still the intended one.
PALETTE = {
    "red": (220, 30, 30),
    "orange": (255, 140, 0),
    "yellow": (250, 230, 40),
    "green": (30, 160, 50),
    "cyan": (0, 210, 230),
    "blue": (30, 60, 220),
    "purple": (130, 40, 180),
    "pink": (255, 130, 200),
    "brown": (120, 70, 20),
    "black": (15, 15, 15),
    "white": (245, 245, 245),
    "gray": (128, 128, 128),
}
COLOURS = list(PALETTE)
SHAPES = ["circle", "square", "triangle", "star", "ring"]
SIZES = {"small": 10.0, "large": 15.0}  # radius in pixels at 64x64
PAIR_RADIUS = 10.0  # objects of a pair are drawn at this radius and not sized in text
POSITIONS = {
    "left": (18.0, 32.0),
    "right": (46.0, 32.0),
    "top": (32.0, 18.0),
    "bottom": (32.0, 46.0),
    "center": (32.0, 32.0),
}
POSITION_TEXT = {
    "left": "on the left",
    "right": "on the right",
    "top": "at the top",
    "bottom": "at the bottom",
    "center": "in the center",
}
JITTER = 2.0  # uniform +-pixels added to an object's centre


def is_held_out(colour, shape, background):
    """True for the 10% of (colour, shape, background) triples kept out of training."""
    h = hashlib.sha256(f"{colour}|{shape}|{background}".encode()).digest()
    return h[0] % 10 == 0


def _triples(held_out):
    return [(c, s, b) for c in COLOURS for s in SHAPES for b in COLOURS
            if c != b and is_held_out(c, s, b) == held_out]


def held_out_triples():
    return _triples(True)



def caption_of(colour, shape, size, position, background):
    """Full single-object caption, e.g. "a small red circle on the left on a blue background"."""
    words = ([size] if size else []) + [colour, shape]
    art = "an" if words[0][0] in "aeiou" else "a"
    return f"{art} {' '.join(words)} {POSITION_TEXT[position]} on a {background} background"


def seen_triples():
    return _triples(False)


def eval_prompts(count, seed=7, split="held-out"):
    """count evaluation prompts, all over held-out (colour, shape, background)
    triples: every triple once (in a seeded order, so any prefix covers many
    triples), then random ones; size and position drawn at random. Each item
    is a dict of the attributes plus "prompt". split="seen": triples that
    training did see instead (a validation set for choosing sampling
    settings, so that the held-out set stays unseen by those choices too)."""
    rng = random.Random(seed)
    triples = held_out_triples() if split == "held-out" else seen_triples()
    rng.shuffle(triples)
    out = []
    for i in range(count):
        c, s, b = triples[i] if i < len(triples) else rng.choice(triples)
        size, pos = rng.choice(sorted(SIZES)), rng.choice(list(POSITIONS))
        out.append({"colour": c, "shape": s, "size": size, "position": pos, "background": b,
                    "prompt": caption_of(c, s, size, pos, b)})
    return out

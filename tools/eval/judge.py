"""Deterministic judging of a generated 64x64 shapes image (standard library
only). The image is labelled pixel by pixel with the nearest palette colour;
the background is the majority label of the 2-pixel border, the object is
every other pixel, its colour the majority label among them. The shape is
the template (circle, square, triangle, star, ring, drawn at the object's
centroid with the radius that gives the object's area) with the best
intersection-over-union with the object mask; the position is the nearest
anchor to the centroid; the size is small/large by the fitted radius.
"""
import math
import os
import struct
import sys
import zlib

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "dataset"))
import spec  # noqa: E402

# Area of each template as a multiple of radius^2 (matching tools/dataset/shapes.py).
AREA = {
    "circle": math.pi,
    "square": (2 * 0.85) ** 2,
    "triangle": 3 * math.sqrt(3) / 4,
    "star": 10 * 0.5 * 0.45 * math.sin(math.pi / 5),
    "ring": math.pi * (1 - 0.58 ** 2),
}


def read_png(path):
    """8-bit RGB/RGBA non-interlaced PNG -> (width, height, rows of (r,g,b) tuples)."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path}: not a PNG")
    pos, idat = 8, b""
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
            if depth != 8 or ctype not in (2, 6) or interlace:
                raise ValueError(f"{path}: only 8-bit RGB(A) non-interlaced PNGs are read")
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    bpp = 3 if ctype == 2 else 4
    raw = zlib.decompress(idat)
    stride = w * bpp
    prev = bytearray(stride)
    rows = []
    for y in range(h):
        ft = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if ft == 1:
                line[i] = (line[i] + a) & 255
            elif ft == 2:
                line[i] = (line[i] + b) & 255
            elif ft == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif ft == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append([tuple(line[x * bpp:x * bpp + 3]) for x in range(w)])
        prev = line
    return w, h, rows


def write_png(path, w, h, rows):
    """rows of (r,g,b) tuples -> 8-bit RGB PNG."""
    raw = b"".join(b"\x00" + bytes(v for px in row for v in px) for row in rows)

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def nearest_colour(px):
    return min(spec.COLOURS, key=lambda c: sum((a - b) ** 2 for a, b in zip(px, spec.PALETTE[c])))


def _in_polygon(x, y, pts):
    inside = False
    j = len(pts) - 1
    for i in range(len(pts)):
        xi, yi = pts[i]
        xj, yj = pts[j]
        if (yi > y) != (yj > y) and x < (xj - xi) * (y - yi) / (yj - yi) + xi:
            inside = not inside
        j = i
    return inside


def template(shape, cx, cy, r, size):
    """Set of (x, y) pixels (centres at +0.5) inside the shape."""
    if shape in ("triangle", "star", "square"):
        if shape == "square":
            h = 0.85 * r
            pts = [(cx - h, cy - h), (cx + h, cy - h), (cx + h, cy + h), (cx - h, cy + h)]
        elif shape == "triangle":
            # the centroid of the drawn triangle is its circumcentre
            pts = [(cx + r * math.cos(-math.pi / 2 + k * 2 * math.pi / 3),
                    cy + r * math.sin(-math.pi / 2 + k * 2 * math.pi / 3)) for k in range(3)]
        else:
            pts = [(cx + (r if k % 2 == 0 else 0.45 * r) * math.cos(-math.pi / 2 + k * math.pi / 5),
                    cy + (r if k % 2 == 0 else 0.45 * r) * math.sin(-math.pi / 2 + k * math.pi / 5))
                   for k in range(10)]
        return {(x, y) for y in range(size) for x in range(size)
                if abs(x + 0.5 - cx) <= r + 1 and abs(y + 0.5 - cy) <= r + 1
                and _in_polygon(x + 0.5, y + 0.5, pts)}
    out = set()
    for y in range(size):
        for x in range(size):
            d = math.hypot(x + 0.5 - cx, y + 0.5 - cy)
            if d <= r and (shape == "circle" or d >= 0.58 * r):
                out.add((x, y))
    return out


def smooth(rows):
    """4x4 average pool, then bilinear 4x upsampling (edges replicated): the
    model draws through a 16x16 latent, so judging its 64x64 output at that
    resolution, interpolated, recovers sub-block shape detail."""
    n = len(rows) // 4
    pooled = [[tuple(sum(rows[4 * by + j][4 * bx + i][c] for j in range(4) for i in range(4)) / 16.0
                     for c in range(3)) for bx in range(n)] for by in range(n)]
    out = []
    for y in range(4 * n):
        fy = min(max((y + 0.5) / 4 - 0.5, 0.0), n - 1.0)
        y0 = min(int(fy), n - 2)
        wy = fy - y0
        row = []
        for x in range(4 * n):
            fx = min(max((x + 0.5) / 4 - 0.5, 0.0), n - 1.0)
            x0 = min(int(fx), n - 2)
            wx = fx - x0
            a, b = pooled[y0][x0], pooled[y0][x0 + 1]
            c, d = pooled[y0 + 1][x0], pooled[y0 + 1][x0 + 1]
            row.append(tuple((a[k] * (1 - wx) + b[k] * wx) * (1 - wy) + (c[k] * (1 - wx) + d[k] * wx) * wy
                             for k in range(3)))
        out.append(row)
    return out


def judge(rows):
    """-> dict of judged attributes (background, colour, shape, position, size) and diagnostics."""
    rows = smooth(rows)
    size = len(rows)
    labels = [[nearest_colour(px) for px in row] for row in rows]
    border = [labels[y][x] for y in range(size) for x in range(size)
              if x < 2 or y < 2 or x >= size - 2 or y >= size - 2]
    bg = max(spec.COLOURS, key=border.count)
    bgc = spec.PALETTE[bg]
    res = {"background": bg, "colour": None, "shape": None, "position": None, "size": None}
    # Object colour: the label of non-background pixels, each weighted by its
    # distance from the background (edge mixtures count little).
    weight = {}
    for y in range(size):
        for x in range(size):
            if labels[y][x] != bg:
                d = math.dist(rows[y][x], bgc)
                weight[labels[y][x]] = weight.get(labels[y][x], 0.0) + d
    if not weight:
        return res
    col = max(weight, key=weight.get)
    res["colour"] = col
    # Object mask: pixels nearer the object colour than the background along
    # the line between the two.
    oc = spec.PALETTE[col]
    axis = [o - b for o, b in zip(oc, bgc)]
    norm = sum(v * v for v in axis) or 1.0
    obj = [(x, y) for y in range(size) for x in range(size)
           if sum((p - b) * v for p, b, v in zip(rows[y][x], bgc, axis)) / norm > 0.5]
    if len(obj) < 6:
        res["colour"] = None
        return res
    cx = sum(x + 0.5 for x, _ in obj) / len(obj)
    cy = sum(y + 0.5 for _, y in obj) / len(obj)
    mask = set(obj)
    best, best_iou, best_r = None, -1.0, 0.0
    for shape in spec.SHAPES:
        r = math.sqrt(len(obj) / AREA[shape])
        t = template(shape, cx, cy, r, size)
        iou = len(t & mask) / max(1, len(t | mask))
        if iou > best_iou:
            best, best_iou, best_r = shape, iou, r
    res["shape"] = best
    res["iou"] = round(best_iou, 3)
    res["position"] = min(spec.POSITIONS, key=lambda p: math.hypot(cx - spec.POSITIONS[p][0],
                                                                   cy - spec.POSITIONS[p][1]))
    lo, hi = spec.SIZES["small"], spec.SIZES["large"]
    res["size"] = "small" if best_r < (lo + hi) / 2 else "large"
    return res

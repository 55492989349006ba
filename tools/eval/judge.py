"""Deterministic judging of a generated 64x64 shapes image (standard library
only). The model draws through a 16x16 latent, so the image is judged at
that resolution: averaged over 4x4 blocks. The background is the majority
palette label of the outer ring of blocks. The object is the largest
connected set of blocks that differ from it; its colour is the palette
entry that, mixed with the background, best explains those blocks (so a
thin black star on white, which pools to gray, is still black); the mixing
fraction per block is the object's coverage map.
The shape is the template (circle, square, triangle, star, ring, drawn at
the coverage's centroid and at radii around the one that gives its area,
then pooled like the image) whose pooled coverage is nearest the map; the
position is the nearest anchor to the centroid; the size is small/large by
the best template's radius.
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


def _inside(shape, cx, cy, r):
    """Predicate (x, y) -> bool for a template shape (as tools/dataset/shapes.py draws it, unrotated)."""
    if shape == "circle":
        return lambda x, y: (x - cx) ** 2 + (y - cy) ** 2 <= r * r
    if shape == "ring":
        return lambda x, y: (0.58 * r) ** 2 <= (x - cx) ** 2 + (y - cy) ** 2 <= r * r
    if shape == "square":
        h = 0.85 * r
        return lambda x, y: abs(x - cx) <= h and abs(y - cy) <= h
    if shape == "triangle":
        # the centroid of the drawn triangle is its circumcentre
        pts = [(cx + r * math.cos(-math.pi / 2 + k * 2 * math.pi / 3),
                cy + r * math.sin(-math.pi / 2 + k * 2 * math.pi / 3)) for k in range(3)]
    else:
        pts = [(cx + (r if k % 2 == 0 else 0.45 * r) * math.cos(-math.pi / 2 + k * math.pi / 5),
                cy + (r if k % 2 == 0 else 0.45 * r) * math.sin(-math.pi / 2 + k * math.pi / 5))
               for k in range(10)]
    return lambda x, y: _in_polygon(x, y, pts)


def pooled_template(shape, cx, cy, r, cells, block=4):
    """{(bx, by): covered fraction} of a template drawn at full resolution
    (one sample per pixel centre) and averaged over block x block cells."""
    inside = _inside(shape, cx, cy, r)
    out = {}
    lo_x, hi_x = max(0, int(cx - r - 1)), min(cells * block, int(cx + r + 2))
    lo_y, hi_y = max(0, int(cy - r - 1)), min(cells * block, int(cy + r + 2))
    for y in range(lo_y, hi_y):
        for x in range(lo_x, hi_x):
            if inside(x + 0.5, y + 0.5):
                key = (x // block, y // block)
                out[key] = out.get(key, 0.0) + 1.0 / (block * block)
    return out


def pool(rows, block=4):
    """block x block average -> rows of float (r, g, b)."""
    n = len(rows) // block
    return [[tuple(sum(rows[block * by + j][block * bx + i][c] for j in range(block) for i in range(block))
                   / (block * block) for c in range(3)) for bx in range(n)] for by in range(n)]


# A block this far (RGB distance) from the background counts as object.
OBJECT_DISTANCE = 24.0


def largest_blob(dist):
    """The 8-connected set of blocks farther than OBJECT_DISTANCE from the
    background with the largest summed distance: the object, without the
    speckles a noisy background leaves elsewhere."""
    seen, best, best_mass = set(), set(), 0.0
    for start, d in dist.items():
        if d <= OBJECT_DISTANCE or start in seen:
            continue
        blob, todo = set(), [start]
        seen.add(start)
        while todo:
            x, y = todo.pop()
            blob.add((x, y))
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    k = (x + dx, y + dy)
                    if k not in seen and dist.get(k, 0.0) > OBJECT_DISTANCE:
                        seen.add(k)
                        todo.append(k)
        mass = sum(dist[k] for k in blob)
        if mass > best_mass:
            best, best_mass = blob, mass
    return best


def judge(rows):
    """-> dict of judged attributes (background, colour, shape, position, size) and diagnostics."""
    block = 4
    cells = pool(rows, block)
    n = len(cells)
    res = {"background": None, "colour": None, "shape": None, "position": None, "size": None}
    ring = [(x, y) for y in range(n) for x in range(n) if x in (0, n - 1) or y in (0, n - 1)]
    labels = [nearest_colour(cells[y][x]) for x, y in ring]
    bg = max(spec.COLOURS, key=labels.count)
    res["background"] = bg
    # The background as drawn (its palette value may be slightly off).
    same = [cells[y][x] for (x, y), lab in zip(ring, labels) if lab == bg]
    bgc = tuple(sum(px[c] for px in same) / len(same) for c in range(3))
    diff = {(x, y): tuple(cells[y][x][c] - bgc[c] for c in range(3)) for y in range(n) for x in range(n)}
    dist = {k: math.sqrt(sum(v * v for v in d)) for k, d in diff.items()}
    obj = {k: diff[k] for k in largest_blob(dist)}
    if len(obj) < 2:
        return res

    def unmix(colour):
        """Coverage per block and the summed squared residual of explaining
        the object blocks as colour mixed with the background."""
        axis = tuple(spec.PALETTE[colour][c] - bgc[c] for c in range(3))
        norm = sum(v * v for v in axis) or 1.0
        cover, err = {}, 0.0
        for k, d in obj.items():
            f = min(1.0, max(0.0, sum(a * b for a, b in zip(d, axis)) / norm))
            cover[k] = f
            err += sum((d[c] - f * axis[c]) ** 2 for c in range(3))
        return cover, err

    fits = {c: unmix(c) for c in spec.COLOURS if c != bg}
    col = min(fits, key=lambda c: fits[c][1])
    cover = fits[col][0]
    mass = sum(cover.values())  # in blocks
    area = mass * block * block  # in pixels
    if area < 6:
        return res
    res["colour"] = col
    cx = sum((x + 0.5) * block * f for (x, _), f in cover.items()) / mass
    cy = sum((y + 0.5) * block * f for (_, y), f in cover.items()) / mass
    best, best_err, best_r = None, float("inf"), 0.0
    for shape in spec.SHAPES:
        r0 = math.sqrt(area / AREA[shape])
        for scale in (0.9, 1.0, 1.1):
            t = pooled_template(shape, cx, cy, r0 * scale, n, block)
            err = sum((t.get(k, 0.0) - cover.get(k, 0.0)) ** 2 for k in set(t) | set(cover))
            if err < best_err:
                best, best_err, best_r = shape, err, r0 * scale
    res["shape"] = best
    res["fit_error"] = round(best_err, 3)
    res["position"] = min(spec.POSITIONS, key=lambda p: math.hypot(cx - spec.POSITIONS[p][0],
                                                                   cy - spec.POSITIONS[p][1]))
    lo, hi = spec.SIZES["small"], spec.SIZES["large"]
    res["size"] = "small" if best_r < (lo + hi) / 2 else "large"
    return res

"""Demo captioning data: two coloured shapes drawn in code, one above or beside the other.

Each image comes with the captions that describe it ("a red circle above a blue
square", "a blue square below a red circle"...), so a model has to see both the
colours, the shapes and their layout.
"""

from __future__ import annotations

import io
import random

COLOURS = {"red": (220, 30, 30), "green": (30, 170, 60), "blue": (40, 70, 220), "yellow": (235, 210, 40)}
SHAPES = ("circle", "square", "triangle")
LAYOUTS = {"above": "below", "left": "right"}


def _draw(draw, shape, colour, box):
    x0, y0, x1, y1 = box
    if shape == "circle":
        draw.ellipse(box, fill=colour)
    elif shape == "square":
        draw.rectangle(box, fill=colour)
    else:
        draw.polygon([((x0 + x1) / 2, y0), (x1, y1), (x0, y1)], fill=colour)


def image_bytes(first, second, layout, size=64, rng=None, fmt="PNG") -> bytes:
    """A ``size`` x ``size`` image: ``first`` = (shape, colour) above / left of ``second``."""
    from PIL import Image, ImageDraw

    rng = rng or random.Random(0)
    background = tuple(rng.randint(225, 255) for _ in range(3))
    img = Image.new("RGB", (size, size), background)
    draw = ImageDraw.Draw(img)
    half, s = size // 2, int(size * rng.uniform(0.28, 0.38))
    for i, (shape, colour) in enumerate((first, second)):
        jitter = lambda: rng.randint(0, max(0, half - s - 2))  # noqa: E731
        if layout == "above":
            x, y = rng.randint(2, size - s - 2), i * half + jitter()
        else:
            x, y = i * half + jitter(), rng.randint(2, size - s - 2)
        _draw(draw, shape, COLOURS[colour], (x, y, x + s, y + s))
    out = io.BytesIO()
    img.save(out, fmt)
    return out.getvalue()


def captions_for(first, second, layout) -> list[str]:
    (s1, c1), (s2, c2) = first, second
    a, b = f"a {c1} {s1}", f"a {c2} {s2}"
    if layout == "above":
        return [f"{a} above {b}", f"{b} below {a}", f"{a} is above {b}"]
    return [f"{a} left of {b}", f"{b} right of {a}", f"{a} is left of {b}"]


def examples(n: int = 240, size: int = 64, seed: int = 0) -> list[tuple[bytes, list[str]]]:
    """``n`` (PNG bytes, captions) pairs, deterministic for a seed."""
    rng = random.Random(seed)
    objects = [(s, c) for s in SHAPES for c in COLOURS]
    rows = []
    for _ in range(n):
        first, second = rng.sample(objects, 2)
        layout = rng.choice(list(LAYOUTS))
        rows.append((image_bytes(first, second, layout, size, rng), captions_for(first, second, layout)))
    return rows

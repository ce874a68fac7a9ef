"""``moving_digits``: generated videos of real handwritten digits moving on a canvas.

Made the way Moving MNIST is made, from the 1,797 real 8x8 handwritten digits that
scikit-learn ships (``sklearn.datasets.load_digits``, no download). Each video shows
one digit (its 0..16 ink scaled to 0..255) on a black ``canvas`` x ``canvas`` frame.
The label of every frame is the **direction of motion** -- ``still``, ``left``,
``right``, ``up``, ``down`` -- which changes at random points: the video is a chain
of segments of 3 to 12 frames, each with a new direction the digit has room for, at
``speed`` pixels a frame (a segment also ends where the digit would leave the
canvas). Frame ``t``'s label is the move from frame ``t - 1`` to frame ``t``; frame 0
takes the label of the first move. No single frame shows its own label, so a
classifier of frames alone is near chance (plus what the position tells), and a
model with memory of the neighbouring frames is not.

Splits: the digit images are divided once (a seeded permutation: 80% / 10% / 10%)
into training, validation and test pools, and a split's videos only use its own
pool, so no digit image is in two splits. ``generate(seed, ...)`` is deterministic:
the same seed and sizes give the same videos. Sizes of the named dataset
(``--data moving_digits``): 2,000 training, 200 validation and 200 test videos of
16 to 48 frames, 32 x 32 pixels, at a nominal 10 frames per second.
"""

from __future__ import annotations

import numpy as np

LABELS = ("still", "left", "right", "up", "down")
MOVES = {"still": (0, 0), "left": (0, -1), "right": (0, 1), "up": (-1, 0), "down": (1, 0)}  # (row, col)
POOLS = (0.8, 0.1, 0.1)    # the share of the 1,797 digit images each split draws from
SEGMENT = (3, 12)          # frames per segment (a wall may end one sooner)
SIZES = {"train": 2000, "val": 200, "test": 200}
DEMO_SIZES = {"train": 64, "val": 16, "test": 16}


def digit_pools(seed: int = 0) -> dict[str, np.ndarray]:
    """The indices into ``load_digits().images`` of each split's pool (disjoint, seeded)."""
    from sklearn.datasets import load_digits

    n = len(load_digits().images)
    order = np.random.default_rng(seed).permutation(n)
    a, b = int(n * POOLS[0]), int(n * (POOLS[0] + POOLS[1]))
    return {"train": order[:a], "val": order[a:b], "test": order[b:]}


def _digits():
    from sklearn.datasets import load_digits

    return (load_digits().images * (255.0 / 16.0)).round().astype(np.uint8)  # [1797, 8, 8]


def make_video(rng, digit: np.ndarray, frames: int, canvas: int = 32, speed: int = 2
               ) -> tuple[np.ndarray, list[str]]:
    """One video ``uint8 [frames, canvas, canvas, 1]`` of ``digit`` moving, and its per-frame labels."""
    h, w = digit.shape
    room = (canvas - h, canvas - w)
    pos = [int(rng.integers(0, room[0] + 1)), int(rng.integers(0, room[1] + 1))]
    positions, moves, last = [tuple(pos)], [], None
    while len(moves) < frames - 1:
        def steps_left(name):
            dr, dc = MOVES[name]
            if name == "still":
                return SEGMENT[1]
            axis, sign = (0, dr) if dr else (1, dc)
            return (room[axis] - pos[axis] if sign > 0 else pos[axis]) // speed
        options = [m for m in LABELS if m != last and steps_left(m) >= SEGMENT[0]]
        name = str(rng.choice(options))
        length = min(int(rng.integers(SEGMENT[0], SEGMENT[1] + 1)), steps_left(name), frames - 1 - len(moves))
        dr, dc = MOVES[name]
        for _ in range(length):
            pos[0] += dr * speed
            pos[1] += dc * speed
            positions.append(tuple(pos))
            moves.append(name)
        last = name
    video = np.zeros((frames, canvas, canvas, 1), np.uint8)
    for t, (r, c) in enumerate(positions):
        video[t, r:r + h, c:c + w, 0] = digit
    return video, [moves[0]] + moves


def generate(seed: int = 0, sizes: dict | None = None, frames: tuple[int, int] = (16, 48), canvas: int = 32,
             speed: int = 2) -> dict[str, list[tuple[str, np.ndarray, list[str]]]]:
    """``{"train", "val", "test"}`` -> ``[(name, video, labels), ...]`` (see the module docstring)."""
    if canvas < 8 + 2 * speed * SEGMENT[0]:
        raise ValueError(f"a canvas of {canvas} pixels leaves a digit no room to move at speed {speed}")
    images, pools = _digits(), digit_pools(seed)
    out = {}
    for k, (split, n) in enumerate((sizes or SIZES).items()):
        rng = np.random.default_rng([seed, k])
        videos = []
        for i in range(n):
            index = int(rng.choice(pools[split]))
            video, labels = make_video(rng, images[index], int(rng.integers(frames[0], frames[1] + 1)), canvas, speed)
            videos.append((f"{split}-{i:05d}-digit{index}", video, labels))
        out[split] = videos
    return out

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

Training never makes a split up front: :func:`generated_splits` runs the generator's
random draws once without painting a pixel (the plan: each video's generator state,
digit and length, 29 bytes a video) and :class:`DigitsSplit` paints video ``i`` from
its state when asked, so any video can be made alone, in any order, and is the same
video :func:`generate` makes at index ``i``.
"""

from __future__ import annotations

import functools

import numpy as np

from tasks.video_frames.data import VideoStream

LABELS = ("still", "left", "right", "up", "down")
MOVES = {"still": (0, 0), "left": (0, -1), "right": (0, 1), "up": (-1, 0), "down": (1, 0)}  # (row, col)
POOLS = (0.8, 0.1, 0.1)    # the share of the 1,797 digit images each split draws from
SEGMENT = (3, 12)          # frames per segment (a wall may end one sooner)
SIZES = {"train": 2000, "val": 200, "test": 200}
DEMO_SIZES = {"train": 64, "val": 16, "test": 16}


@functools.lru_cache(maxsize=None)
def digit_pools(seed: int = 0) -> dict[str, np.ndarray]:
    """The indices into ``load_digits().images`` of each split's pool (disjoint, seeded)."""
    n = len(_digits())
    order = np.random.default_rng(seed).permutation(n)
    a, b = int(n * POOLS[0]), int(n * (POOLS[0] + POOLS[1]))
    return {"train": order[:a], "val": order[a:b], "test": order[b:]}


@functools.lru_cache(maxsize=1)
def _digits():
    from sklearn.datasets import load_digits

    digits = (load_digits().images * (255.0 / 16.0)).round().astype(np.uint8)  # [1797, 8, 8]
    digits.flags.writeable = False  # shared by every caller
    return digits


def motion(rng, shape: tuple[int, int], frames: int, canvas: int = 32, speed: int = 2
           ) -> tuple[list[tuple[int, int]], list[str]]:
    """The random part of a video: where a digit of ``shape`` is in each of ``frames`` frames, and
    the per-frame labels (the draws :func:`make_video` makes, without painting)."""
    h, w = shape
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
    return positions, [moves[0]] + moves


def paint(digit: np.ndarray, positions, canvas: int = 32) -> np.ndarray:
    """``uint8 [len(positions), canvas, canvas, 1]``: ``digit`` at each position on black."""
    h, w = digit.shape
    video = np.zeros((len(positions), canvas, canvas, 1), np.uint8)
    for t, (r, c) in enumerate(positions):
        video[t, r:r + h, c:c + w, 0] = digit
    return video


def make_video(rng, digit: np.ndarray, frames: int, canvas: int = 32, speed: int = 2
               ) -> tuple[np.ndarray, list[str]]:
    """One video ``uint8 [frames, canvas, canvas, 1]`` of ``digit`` moving, and its per-frame labels."""
    positions, labels = motion(rng, digit.shape, frames, canvas, speed)
    return paint(digit, positions, canvas), labels


def generate(seed: int = 0, sizes: dict | None = None, frames: tuple[int, int] = (16, 48), canvas: int = 32,
             speed: int = 2) -> dict[str, list[tuple[str, np.ndarray, list[str]]]]:
    """``{"train", "val", "test"}`` -> ``[(name, video, labels), ...]`` (see the module docstring)."""
    _check(canvas, speed)
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


def _check(canvas: int, speed: int) -> None:
    if canvas < 8 + 2 * speed * SEGMENT[0]:
        raise ValueError(f"a canvas of {canvas} pixels leaves a digit no room to move at speed {speed}")


# -- made when asked ------------------------------------------------------------------------------------
_MASK = (1 << 64) - 1


class DigitsSplit(VideoStream):
    """One split of :func:`generate`'s videos, each painted when asked (see the module docstring):
    ``item(i)`` is ``(name, video, labels)``, equal to ``generate(...)[split][i]``. ``plan`` holds per
    video the generator's state before it (``hi``, ``lo``, ``has32``, ``u32``), its ``digit`` and
    ``length``; ``inc`` is the generator's stream (one per split)."""

    channels = 1

    def __init__(self, role: str, plan: dict, inc: int, seed: int, frames: tuple[int, int], canvas: int, speed: int,
                 fps: float):
        self.role, self.plan, self.inc, self.seed = role, plan, inc, seed
        self.frames, self.canvas, self.speed, self.fps = frames, canvas, speed, fps
        self.n = len(plan["length"])
        lengths, counts = np.unique(plan["length"], return_counts=True)
        self.length_counts = {int(a): int(b) for a, b in zip(lengths, counts)}
        self.first_seen = plan["first_seen"]

    def _rng(self, i: int):
        p = self.plan
        rng = np.random.Generator(np.random.PCG64())
        rng.bit_generator.state = {"bit_generator": "PCG64", "has_uint32": int(p["has32"][i]),
                                   "uinteger": int(p["u32"][i]),
                                   "state": {"state": (int(p["hi"][i]) << 64) | int(p["lo"][i]), "inc": self.inc}}
        return rng

    def _draw(self, i: int):
        """``(rng, digit index, frames)`` at the start of video ``i``: the draws :func:`generate` makes first."""
        rng = self._rng(i)
        index = int(rng.choice(digit_pools(self.seed)[self.role]))
        return rng, index, int(rng.integers(self.frames[0], self.frames[1] + 1))

    def name(self, i: int) -> str:
        return f"{self.role}-{i:05d}-digit{int(self.plan['digit'][i])}"

    def labels_of(self, i: int) -> list[str]:
        rng, _, frames = self._draw(i)
        return motion(rng, _digits().shape[1:], frames, self.canvas, self.speed)[1]

    def item(self, i: int):
        rng, index, frames = self._draw(i)
        video, labels = make_video(rng, _digits()[index], frames, self.canvas, self.speed)
        return self.name(i), video, labels


def generated_splits(seed: int = 0, sizes: dict | None = None, frames: tuple[int, int] = (16, 48),
                     canvas: int = 32, speed: int = 2, fps: float = 10.0) -> dict[str, DigitsSplit]:
    """``{"train", "val", "test"}`` -> :class:`DigitsSplit`: the videos :func:`generate` makes with the
    same arguments, planned in one pass of the generator's draws (no pixels) and painted when asked."""
    _check(canvas, speed)
    pools, shape, out = digit_pools(seed), _digits().shape[1:], {}
    for k, (split, n) in enumerate((sizes or SIZES).items()):
        rng = np.random.default_rng([seed, k])
        inc = rng.bit_generator.state["state"]["inc"]
        plan = {"hi": np.empty(n, np.uint64), "lo": np.empty(n, np.uint64), "has32": np.empty(n, np.uint8),
                "u32": np.empty(n, np.uint32), "digit": np.empty(n, np.int32), "length": np.empty(n, np.int32)}
        first_seen: dict[str, int] = {}
        for i in range(n):
            state = rng.bit_generator.state
            plan["hi"][i], plan["lo"][i] = state["state"]["state"] >> 64, state["state"]["state"] & _MASK
            plan["has32"][i], plan["u32"][i] = state["has_uint32"], state["uinteger"]
            index = int(rng.choice(pools[split]))
            length = int(rng.integers(frames[0], frames[1] + 1))
            _, labels = motion(rng, shape, length, canvas, speed)
            plan["digit"][i], plan["length"][i] = index, length
            for label in labels:
                first_seen.setdefault(label, i)
        plan["first_seen"] = first_seen
        out[split] = DigitsSplit(split, plan, inc, seed, frames, canvas, speed, fps)
    return out

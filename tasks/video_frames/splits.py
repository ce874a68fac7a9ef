"""The splits of a video_frames source: generated (``demo``, ``moving_digits``) or a folder, each a
:class:`~tasks.video_frames.data.VideoStream` (this module joins :mod:`tasks.video_frames.data` and
:mod:`tasks.video_frames.moving_digits`, which subclasses its stream)."""

from __future__ import annotations

from seqapps.core.errors import DataError
from tasks.video_frames.data import folder_splits


def load_video_splits(d, task: str, data_dir=None, verbose: bool = True):
    """The :class:`~seqapps.core.task.Splits` of ``d.source``, each a :class:`VideoStream`: ``demo`` and
    ``moving_digits`` are generated when asked (:mod:`tasks.video_frames.moving_digits`, their own
    disjoint splits), a folder is listed and fitted as above."""
    from tasks.video_frames import moving_digits
    from seqapps.data.sources import resolve
    from seqapps.core.task import Splits

    source = resolve(d.source, task, data_dir)
    if source.kind == "demo" or source.options.get("generated"):
        demo = source.kind == "demo"
        sizes = moving_digits.DEMO_SIZES if demo else {"train": d.videos, "val": max(1, d.videos // 10),
                                                       "test": max(1, d.videos // 10)}
        frames = (8, 20) if demo else (d.min_frames, d.max_frames)
        if not 1 <= frames[0] <= frames[1] <= d.max_length:
            raise DataError(f"moving_digits: need 1 <= data.min_frames <= data.max_frames <= data.max_length, "
                            f"got {frames[0]}, {frames[1]}, {d.max_length}")
        try:
            parts = moving_digits.generated_splits(d.seed, sizes, frames, d.canvas, d.speed, d.fps or 10.0)
        except ValueError as e:
            raise DataError(f"moving_digits: {e}") from None
        fit = {"sizes": [f"{d.canvas}x{d.canvas}"], "bad": 0, "first_bad": "",
               "videos": {k: v.n for k, v in parts.items()},
               "frames": {k: int(v.plan["length"].sum()) for k, v in parts.items()}}
        return Splits(parts["train"], parts["val"], parts["test"], {"labels": list(moving_digits.LABELS), "fit": fit})
    if source.kind != "path" or not source.paths["path"].is_dir():
        raise DataError(f"{source.spec}: {task} reads demo, moving_digits or a folder of videos with labels.csv")
    parts = folder_splits(source.paths["path"], d, task, verbose)
    return Splits(parts["train"], parts["val"], parts["test"], {"fit": parts["fit"]})

"""Videos on the Python side: decoding files, reading labelled folders, and training batches.

Decoding (:func:`read_video`) uses PyAV (FFmpeg; pinned in requirements.txt) for
video files (``.mp4``, ``.avi``, ``.webm``, ``.mov``, ``.mkv``, ``.gif``...) and Pillow
for a folder of frame images (sorted by name, all the same size). Frames are sampled
at ``fps`` frames per second from their timestamps (``fps=0`` keeps every frame) and
a video is cut at ``max_frames`` (with a warning). Every failure -- a missing file,
text named ``.mp4``, a corrupt or truncated stream, no video stream, zero frames,
frames of different sizes -- is one :class:`DataError` line.

A labelled folder (``--data DIR``) holds video files and/or frame folders and a
``labels.csv`` with per-frame labels (``video,frame,label``) or segments
(``video,start,end,label``; frame indices of the original video, ``end``
exclusive); ``video`` is a file or folder name in DIR. Subfolders ``train/``,
``val/`` (or ``dev/``, ``valid/``, ``validation/``) and ``test/``, each such a folder,
are the splits; otherwise the folder is one piece, split by the data fractions in
name order. Labels for frames a video does not have, and overlapping segments, are
errors naming the video.
"""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import numpy as np

from tasks.video_frames.segments import to_frames
from seqapps.core.errors import DataError

VIDEO_SUFFIXES = (".mp4", ".avi", ".webm", ".mov", ".mkv", ".m4v", ".mpg", ".mpeg", ".gif")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
SPLIT_DIRS = {"train": ("train",), "val": ("val", "dev", "valid", "validation"), "test": ("test",)}


@dataclasses.dataclass
class Clip:
    """Decoded frames ``uint8 [T, H, W, C]``, the original index and time (s) of each, how many frames
    the source has (None when it was cut before its end) and a warning."""

    frames: np.ndarray
    indices: list[int]
    times: list[float]
    total: int | None = None
    warning: str | None = None


@dataclasses.dataclass
class VideoSet:
    """Labelled videos: ``videos[i]`` is ``uint8 [T, H, W, C]`` (C = 1 or 3), ``labels[i]`` one label per frame."""

    names: list[str]
    videos: list[np.ndarray]
    labels: list[list[str]]
    fps: float = 10.0

    def __len__(self):
        return len(self.names)

    def subset(self, idx) -> "VideoSet":
        idx = list(idx)
        return VideoSet([self.names[i] for i in idx], [self.videos[i] for i in idx],
                        [self.labels[i] for i in idx], self.fps)


def _what(blob: bytes) -> str:
    start = blob[:12]
    return "text" if all(32 <= c < 127 or c in (9, 10, 13) for c in start) else "unknown data"


def read_video(source, fps: float = 0.0, max_frames: int = 1000) -> Clip:
    """Decode a video file or a folder of frame images (see the module docstring)."""
    path = Path(source).expanduser()
    if path.is_dir():
        return _read_frame_folder(path, max_frames)
    if not path.is_file():
        raise DataError(f"{path}: no such file or folder")
    import av

    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as e:
        head = path.read_bytes()[:12]
        kind = "empty file (0 bytes)" if not head else f"it starts with {_what(head)} {head!r}"
        raise DataError(f"{path}: not a video FFmpeg can read ({kind}; {type(e).__name__})") from None
    frames, indices, times, warning, total = [], [], [], None, 0
    with container:
        if not container.streams.video:
            raise DataError(f"{path}: no video stream (a truncated file, or audio or other data only)")
        stream = container.streams.video[0]
        next_time = 0.0
        try:
            for i, frame in enumerate(container.decode(stream)):
                total = i + 1
                t = float(frame.time) if frame.time is not None else i / float(stream.average_rate or 25)
                if fps and t + 1e-6 < next_time:
                    continue
                if len(frames) >= max_frames:
                    warning, total = f"cut at {max_frames} frames (data.max_length)", None
                    break
                next_time = t + 1.0 / fps if fps else 0.0
                frames.append(frame.to_ndarray(format="rgb24"))
                indices.append(i)
                times.append(t)
        except av.error.FFmpegError as e:
            if not frames:
                raise DataError(f"{path}: corrupt or truncated video ({type(e).__name__}: {e})") from None
            warning = f"the stream is damaged after frame {indices[-1]}; kept the {len(frames)} frames before it"
    if not frames:
        raise DataError(f"{path}: the video has no frames")
    return Clip(np.stack(frames), indices, times, total, warning)


def _read_frame_folder(folder: Path, max_frames: int) -> Clip:
    from PIL import Image

    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"{folder}: a frame folder with no images ({', '.join(IMAGE_SUFFIXES)})")
    warning = f"cut at {max_frames} frames (data.max_length)" if len(files) > max_frames else None
    frames = []
    for p in files[:max_frames]:
        try:
            frames.append(np.asarray(Image.open(p).convert("RGB")))
        except Exception as e:  # PIL raises several kinds
            raise DataError(f"{p}: not a readable image ({type(e).__name__})") from None
        if frames[-1].shape != frames[0].shape:
            raise DataError(f"{folder}: frames of different sizes ({files[0].name} is {frames[0].shape[1]}x"
                            f"{frames[0].shape[0]}, {p.name} is {frames[-1].shape[1]}x{frames[-1].shape[0]})")
    n = len(frames)
    return Clip(np.stack(frames), list(range(n)), [float(i) for i in range(n)], None if warning else n, warning)


def write_video(path, frames, fps: float = 10.0) -> Path:
    """Write ``uint8 [T, H, W, C]`` frames as a video file (codec from the suffix: mp4/avi mpeg4, webm vp8, gif)."""
    import av

    path, frames = Path(path), np.asarray(frames, np.uint8)
    if frames.shape[-1] == 1:
        frames = np.repeat(frames, 3, axis=-1)
    codec, fmt = {".webm": ("libvpx", "yuv420p"), ".gif": ("gif", "rgb8")}.get(path.suffix.lower(),
                                                                                ("mpeg4", "yuv420p"))
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=int(round(fps)))
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], fmt
        if codec == "mpeg4":
            stream.options = {"qscale": "1"}
        for image in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        out.mux(stream.encode(None))
    return path


def encode_frames(frames) -> list[bytes]:
    """``uint8 [T, H, W, C]`` -> one PNG per frame (lossless: the export sees the same pixels)."""
    from PIL import Image

    out = []
    for image in np.asarray(frames, np.uint8):
        buf = io.BytesIO()
        Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(buf, "PNG", compress_level=1)
        out.append(buf.getvalue())
    return out


# -- labelled folders ----------------------------------------------------------------------------
def read_labels(path: Path) -> dict[str, list]:
    """``labels.csv`` -> ``{video: [(frame, label), ...]}`` or ``{video: [(start, end, label), ...]}``."""
    import pandas as pd

    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: cannot read the labels ({e})") from None
    cols = [c.strip().lower() for c in table.columns]
    table.columns = cols
    kind = ("frame",) if {"video", "frame", "label"} <= set(cols) else \
        ("start", "end") if {"video", "start", "end", "label"} <= set(cols) else None
    if kind is None:
        raise DataError(f"{path}: expected columns video,frame,label (per frame) or video,start,end,label "
                        f"(segments), got {','.join(cols)}")
    out: dict[str, list] = {}
    for row, r in enumerate(table.itertuples(index=False), start=2):
        try:
            numbers = [int(getattr(r, c)) for c in kind]
        except ValueError:
            raise DataError(f"{path}, line {row}: {'/'.join(kind)} must be whole frame numbers") from None
        out.setdefault(str(r.video), []).append((*numbers, str(r.label)))
    return out


def read_folder(folder: Path, fps: float, max_frames: int) -> VideoSet:
    labels_path = folder / "labels.csv"
    if not labels_path.is_file():
        raise DataError(f"{folder}: expected labels.csv (video,frame,label or video,start,end,label) beside the videos")
    names, videos, labels = [], [], []
    for name, rows in sorted(read_labels(labels_path).items()):
        clip = read_video(folder / name, fps, max_frames)
        if len(rows[0]) == 2:  # per-frame rows: each frame is a one-frame segment
            rows = [(f, f + 1, label) for f, label in rows]
        total = clip.total if clip.total is not None else max(max(r[1] for r in rows), clip.indices[-1] + 1)
        original = to_frames(rows, total, f"{folder.name}/{name}")
        names.append(name)
        videos.append(clip.frames)
        labels.append([original[i] for i in clip.indices])
    if not names:
        raise DataError(f"{labels_path}: no labelled videos")
    return VideoSet(names, videos, labels, fps or 0.0)


def split_folders(folder: Path) -> dict[str, Path]:
    """The ``train`` / ``val`` / ``test`` subfolders of ``folder`` (empty when it has no ``train``)."""
    found = {}
    for split, words in SPLIT_DIRS.items():
        hit = next((folder / w for w in words if (folder / w).is_dir()), None)
        if hit is not None:
            found[split] = hit
    return found if "train" in found else {}


# -- training batches -------------------------------------------------------------------------------
def video_batches(data: VideoSet, label_ids, size: int, batch_size: int, shuffle: bool, seed: int = 0):
    """``({"frames": float [B, T, size, size, 3] in [0, 255], "mask": [B, T]}, ids [B, T])`` batches of
    videos of similar length (ids ``1..K``, ``0`` = padding); frames are resized in the graph."""
    import math

    import tensorflow as tf

    from seqapps.data.pipeline import default_boundaries

    lengths = np.array([len(v) for v in data.videos])
    channels = data.videos[0].shape[-1] if len(data) else 3
    order = np.arange(len(data))

    def gen():
        for i in (np.random.default_rng([seed, gen.epoch]).permutation(order) if shuffle else order):
            yield data.videos[i], np.asarray(label_ids[i], np.int32)
        gen.epoch += 1
    gen.epoch = 0

    def prepare(video, ids):
        pixels = tf.image.resize(tf.cast(video, tf.float32), (size, size), antialias=True)
        return (tf.image.grayscale_to_rgb(pixels) if channels == 1 else pixels), ids

    sig = (tf.TensorSpec([None, None, None, channels], tf.uint8), tf.TensorSpec([None], tf.int32))
    ds = tf.data.Dataset.from_generator(gen, output_signature=sig).map(prepare, num_parallel_calls=2)
    boundaries = default_boundaries(int(lengths.max()) + 1 if len(lengths) else 2)
    ds = ds.bucket_by_sequence_length(lambda x, y: tf.shape(y)[0], boundaries + [int(lengths.max()) + 1],
                                      [batch_size] * (len(boundaries) + 2))
    ds = ds.map(lambda x, y: ({"frames": x, "mask": tf.cast(y > 0, tf.float32)}, y))
    bucket = np.searchsorted(boundaries + [int(lengths.max()) + 1], lengths, side="right")
    n_batches = sum(math.ceil(c / batch_size) for c in np.bincount(bucket) if c)
    return ds.apply(tf.data.experimental.assert_cardinality(n_batches)).prefetch(2)


def load_video_splits(d, task: str, data_dir=None):
    """The :class:`~seqapps.core.task.Splits` of ``d.source``: ``demo`` and ``moving_digits`` are generated
    (:mod:`tasks.video_frames.moving_digits`, their own disjoint splits), a folder is read as above."""
    from tasks.video_frames import moving_digits
    from seqapps.data.sources import complete_splits, resolve
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
            made = moving_digits.generate(d.seed, sizes, frames, d.canvas, d.speed)
        except ValueError as e:
            raise DataError(f"moving_digits: {e}") from None
        parts = {k: VideoSet([n for n, _, _ in v], [x for _, x, _ in v], [y for _, _, y in v], d.fps or 10.0)
                 for k, v in made.items()}
        return Splits(parts["train"], parts["val"], parts["test"], {"labels": list(moving_digits.LABELS)})
    if source.kind != "path" or not source.paths["path"].is_dir():
        raise DataError(f"{source.spec}: {task} reads demo, moving_digits or a folder of videos with labels.csv")
    path = source.paths["path"]
    folders = split_folders(path)
    pieces = {k: read_folder(p, d.fps, d.max_length) for k, p in folders.items()} if folders else \
        {"all": read_folder(path, d.fps, d.max_length)}
    parts = complete_splits(pieces, d.val_fraction, d.test_fraction, _split)
    return Splits(parts["train"], parts["val"], parts["test"])


def _split(data, val_fraction, test_fraction):
    from seqapps.data.splits import split

    return split(data, val_fraction, test_fraction, what="videos", unit="videos")


def clip_of(item, fps: float, max_frames: int) -> tuple[list[bytes], list[int], list[float], str | None]:
    """What a predictor sends for one item: ``(encoded frames, original frame indices, times in
    seconds, warning)`` of a path (video file or frame folder), an array ``[T, H, W(, C)]`` or a
    list of encoded frames (bytes). Raises one DataError line when it cannot."""
    step = 1.0 / fps if fps else 1.0
    if isinstance(item, (str, Path)):
        clip = read_video(item, fps, max_frames)
        return encode_frames(clip.frames), clip.indices, clip.times, clip.warning
    if isinstance(item, (list, tuple)) and all(isinstance(b, (bytes, bytearray)) for b in item):
        blobs = [bytes(b) for b in item]
    else:
        try:
            frames = np.asarray(item)
        except ValueError:  # a list of arrays of different shapes
            sizes = sorted({"x".join(map(str, np.shape(f)[:2][::-1])) for f in item})
            raise DataError(f"frames of different sizes ({', '.join(sizes[:3])}); expected one size per video") from None
        if frames.ndim == 3:
            frames = frames[..., None]
        if frames.ndim != 4 or frames.shape[-1] not in (1, 3) or frames.dtype != np.uint8:
            raise DataError(f"expected a path, encoded frames or a uint8 array [frames, height, width(, 1|3)], got "
                            f"{type(item).__name__} {getattr(frames, 'dtype', '')} {list(np.shape(frames))}")
        blobs = frames
    if len(blobs) == 0:
        raise DataError("the video has no frames")
    warning = f"cut at {max_frames} frames (data.max_length)" if len(blobs) > max_frames else None
    blobs = blobs[:max_frames]
    if not isinstance(blobs, list):
        blobs = encode_frames(blobs)
    return blobs, list(range(len(blobs))), [i * step for i in range(len(blobs))], warning


def video_items(inputs) -> tuple[list, bool]:
    """``(items, single)``: one video (a path, or a frames array) is a list of one, flagged ``single``;
    a list is several. ``None``, numbers, bytes and items of other types are a DataError naming them."""
    if isinstance(inputs, (str, Path, np.ndarray)):
        return [inputs], True
    if inputs is None or isinstance(inputs, (bytes, bytearray, dict)) or not hasattr(inputs, "__iter__"):
        raise DataError(f"videos must be a path, a frames array or a list of them, got {type(inputs).__name__}")
    items = list(inputs)
    for i, item in enumerate(items):
        if not isinstance(item, (str, Path, np.ndarray, list, tuple)):
            raise DataError(f"videos[{i}] must be a path (str or Path), a uint8 frames array or a list of encoded "
                            f"frames, got {type(item).__name__}")
    return items, False

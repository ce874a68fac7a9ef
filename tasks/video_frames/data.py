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

Nothing holds a split's videos: a split is a :class:`VideoStream` that decodes (or, for
``moving_digits``, paints) one video when asked. A folder is listed without decoding
(``labels.csv`` read row by row); one cached fitting pass
(:func:`seqapps.data.streaming.fitting_pass`, keyed by every video file's size and
modification time and the settings) decodes each video once, one at a time, and keeps
what training must know first: each video's frame count after ``fps`` sampling and
``max_length``, its labels as runs, the label set, the frame sizes and the counts. A
video that does not decode, or whose labels do not fit it, is one error line naming
it, or with ``data.skip_bad_rows=true`` left out and counted. :func:`video_stream`
makes training batches from a split: a generator decodes one video at a time in a
shuffled order (a permutation, or past ``data.shuffle_buffer`` videos a bounded
shuffle of the order), and the frames are resized in the tf.data pipeline by
:func:`tasks.video_frames.serving.frame_pixels`, what the export does to each frame.
"""

from __future__ import annotations

import dataclasses
import io
import math
import sys
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


# -- streamed splits -----------------------------------------------------------------------------------
class VideoStream:
    """One split of labelled videos, read one video at a time: ``item(i)`` is ``(name, frames uint8
    [T, H, W, C], labels)``, ``name(i)`` and ``labels_of(i)`` the same without decoding. ``length_counts``
    (``{frames: videos}``), ``first_seen`` (``{label: first video with it}``) and ``channels`` come
    from the fitting pass; ``materialize()`` is the split as a :class:`VideoSet` (what scoring reads)."""

    role: str = "train"
    n: int = 0
    fps: float = 10.0
    channels: int = 3
    length_counts: dict = {}
    first_seen: dict = {}

    def __len__(self) -> int:
        return self.n

    def item(self, i: int) -> tuple[str, np.ndarray, list[str]]:
        raise NotImplementedError

    def name(self, i: int) -> str:
        raise NotImplementedError

    def labels_of(self, i: int) -> list[str]:
        raise NotImplementedError

    @property
    def names(self) -> list[str]:
        return [self.name(i) for i in range(self.n)]

    @property
    def labels(self) -> list[list[str]]:
        return [self.labels_of(i) for i in range(self.n)]

    def items(self, order=None):
        for i in (range(self.n) if order is None else order):
            yield self.item(int(i))

    __iter__ = items

    def materialize(self) -> VideoSet:
        names, videos, labels = [], [], []
        for name, frames, y in self.items():
            names.append(name)
            videos.append(frames)
            labels.append(y)
        return VideoSet(names, videos, labels, self.fps)


def _runs(labels: list[str]) -> list[list]:
    """``["a", "a", "b"]`` -> ``[["a", 2], ["b", 1]]``."""
    out: list[list] = []
    for x in labels:
        if out and out[-1][0] == x:
            out[-1][1] += 1
        else:
            out.append([x, 1])
    return out


class FolderSplit(VideoStream):
    """One split of a labelled folder: ``entries`` are ``(folder, name, frames, runs)`` from the fitting
    pass (``runs``: ``[[label, count], ...]`` over the sampled frames); a video is decoded by
    :func:`read_video` when asked."""

    def __init__(self, role: str, entries: list, fps: float, max_length: int):
        self.role, self.entries, self.fps, self.max_length = role, entries, fps, max_length
        self.n = len(entries)
        self.length_counts, self.first_seen = {}, {}
        for i, (_, _, frames, runs) in enumerate(entries):
            self.length_counts[frames] = self.length_counts.get(frames, 0) + 1
            for label, _ in runs:
                self.first_seen.setdefault(label, i)

    def name(self, i: int) -> str:
        return self.entries[i][1]

    def labels_of(self, i: int) -> list[str]:
        return [label for label, count in self.entries[i][3] for _ in range(count)]

    def item(self, i: int):
        folder, name, frames, _ = self.entries[i]
        clip = read_video(Path(folder) / name, self.fps, self.max_length)
        if len(clip.frames) != frames:
            raise DataError(f"{Path(folder) / name}: changed while training ({frames} frames when the data was "
                            f"fitted, {len(clip.frames)} now)")
        return name, clip.frames, self.labels_of(i)


# -- labelled folders ----------------------------------------------------------------------------
def list_labels(path: Path, bad) -> dict[str, list[tuple[int, int, str]]]:
    """``labels.csv`` read row by row -> ``{video: [(start, end, label), ...]}`` (a per-frame row is a
    one-frame segment; consecutive frames of one label are merged as they come). A row that is not
    ``video,frame,label`` or ``video,start,end,label`` with whole numbers is a bad row of ``bad``
    (:class:`seqapps.data.streaming.BadRows`)."""
    from seqapps.data.streaming import table_header, table_rows

    if not path.is_file():
        raise DataError(f"{path.parent}: expected labels.csv (video,frame,label or video,start,end,label) beside "
                        "the videos")
    cols = [c.strip().lower() for c in table_header(path)]
    kind = ("frame",) if {"video", "frame", "label"} <= set(cols) else \
        ("start", "end") if {"video", "start", "end", "label"} <= set(cols) else None
    if kind is None:
        raise DataError(f"{path}: expected columns video,frame,label (per frame) or video,start,end,label "
                        f"(segments), got {','.join(cols)}")
    out: dict[str, list] = {}
    for line, (video, *numbers, label) in table_rows(path, [cols.index(c) for c in ("video", *kind, "label")], bad):
        try:
            numbers = [int(x) for x in numbers]
        except ValueError:
            bad.bad(f"{path}, line {line}", f"{'/'.join(kind)} must be whole frame numbers")
            continue
        start, end = (numbers[0], numbers[0] + 1) if len(numbers) == 1 else numbers
        segments = out.setdefault(video, [])
        if segments and segments[-1][1] == start and segments[-1][2] == label and end > start:
            segments[-1] = (segments[-1][0], end, label)
        else:
            segments.append((start, end, label))
    return out


def _video_files(path: Path) -> list[Path]:
    """The files a video is read from: the file, or a frame folder's images (none when missing)."""
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    return [path] if path.is_file() else []


def _fit_folders(pieces: dict[str, Path], fps: float, max_length: int, skip: bool, progress) -> dict:
    """The fitting pass over labelled folders: every listed video decoded once, one at a time.
    ``{"pieces": {piece: [[name, frames, runs], ...]}}`` in name order (``frames`` 0 for a video
    left out as bad), ``sizes`` (distinct ``WxH``, at most 20), ``bad`` and ``first_bad``."""
    from seqapps.data.streaming import BadRows

    bad = BadRows(skip)
    out, sizes, videos, done = {}, [], 0, 0
    for key, folder in pieces.items():
        listing = list_labels(folder / "labels.csv", bad)
        if not listing:
            raise DataError(f"{folder / 'labels.csv'}: no labelled videos")
        entries = out[key] = []
        for name in sorted(listing):
            path = folder / name
            try:
                clip = read_video(path, fps, max_length)
                rows = listing.pop(name)
                total = clip.total if clip.total is not None else max(max(r[1] for r in rows), clip.indices[-1] + 1)
                original = to_frames(rows, total, f"{folder.name}/{name}")
            except DataError as e:  # the line names the file (or the frame image) and what is wrong
                if not skip:
                    raise DataError(f"{e} (set data.skip_bad_rows=true to skip such videos and count them)") from None
                bad.count += 1
                bad.first = bad.first or str(e)
                entries.append([name, 0, []])
                continue
            finally:
                videos += 1
                done += sum(p.stat().st_size for p in _video_files(path))
                progress(videos, done)
            size = f"{clip.frames.shape[2]}x{clip.frames.shape[1]}"
            if size not in sizes and len(sizes) < 20:
                sizes.append(size)
            entries.append([name, len(clip.frames), _runs([original[i] for i in clip.indices])])
    return {"pieces": out, "sizes": sizes, "bad": bad.count, "first_bad": bad.first}


FIT_VERSION = 1  # bumped when what the folder fitting pass stores changes


def folder_splits(path: Path, d, task: str, verbose: bool = True) -> dict:
    """``{"train", "val", "test"}`` :class:`FolderSplit` of a labelled folder (``test`` None without one)
    and ``"fit"``, the fitting pass's summary; splits as :func:`split_folders` and the data fractions say."""
    from seqapps.data.sources import complete_splits
    from seqapps.data.streaming import BadRows, fitting_pass

    folders = split_folders(path) or {"all": path}
    files = []
    for key, folder in folders.items():
        labels = folder / "labels.csv"
        if not labels.is_file():  # before any listing: the one line a folder without labels gets
            raise DataError(f"{folder}: expected labels.csv (video,frame,label or video,start,end,label) beside "
                            "the videos")
        files.append(labels)
        for name in sorted(list_labels(labels, BadRows(True))):  # the listing, for the cache key
            files += _video_files(folder / name)
    skip = bool(getattr(d, "skip_bad_rows", False))
    settings = {"task": task, "version": FIT_VERSION, "pieces": {k: str(v.resolve()) for k, v in folders.items()},
                "fps": d.fps, "max_length": d.max_length, "skip_bad_rows": skip}
    fit = fitting_pass(f"{task} on {path}", files, settings,
                       lambda progress: _fit_folders(folders, d.fps, d.max_length, skip, progress), verbose=verbose)
    if fit["bad"] and verbose:
        print(f"skipped {fit['bad']:,} bad video(s) (data.skip_bad_rows); the first: {fit['first_bad']}",
              file=sys.stderr)
    pieces = {k: [(str(folders[k]), *e) for e in entries] for k, entries in fit["pieces"].items()}
    parts = complete_splits(pieces, d.val_fraction, d.test_fraction, _split)
    out = {role: None if part is None else FolderSplit(role, [e for e in part if e[2]], d.fps or 0.0, d.max_length)
           for role, part in parts.items()}
    if not out["train"].n:
        raise DataError(f"{path}: no training video could be read (skipped {fit['bad']:,} bad ones)")
    summary = {k: fit[k] for k in ("sizes", "bad", "first_bad")}
    summary["videos"] = {role: split.n for role, split in out.items() if split is not None}
    summary["frames"] = {role: sum(k * v for k, v in split.length_counts.items())
                         for role, split in out.items() if split is not None}
    return {**out, "fit": summary}


def split_folders(folder: Path) -> dict[str, Path]:
    """The ``train`` / ``val`` / ``test`` subfolders of ``folder`` (empty when it has no ``train``)."""
    found = {}
    for split, words in SPLIT_DIRS.items():
        hit = next((folder / w for w in words if (folder / w).is_dir()), None)
        if hit is not None:
            found[split] = hit
    return found if "train" in found else {}


# -- training batches -------------------------------------------------------------------------------
def video_order(n: int, shuffle: bool, seed: int, epoch: int, window: int):
    """The order videos are read in: ``0..n-1``; shuffled, a permutation seeded by ``(seed, epoch)``,
    or past ``window`` videos a bounded shuffle (a buffer of ``window`` indices, as tf.data shuffles)."""
    if not shuffle:
        yield from range(n)
        return
    rng = np.random.default_rng([seed, epoch])
    if n <= window:
        yield from (int(i) for i in rng.permutation(n))
        return
    buffer = np.arange(window)
    for following in range(window, n):
        j = int(rng.integers(window))
        yield int(buffer[j])
        buffer[j] = following
    yield from (int(i) for i in rng.permutation(buffer))


DECODERS = 2        # threads that decode videos for training
DECODE_AHEAD = 8    # videos decoded ahead of the one training takes (bounded memory)


def video_stream(split: VideoStream, labels: list[str], size: int, batch_size: int, shuffle: bool, seed: int = 0,
                 buffer: int = 100_000):
    """``({"frames": float [B, T, size, size, 3] in [0, 255], "mask": [B, T]}, ids [B, T])`` batches of
    videos of similar length (ids ``1..K`` of ``labels``, ``0`` = padding), every video once an epoch.
    A generator decodes one video at a time (:func:`video_order`); the frames are resized in the
    graph by :func:`tasks.video_frames.serving.frame_pixels`, as the export resizes each frame."""
    import tensorflow as tf

    from seqapps.data.pipeline import default_boundaries
    from tasks.video_frames.serving import frame_pixels

    index = {x: i + 1 for i, x in enumerate(labels)}
    counts = split.length_counts
    longest = max(counts) if counts else 1

    def gen():  # videos decoded by a few threads (FFmpeg and numpy let go of the GIL), a few ahead, in order
        import collections
        from concurrent.futures import ThreadPoolExecutor

        def example(decoding):
            _, frames, y = decoding.result()
            return frames, np.fromiter((index[x] for x in y), np.int32, len(y))

        epoch, gen.epoch = gen.epoch, gen.epoch + 1
        with ThreadPoolExecutor(DECODERS, thread_name_prefix="seqapps-videos") as pool:
            ahead = collections.deque()
            for i in video_order(split.n, shuffle, seed, epoch, buffer):
                ahead.append(pool.submit(split.item, i))
                if len(ahead) > DECODE_AHEAD:
                    yield example(ahead.popleft())
            while ahead:
                yield example(ahead.popleft())
    gen.epoch = 0

    sig = (tf.TensorSpec([None, None, None, split.channels], tf.uint8), tf.TensorSpec([None], tf.int32))
    ds = tf.data.Dataset.from_generator(gen, output_signature=sig)
    ds = ds.map(lambda video, ids: (frame_pixels(video, size), ids), num_parallel_calls=2)
    edges = default_boundaries(longest + 1) + [longest + 1]
    ds = ds.bucket_by_sequence_length(lambda x, y: tf.shape(y)[0], edges, [batch_size] * (len(edges) + 1))
    ds = ds.map(lambda x, y: ({"frames": x, "mask": tf.cast(y > 0, tf.float32)}, y))
    per_bucket: dict[int, int] = {}
    for length, n in counts.items():
        bucket = int(np.searchsorted(edges, length, side="right"))
        per_bucket[bucket] = per_bucket.get(bucket, 0) + n
    n_batches = sum(math.ceil(c / batch_size) for c in per_bucket.values())
    return ds.apply(tf.data.experimental.assert_cardinality(n_batches)).prefetch(2)


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

"""video_frames reads its data as a stream: folders listed and fitted in one cached pass, videos
decoded (moving_digits painted) one at a time, splits and clips as they were when everything was
read up front, the export's pixels in training, bad videos named or skipped, and flat memory."""

from __future__ import annotations

import csv
import hashlib
import os
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import peak_memory_mb

import tasks.video_frames.task as vf
from tasks.video_frames import data as videolib
from tasks.video_frames.splits import load_video_splits
from tasks.video_frames import moving_digits
from tasks.video_frames.segments import to_frames, to_segments
from seqapps.core.errors import DataError
from seqapps.data.splits import split

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SEQAPPS_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _config(*overrides):
    cfg = vf.VideoConfig()
    cfg.override(list(overrides))
    return cfg


def _clip(seed, frames):
    return moving_digits.generate(seed, {"train": 1, "val": 0, "test": 0}, (frames, frames), 24)["train"][0]


def _write(folder: Path, name: str, frames) -> None:
    """A video ``name`` in ``folder``: a file (its suffix picks the codec) or, without a suffix, a frame folder."""
    if Path(name).suffix:
        videolib.write_video(folder / name, frames, fps=10)
        return
    from PIL import Image

    (folder / name).mkdir()
    for i, image in enumerate(frames):
        Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(folder / name / f"{i:03d}.png")


def _labelled_folder(folder: Path, names, per_frame: bool = False, first_seed: int = 0) -> Path:
    """Videos of moving digits named ``names`` (8 to 15 frames) and their labels.csv."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = [["video", "frame", "label"] if per_frame else ["video", "start", "end", "label"]]
    for k, name in enumerate(names):
        _, frames, labels = _clip(first_seed + k, 8 + (k * 5) % 8)
        _write(folder, name, frames)
        rows += [[name, t, x] for t, x in enumerate(labels)] if per_frame else \
            [[name, s, e, x] for s, e, x in to_segments(labels)]
    with open(folder / "labels.csv", "w", newline="") as f:
        csv.writer(f).writerows(rows)
    return folder


# -- what the folder reader did before it streamed: every video decoded up front --------------------------------
def _read_up_front(folder: Path, fps: float, max_length: int):
    rows: dict[str, list] = {}
    with open(folder / "labels.csv", newline="") as f:
        table = list(csv.DictReader(f))
    for r in table:
        seg = (int(r["frame"]), int(r["frame"]) + 1) if "frame" in r else (int(r["start"]), int(r["end"]))
        rows.setdefault(r["video"], []).append((*seg, r["label"]))
    names, videos, labels = [], [], []
    for name in sorted(rows):
        clip = videolib.read_video(folder / name, fps, max_length)
        total = clip.total if clip.total is not None else max(max(r[1] for r in rows[name]), clip.indices[-1] + 1)
        original = to_frames(rows[name], total, name)
        names.append(name)
        videos.append(clip.frames)
        labels.append([original[i] for i in clip.indices])
    return videolib.VideoSet(names, videos, labels, fps)


def _same(streamed, expected):
    got = streamed.materialize()
    assert got.names == expected.names == streamed.names
    assert got.labels == expected.labels == streamed.labels
    assert all(np.array_equal(a, b) for a, b in zip(got.videos, expected.videos))
    assert len(streamed) == len(expected)


# -- splits ------------------------------------------------------------------------------------------------------------
def test_folder_splits_are_the_ones_reading_everything_up_front_gave(tmp_path, cache):
    names = [f"v{i:02d}" + [".mp4", "", ".gif", ""][i % 4] for i in range(11)]
    one = _labelled_folder(tmp_path / "one", names, per_frame=True)
    splits = load_video_splits(_config(f"data.source={one}", "data.fps=5", "data.val_fraction=0.2",
                                                "data.test_fraction=0.2").data, "video_frames")
    whole = _read_up_front(one, 5, 1000)
    expected = split(whole, 0.2, 0.2, what="videos", unit="videos")  # name order: 7 train, 2 val, 2 test
    for streamed, want in zip((splits.train, splits.val, splits.test), expected):
        _same(streamed, want)
    assert [len(s) for s in (splits.train, splits.val, splits.test)] == [7, 2, 2]
    assert splits.val.names == ["v07", "v08.mp4"] and splits.test.names == ["v09", "v10.gif"]

    parted = tmp_path / "parted"
    for part, k in (("train", 0), ("dev", 20), ("test", 40)):
        _labelled_folder(parted / part, [f"{part}{i}" + ("" if i % 2 else ".webm") for i in range(3 + k // 20)],
                         first_seed=k)
    splits = load_video_splits(_config(f"data.source={parted}", "data.fps=0").data, "video_frames")
    for streamed, part in ((splits.train, "train"), (splits.val, "dev"), (splits.test, "test")):
        _same(streamed, _read_up_front(parted / part, 0, 1000))
    (parted / "dev").rename(parted / "spare")  # no validation folder: the last 10% of train's names
    splits = load_video_splits(_config(f"data.source={parted}", "data.fps=0").data, "video_frames")
    assert splits.train.names == ["train0.webm", "train1"] and splits.val.names == ["train2.webm"]


DEFAULT_HASHES = {  # sha1 of (name, pixels, shape, labels), as generate() made them before videos were made when asked
    "train": {0: "a3ed83c9e745e3e0", 1: "71fe97fdfb34447f", 7: "bf4cb624574cc286", 1999: "6f710f72521a2f5b"},
    "val": {0: "b366970fc572ca7c", 1: "cb98f4bf85881391", 7: "a616438f46fb44a4", 199: "3134626f16cdc75a"},
    "test": {0: "ab4f41fa67f19e9a", 1: "86238145a55460e8", 7: "d1f981fda16d9659", 199: "3d6aba57b5265601"},
}
DEMO_HASHES = {"train": {0: "c71cdfe5e92f763c", 63: "9b03ea09caf7cf13"}, "val": {0: "08997fd94569410f",
               15: "3aa004534acbb9fe"}, "test": {0: "52e4921433754581", 15: "e7af9fbf00bcc116"}}


def _hash(item) -> str:
    name, video, labels = item
    blob = name.encode() + video.tobytes() + repr(video.shape).encode() + ",".join(labels).encode()
    return hashlib.sha1(blob).hexdigest()[:16]


def test_moving_digits_splits_and_clips_are_the_same_as_before():
    """The named dataset: 2,000 / 200 / 200 videos, 6,237 test frames (benchmarks/RESULTS.md), and the
    clips at these indices are byte for byte those generate() made up front."""
    splits = vf.VideoFrames().load_data(_config("data.source=moving_digits"))
    assert [len(s) for s in (splits.train, splits.val, splits.test)] == [2000, 200, 200]
    assert splits.info["fit"]["frames"]["test"] == 6237
    for role, hashes in DEFAULT_HASHES.items():
        part = getattr(splits, role)
        assert {i: _hash(part.item(i)) for i in hashes} == hashes
    demo = vf.VideoFrames().load_data(_config("data.source=demo"))
    for role, hashes in DEMO_HASHES.items():
        assert {i: _hash(getattr(demo, role).item(i)) for i in hashes} == hashes


def test_moving_digits_videos_are_made_alone_in_any_order_as_generate_made_them():
    sizes, frames = {"train": 40, "val": 6, "test": 5}, (6, 30)
    made = moving_digits.generate(7, sizes, frames, 28, 3)
    parts = moving_digits.generated_splits(7, sizes, frames, 28, 3)
    for role, videos in made.items():
        part = parts[role]
        order = np.random.default_rng(1).permutation(len(videos))  # any order: each video from its own state
        for i in order:
            name, video, labels = part.item(int(i))
            assert (name, labels) == (videos[i][0], videos[i][2]) and np.array_equal(video, videos[i][1])
            assert part.labels_of(int(i)) == labels and part.name(int(i)) == name
        assert sum(part.length_counts.values()) == len(videos)
        assert part.length_counts == {n: sum(len(v) == n for _, v, _ in videos) for n in part.length_counts}
        assert part.plan["hi"].nbytes + part.plan["lo"].nbytes <= 16 * len(videos)  # no pixels kept


def test_the_video_order_is_a_permutation_bounded_past_the_buffer():
    full = list(videolib.video_order(50, True, 0, 0, 100))
    assert sorted(full) == list(range(50)) and full != list(range(50))
    assert full == np.random.default_rng([0, 0]).permutation(50).tolist()  # the order of the in-memory batches
    bounded = list(videolib.video_order(1000, True, 0, 1, 10))
    assert sorted(bounded) == list(range(1000)) and bounded != list(range(1000))
    assert all(i <= position + 10 for position, i in enumerate(bounded))  # never further ahead than the buffer
    assert list(videolib.video_order(5, False, 0, 0, 2)) == [0, 1, 2, 3, 4]


# -- the fitting pass --------------------------------------------------------------------------------------------
def test_the_fitting_pass_is_cached_and_a_changed_video_is_fitted_again(tmp_path, cache, monkeypatch):
    folder = _labelled_folder(tmp_path / "clips", ["a.mp4", "b", "c.gif", "d", "e"])
    decoded = []
    real = videolib.read_video
    monkeypatch.setattr(videolib, "read_video", lambda path, *a: decoded.append(Path(path).name) or real(path, *a))
    cfg = _config(f"data.source={folder}", "data.val_fraction=0.2", "data.test_fraction=0")
    first = load_video_splits(cfg.data, "video_frames")
    assert sorted(decoded) == ["a.mp4", "b", "c.gif", "d", "e"]  # one pass, every video once
    assert list((cache / "fits").glob("*.json"))
    decoded.clear()
    again = load_video_splits(cfg.data, "video_frames")
    assert decoded == [] and again.train.entries == first.train.entries  # from the cache: nothing decoded
    assert again.info["fit"] == first.info["fit"]

    _, frames, labels = _clip(9, 15)  # b gets one more frame (a new file in its frame folder) ...
    from PIL import Image

    n = first.train.entries[1][2]
    Image.fromarray(frames[0, ..., 0]).save(folder / "b" / f"{n:03d}.png")
    with open(folder / "labels.csv", "a") as f:
        f.write(f"b,{n},{n + 1},{first.train.labels_of(1)[-1]}\n")
    changed = load_video_splits(cfg.data, "video_frames")
    assert sorted(decoded) == ["a.mp4", "b", "c.gif", "d", "e"]
    assert changed.train.entries[1][2] == first.train.entries[1][2] + 1
    decoded.clear()
    videolib.write_video(folder / "a.mp4", frames[:first.train.entries[0][2] - 2])  # ... and a.mp4 is rewritten shorter
    t = (folder / "a.mp4").stat().st_mtime + 5
    os.utime(folder / "a.mp4", (t, t))
    with pytest.raises(DataError, match=r"a.mp4: segment .* refers to frames that do not exist"):
        load_video_splits(cfg.data, "video_frames")
    decoded.clear()
    load_video_splits(_config(f"data.source={folder}", "data.fps=5", "data.skip_bad_rows=true").data,
                               "video_frames")
    assert len(decoded) == 5  # another setting: another fit


# -- bad data --------------------------------------------------------------------------------------------------------
def test_a_bad_video_deep_in_a_folder_is_one_line_naming_it_or_skipped_and_counted(tmp_path, cache, capsys):
    names = [f"v{i:03d}" for i in range(40)]
    folder = _labelled_folder(tmp_path / "many", names)
    cfg = _config(f"data.source={folder}", "data.val_fraction=0.1", "data.test_fraction=0.1")
    good = load_video_splits(cfg.data, "video_frames")
    for f in (folder / "v031").iterdir():
        f.unlink()
    os.rmdir(folder / "v031")
    (folder / "v031").write_text("not a video at all\n")  # the 32nd of 40 videos: a text file
    with pytest.raises(DataError) as e:
        load_video_splits(cfg.data, "video_frames")
    message = str(e.value)
    assert "\n" not in message and message.startswith(f"{folder / 'v031'}: not a video FFmpeg can read")
    assert "data.skip_bad_rows=true" in message

    skipping = _config(f"data.source={folder}", "data.val_fraction=0.1", "data.test_fraction=0.1",
                       "data.skip_bad_rows=true")
    splits = load_video_splits(skipping.data, "video_frames")
    assert "skipped 1 bad video(s)" in capsys.readouterr().err
    fit = splits.info["fit"]
    assert fit["bad"] == 1 and str(folder / "v031") in fit["first_bad"]
    assert "v031" not in splits.train.names and len(splits.train) == len(good.train) - 1
    assert (splits.val.names, splits.test.names) == (good.val.names, good.test.names)  # the others keep their split
    ds = videolib.video_stream(splits.train, vf.FrameLabels.fit(skipping, splits).labels, 16, 8, True)
    assert sum(int(y.numpy().astype(bool).sum()) for _, y in ds) == fit["frames"]["train"]

    (folder / "v031").unlink()
    _write(folder, "v031", _clip(3, 10)[1])
    (folder / "v031" / "004.png").write_bytes(b"\x89PNG broken")  # a broken frame in a frame folder
    with pytest.raises(DataError, match="^" + re.escape(f"{folder / 'v031' / '004.png'}: not a readable image")):
        load_video_splits(cfg.data, "video_frames")
    with open(folder / "labels.csv", "a") as f:
        f.write("v039,seven,9,up\n")
    with pytest.raises(DataError, match=r"labels.csv, line \d+: start/end must be whole frame numbers"):
        load_video_splits(cfg.data, "video_frames")


# -- one preprocessing path ----------------------------------------------------------------------------------------
def _export_inputs(signature: str, raw):
    """The model inputs the export's ``signature`` gives its model for one raw video."""
    import tensorflow as tf

    from tasks.video_frames.serving import video_endpoints

    seen = []

    def model(inputs, training=False):
        seen.append(inputs["frames"].numpy())
        shape = tf.shape(inputs["frames"])
        return tf.zeros([shape[0], shape[1], 2])

    endpoint = video_endpoints(model, ["a", "b"], 20, 1000, crf=False)[signature]
    out = endpoint.fn(tf.constant([raw], tf.string))
    return seen[0][0, :int(out["lengths"][0])]


def test_training_gives_the_model_the_inputs_the_export_gives_it(tmp_path, cache):
    """Raw videos (random frames of odd sizes, an mp4, a GIF, gray moving digits) through the training
    batches and through the export's signatures on their raw bytes: the same pixels, exactly."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "raw"
    folder.mkdir()
    raw = {"noise": rng.integers(0, 256, (5, 23, 37, 3), dtype=np.uint8),
           "tall": rng.integers(0, 256, (3, 61, 9, 3), dtype=np.uint8),
           "clip.mp4": np.repeat(_clip(1, 9)[1], 3, axis=-1),
           "clip.gif": (rng.integers(0, 2, (6, 30, 30, 3)) * 255).astype(np.uint8)}
    rows = ["video,start,end,label"]
    for name, frames in raw.items():
        _write(folder, name, frames)
        rows.append(f"{name},0,{len(frames)},a")
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    splits = load_video_splits(_config(f"data.source={folder}", "data.fps=0", "data.val_fraction=0.2",
                                                "data.test_fraction=0").data, "video_frames")
    for part in (splits.train, splits.val):
        batches = list(videolib.video_stream(part, ["a"], 20, 1, False))
        assert len(batches) == len(part)
        for i, (x, y) in enumerate(batches):
            name, frames, _ = part.item(i)
            pixels = x["frames"].numpy()[0]
            assert pixels.shape == (len(frames), 20, 20, 3) and y.numpy().tolist() == [[1] * len(frames)]
            blobs = np.array(videolib.encode_frames(frames), dtype=object)  # what the predictor sends
            np.testing.assert_array_equal(pixels, _export_inputs("serving_default", blobs))
            if name.endswith(".gif"):  # the file's own bytes through the gif signature
                np.testing.assert_array_equal(pixels, _export_inputs("gif", (folder / name).read_bytes()))

    digits = vf.VideoFrames().load_data(_config("data.source=demo")).val  # one channel, made when asked
    for i, (x, _) in enumerate(videolib.video_stream(digits, list(moving_digits.LABELS), 20, 1, False).take(3)):
        _, frames, _ = digits.item(i)
        assert frames.shape[-1] == 1
        blobs = np.array(videolib.encode_frames(frames), dtype=object)
        np.testing.assert_array_equal(x["frames"].numpy()[0], _export_inputs("serving_default", blobs))


# -- flat memory -----------------------------------------------------------------------------------------------------
def _many_videos(root: Path, n: int, side: int = 128, frames: int = 12) -> Path:
    """``n`` frame folders of ``frames`` PNG frames (``side`` pixels, a square moving on black: a few KB on disk,
    ``frames * side * side * 3`` bytes each once decoded) in ``train/``, 4 in ``val/``, and their labels."""
    from PIL import Image

    for part, count in (("train", n), ("val", 4)):
        folder = root / part
        folder.mkdir(parents=True)
        rows = ["video,start,end,label"]
        for k in range(count):
            name = f"{part}{k:05d}"
            (folder / name).mkdir()
            for t in range(frames):
                image = np.zeros((side, side, 3), np.uint8)
                r = (k * 7 + t * 5) % (side - 16)
                image[r:r + 16, 20:36] = 255
                Image.fromarray(image).save(folder / name / f"{t:03d}.png", compress_level=1)
            rows += [f"{name},0,{frames // 2},down", f"{name},{frames // 2},{frames},still"]
        (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    return root


@pytest.mark.slow
def test_a_folder_of_many_videos_trains_at_the_peak_memory_of_the_demo(tmp_path):
    """In a child process, 1,000 videos whose frames hold 590 MB once decoded are fitted (every video
    decoded once) and trained on at about the demo's peak memory. Reading the folder up front, as
    before, peaked at 1.9x the demo's with 1,500 such videos (1,782 MB against 937 MB)."""
    folder = _many_videos(tmp_path / "many", 1000)
    env = {**os.environ, "SEQAPPS_CACHE": str(tmp_path / "cache"), "TF_CPP_MIN_LOG_LEVEL": "2"}

    def peak(data):
        argv = [sys.executable, "-m", "seqapps", "train", "video_frames", "--data", str(data), "--epochs", "1",
                "--preset", "none", "--set", "train.steps_per_epoch=4", "--set", "model.units=8",
                "--set", "model.feature_units=8", "--set", "model.cnn_filters=4,8", "--set", "model.image_size=16",
                "--set", "train.batch_size=16", "--set", "data.fps=0", "--no-eval",
                "--run-dir", str(tmp_path / "run"), "--overwrite"]
        return peak_memory_mb(argv, env)

    small, big = peak("demo"), peak(folder)
    assert big < 1.3 * small, (small, big)

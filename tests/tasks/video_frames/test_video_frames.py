"""video_frames: decoding, segments, the moving_digits generator, labelled folders, a recurrent model
against the per-frame baseline, and the export's bad-input handling (the shared contract is in test_contract.py)."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

import seqapps
from conftest import run_cli, run_fresh
from tasks.video_frames import moving_digits
from tasks.video_frames.segments import segment_scores, to_frames, to_segments
from tasks.video_frames.data import read_video, write_video
from tasks.video_frames.splits import load_video_splits
from seqapps.core.errors import ConfigError, DataError

SMALL = ["data.videos=240", "data.min_frames=12", "data.max_frames=20", "data.canvas=24", "model.image_size=24",
         "model.cnn_filters=8,16", "model.units=32", "model.feature_units=64", "train.epochs=8",
         "train.learning_rate=0.003", "train.patience=0", "train.backup_every=0"]


def _video(frames=20, seed=0):
    return moving_digits.generate(seed, {"train": 1, "val": 0, "test": 0}, (frames, frames))["train"][0]


# -- decoding ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".mp4", ".avi", ".webm", ".gif"])
def test_decoding_a_video_we_wrote_gives_its_frames(tmp_path, suffix):
    _, frames, _ = _video(20)
    path = write_video(tmp_path / f"clip{suffix}", frames, fps=10)
    clip = read_video(path)
    assert clip.frames.shape == (20, 32, 32, 3) and clip.total == 20 and clip.indices == list(range(20))
    assert np.allclose(clip.times, np.arange(20) / 10, atol=1e-6)
    assert np.abs(clip.frames[..., 0].astype(int) - frames[..., 0]).mean() < 3  # the same pictures
    half = read_video(path, fps=5)
    assert half.indices == list(range(0, 20, 2)) and half.total == 20
    cut = read_video(path, max_frames=7)
    assert len(cut.frames) == 7 and cut.total is None and "cut at 7 frames" in cut.warning


def test_a_folder_of_frames_is_a_video_and_mixed_sizes_are_an_error(tmp_path):
    from PIL import Image

    _, frames, _ = _video(6)
    for i, f in enumerate(frames):
        Image.fromarray(f[..., 0]).save(tmp_path / f"{i:03d}.png")
    assert read_video(tmp_path).frames.shape == (6, 32, 32, 3)
    Image.fromarray(np.zeros((40, 50), np.uint8)).save(tmp_path / "006.png")
    with pytest.raises(DataError, match="frames of different sizes.*006.png is 50x40"):
        read_video(tmp_path)


def test_bad_files_are_one_line_each(tmp_path):
    good = write_video(tmp_path / "good.mp4", _video(10)[1])
    (tmp_path / "text.mp4").write_text("this is not a video\n")
    (tmp_path / "empty.webm").write_bytes(b"")
    (tmp_path / "cut.mp4").write_bytes(good.read_bytes()[:len(good.read_bytes()) // 2])
    with __import__("av").open(str(tmp_path / "none.avi"), "w") as out:  # a video stream with no frames
        stream = out.add_stream("mpeg4", rate=10)
        stream.width = stream.height = 32
        out.start_encoding()
    expected = {"text.mp4": "starts with text b'this is not '", "empty.webm": "empty file",
                "cut.mp4": "truncated", "none.avi": "the video has no frames", "missing.mp4": "no such file"}
    for name, words in expected.items():
        with pytest.raises(DataError, match=words) as e:
            read_video(tmp_path / name)
        assert "\n" not in str(e.value)


# -- segments -------------------------------------------------------------------------------------------
def test_segments_and_frame_labels_round_trip():
    rng = np.random.default_rng(0)
    for _ in range(50):
        labels = [str(x) for x in rng.choice(["a", "b", "c"], size=int(rng.integers(1, 30)), p=[0.6, 0.3, 0.1])]
        segments = to_segments(labels)
        assert to_frames(segments, len(labels)) == labels
        assert all(s[2] != t[2] and s[1] == t[0] for s, t in zip(segments, segments[1:]))
    assert to_segments(["x", "x", "y"]) == [(0, 2, "x"), (2, 3, "y")]
    with pytest.raises(DataError, match="clip: segment 2-5 .* overlaps another segment at frame 2"):
        to_frames([(0, 3, "a"), (2, 5, "b")], 5, "clip")
    with pytest.raises(DataError, match="refers to frames that do not exist .*4 frames"):
        to_frames([(0, 6, "a")], 4, "clip")
    with pytest.raises(DataError, match="2 frames have no label .*frame 3"):
        to_frames([(0, 3, "a")], 5, "clip")


def test_segment_f1_counts_overlaps_of_half_or_more():
    true = [["a"] * 10 + ["b"] * 10]
    assert segment_scores(true, true)["segment_f1"] == 1.0
    shifted = [["a"] * 14 + ["b"] * 6]   # a: IoU 10/14, b: IoU 6/10 -> both hits
    assert segment_scores(true, shifted)["segment_f1"] == 1.0
    late = [["a"] * 16 + ["b"] * 4]      # b: IoU 4/10 < 0.5
    s = segment_scores(true, late)
    assert (s["segment_precision"], s["segment_recall"]) == (0.5, 0.5)
    choppy = [["a", "b"] * 10]           # 20 one-frame segments, none overlapping half of a true one
    assert segment_scores(true, choppy)["segment_f1"] == 0.0


# -- the generator ---------------------------------------------------------------------------------------
def test_moving_digits_is_deterministic_disjoint_and_labelled_by_motion():
    sizes = {"train": 30, "val": 10, "test": 10}
    a, b = moving_digits.generate(3, sizes), moving_digits.generate(3, sizes)
    for split in sizes:
        assert [n for n, _, _ in a[split]] == [n for n, _, _ in b[split]]
        assert all(np.array_equal(x, y) and p == q for (_, x, p), (_, y, q) in zip(a[split], b[split]))
    assert [n for n, _, _ in moving_digits.generate(4, sizes)["train"]] != [n for n, _, _ in a["train"]]
    pools = moving_digits.digit_pools(3)
    assert sum(map(len, pools.values())) == 1797
    assert not set(pools["train"]) & set(pools["val"]) and not set(pools["train"]) & set(pools["test"])
    assert not set(pools["val"]) & set(pools["test"])
    used = {s: {int(n.rsplit("digit", 1)[1]) for n, _, _ in a[s]} for s in sizes}
    assert all(used[s] <= set(pools[s]) for s in sizes)
    for _, video, labels in a["train"]:  # the label is the move of the ink from the previous frame
        assert 16 <= len(video) <= 48 and len(labels) == len(video) and set(labels) <= set(moving_digits.LABELS)
        for t in range(1, len(video)):
            (r0, c0), (r1, c1) = (np.argwhere(video[i, ..., 0] > 0).min(0) for i in (t - 1, t))
            dr, dc = moving_digits.MOVES[labels[t]]
            assert (r1 - r0, c1 - c0) == (2 * dr, 2 * dc), (t, labels[t])


def test_a_labelled_folder_trains_from_segments_sampled_at_fps(tmp_path):
    import tasks.video_frames.task as vf

    (tmp_path / "train").mkdir()
    rows = ["video,start,end,label"]
    for i in range(3):
        _, frames, labels = _video(20, seed=i)
        write_video(tmp_path / "train" / f"v{i}.mp4", frames, fps=10)
        rows += [f"v{i}.mp4,{s},{e},{x}" for s, e, x in to_segments(labels)]
    (tmp_path / "train" / "labels.csv").write_text("\n".join(rows) + "\n")
    cfg = vf.VideoConfig()
    cfg.override([f"data.source={tmp_path}", "data.fps=5", "data.val_fraction=0.34"])
    splits = load_video_splits(cfg.data, "video_frames")
    assert len(splits.train) == 2 and len(splits.val) == 1 and splits.test is None
    _, _, labels = _video(20, seed=0)
    assert splits.train.names[0] == "v0.mp4" and splits.train.labels[0] == labels[::2]
    (tmp_path / "train" / "labels.csv").write_text("\n".join(rows + ["v1.mp4,18,25,up"]) + "\n")
    with pytest.raises(DataError, match="v1.mp4: segment 18-25 .*frames that do not exist"):
        load_video_splits(cfg.data, "video_frames")
    (tmp_path / "train" / "labels.csv").write_text("video,frame,label\nv0.mp4,0,up\n")
    with pytest.raises(DataError, match="v0.mp4: 19 frames have no label"):
        load_video_splits(cfg.data, "video_frames")


def test_bad_options_fail_before_training(tmp_path):
    for bad, words in [("model.architecture=cnn", "model.architecture"), ("data.fps=-1", "data.fps"),
                       ("model.image_size=4", "model.image_size")]:
        with pytest.raises(ConfigError, match=words):
            seqapps.train("video_frames", "demo", overrides=[bad], run_dir=tmp_path / "r", verbose=0)
    assert not (tmp_path / "r").exists()


# -- a small generated set: the recurrent model against the per-frame baseline ------------------------------
@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("video")
    out = {"root": root}
    for name, extra in (("rnn", []), ("frame", ["model.architecture=frame"])):
        out[name] = seqapps.train("video_frames", "moving_digits", overrides=SMALL + extra, preset="none",
                                  run_dir=root / name, verbose=0)
    out["export"] = out["rnn"].export(root / "export")
    return out


@pytest.mark.slow
def test_the_recurrent_model_beats_the_per_frame_baseline(runs):
    rnn, frame = runs["rnn"].metrics["test"], runs["frame"].metrics["test"]
    assert rnn["videos"] == 24 and rnn["frames"] == frame["frames"] >= 24 * 12
    assert rnn["accuracy"] > 0.6 and rnn["accuracy"] > frame["accuracy"] + 0.2, (rnn["accuracy"], frame["accuracy"])
    assert rnn["segment_f1"] > frame["segment_f1"]
    assert len(rnn["accuracy_by_position"]) == 20 and 0 <= min(rnn["accuracy_by_position"])


@pytest.mark.slow
def test_predict_answers_good_items_and_names_bad_ones(runs, tmp_path):
    _, frames, labels = _video(20, seed=5)
    mp4 = write_video(tmp_path / "clip.mp4", frames)
    gif = write_video(tmp_path / "clip.gif", frames)
    (tmp_path / "notes.mp4").write_text("hello")
    huge = np.zeros((2160, 3840, 3), np.uint8)  # a 4K frame among small ones
    long = np.repeat(frames, 500, axis=0)       # 10,000 frames: cut at data.max_length
    predictor = seqapps.load(runs["export"])
    results = predictor.predict([str(mp4), str(tmp_path / "notes.mp4"), str(gif), frames, [huge, *frames[:3]],
                                 long, str(tmp_path / "missing.webm"), frames[:0]])
    errors = [r["error"] for r in results]
    assert errors[1].startswith("not a video FFmpeg can read (it starts with text") and "no such file" in errors[6]
    assert errors[7] == "the video has no frames" and errors[4] is not None  # an array of mixed sizes
    assert [e is None for e in errors] == [True, False, True, True, False, True, False, False]
    assert [len(results[i]["frames"]) for i in (0, 2, 3, 5)] == [20, 20, 20, 1000]
    assert "cut at 1000 frames" in results[5]["warning"]
    same = results[3]
    assert [i for i, _, _ in same["frames"]] == list(range(20)) and all(0 < p <= 1 for _, _, p in same["frames"])
    assert to_frames([(round(s * 10), round(e * 10), x) for s, e, x in same["segments"]], 20) == \
        [x for _, x, _ in same["frames"]]  # the segments are the frames' labels, in seconds at 10 fps
    big = predictor.call(frames=np.array([[_png(huge), _png(frames[0]), b"\x89PNG broken", b"", _png(frames[1])]],
                                         dtype=object))
    assert big["lengths"].tolist() == [5] and big["valid"].tolist() == [[True, True, False, False, True]]
    from_gif = predictor.call("gif", video=np.array([gif.read_bytes(), b"GIF89a", b"", b"text"], dtype=object))
    assert from_gif["lengths"].tolist() == [20, 0, 0, 0]
    assert [x.decode() for x in from_gif["labels"][0]] == [x for _, x, _ in results[2]["frames"]]


def _png(image) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(image)[..., 0] if np.asarray(image).shape[-1] == 1 else image).save(buf, "PNG")
    return buf.getvalue()


FRESH = """
import json, numpy as np, tensorflow as tf
m = tf.saved_model.load({export!r})
frames = np.load("frames.npy", allow_pickle=True)
out = m.signatures["serving_default"](frames=tf.constant(frames, tf.string))
print(json.dumps({{"labels": out["labels"].numpy().astype(str).tolist(),
                  "probabilities": out["probabilities"].numpy().tolist()}}))
"""


@pytest.mark.slow
def test_cli_and_a_fresh_process_answer_like_the_run(runs, tmp_path):
    from tasks.video_frames.data import encode_frames

    videos = [_video(n, seed=s)[1] for n, s in ((14, 1), (20, 2))]
    rows = np.full((2, 20), b"", dtype=object)
    for i, v in enumerate(videos):
        rows[i, :len(v)] = encode_frames(v)
    np.save(tmp_path / "frames.npy", rows, allow_pickle=True)
    fresh = run_fresh(FRESH.format(export=str(runs["export"])), tmp_path)
    memory = seqapps.load(runs["rnn"].dir).call(frames=rows)
    assert fresh["labels"] == memory["labels"].astype(str).tolist()
    np.testing.assert_allclose(fresh["probabilities"], memory["probabilities"], atol=1e-5)
    clip = write_video(tmp_path / "clip.webm", videos[1])
    printed = run_cli("predict", runs["export"], clip, tmp_path / "nothing.mp4")
    assert printed.returncode == 0, printed.stderr[-2000:]
    lines = printed.stdout.splitlines()
    assert lines[0] == str(clip) and lines[-1] == f"{tmp_path / 'nothing.mp4'}\terror: no such file or folder"
    assert all(__import__("re").fullmatch(r"  \d+\.\d-\d+\.\d s  (still|left|right|up|down)", x) for x in lines[1:-1])
    scored = run_cli("evaluate", runs["export"], "--data", "moving_digits", "--out", tmp_path / "eval")
    assert scored.returncode == 0, scored.stderr[-2000:]
    report = json.loads((tmp_path / "eval" / "evaluation-test.json").read_text())
    assert "per-frame accuracy" in scored.stdout and (tmp_path / "eval" / "timeline.png").stat().st_size > 1000
    assert report["accuracy"] == pytest.approx(runs["rnn"].metrics["test"]["accuracy"])


@pytest.mark.slow
def test_the_crf_head_trains_exports_and_answers_like_the_run(tmp_path):
    """``model.crf=true`` (labels that come in segments): Viterbi decoding in the export, the
    same labels and probabilities as the run, one valid label per frame."""
    from seqapps.core import registry
    from seqapps.core.testing import make_batch

    task = registry.get("video_frames")
    run = seqapps.train("video_frames", "demo", overrides=[*task.tiny_overrides, "model.crf=true"],
                        run_dir=tmp_path / "run", verbose=0, evaluate=False)
    export = run.export(tmp_path / "export")
    memory, loaded = seqapps.load(run.dir), seqapps.load(export)
    meta = json.loads((export / "metadata.json").read_text())
    assert meta["config"]["model"]["crf"] is True
    specs = loaded.signatures["serving_default"][1]
    batch = make_batch(specs, task.sample_inputs(np.random.default_rng(0), 3, meta, "serving_default"))
    a, b = loaded.call(**batch), memory.call(**batch)
    np.testing.assert_array_equal(a["labels"], b["labels"])
    np.testing.assert_allclose(a["probabilities"], b["probabilities"], rtol=1e-5, atol=1e-5)
    names = {n.encode() for n in meta["labels"]} | {b""}
    assert set(np.asarray(a["labels"]).ravel()) <= names

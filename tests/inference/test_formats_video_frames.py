"""ONNX and LiteRT exports of video_frames: the whole model over decoded frames (``pixels`` and ``mask`` in, the
per-frame ``scores`` and ``probabilities`` out, the recurrent loop over the frames inside) as the graph; Pillow's
decoding of frames and GIFs, the bounds and the labels outside it, without TensorFlow. The graph is the Keras
model's on the same pixels; PNG frames and Pillow-written GIFs decode to the graph's pixels within 0.01, so the
labels are the SavedModel's."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

import seqapps
from conftest import without_tensorflow
from seqapps.core import bounds
from seqapps.core.errors import DataError
from tasks.video_frames import moving_digits
from tasks.video_frames.data import encode_frames, write_video

BAD = [b"not an image", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, b"\xff\xd8\xff\xe0 truncated"]
INT8_SAME = 0.9  # least share of int8 labels equal to the SavedModel's on the demo frames; measured on a tiny run:
# ONNX int8 37 of 39 frames (probabilities within 0.0026), LiteRT int8 39 of 39 (within 0.00015)
INT8_PROBABILITIES = 0.02  # int8 probabilities within this of the SavedModel's (measured above: at most 0.0026)


def _videos(lengths=(14, 20, 5), seed=1):
    return [moving_digits.generate(seed + i, {"train": 1, "val": 0, "test": 0}, (n, n))["train"][0][1]
            for i, n in enumerate(lengths)]


def demo_rows(lengths=(14, 20, 5)):
    """PNG frames ``[videos, longest]`` padded with ``""``; the first video's fourth frame is broken."""
    videos = _videos(lengths)
    rows = np.full((len(videos), max(lengths)), b"", dtype=object)
    for i, v in enumerate(videos):
        rows[i, :len(v)] = encode_frames(v)
    rows[0, 3] = BAD[0]
    return rows


def _gif(frames, **options) -> bytes:
    from PIL import Image

    images = [Image.fromarray(f) for f in frames]
    out = io.BytesIO()
    images[0].save(out, "GIF", save_all=True, append_images=images[1:], duration=100, **options)
    return out.getvalue()


def gifs(tmp_path):
    from seqapps.core.testing import random_gifs

    written = [write_video(tmp_path / f"clip{i}.gif", v).read_bytes() for i, v in enumerate(_videos())]
    return written + random_gifs(np.random.default_rng(0), 6, 16) + [b"GIF89a", b"", b"text"]


# -- Pillow's decoding against the graph's (no training) ---------------------------------------------------
def test_gif_blocks_are_counted_as_the_graph_counts_them():
    import tensorflow as tf

    from seqapps.core.testing import random_gifs
    from seqapps.encoders.images import gif_frames as graph_frames
    from tasks.video_frames.predicting import gif_frames

    counted = tf.function(graph_frames, input_signature=[tf.TensorSpec([], tf.string), tf.TensorSpec([], tf.int64)])
    rng = np.random.default_rng(3)
    blobs = random_gifs(rng, 12, 16) + [_gif(rng.integers(0, 256, (30, 300, 3), np.uint8) for _ in range(4))]
    blobs += [blobs[-1][:len(blobs[-1]) // 2], b"GIF89a", b""]
    for blob in blobs:
        for limit in (0, 1, 3, 64):
            want = tuple(int(x) for x in counted(tf.constant(blob), tf.constant(limit, tf.int64)))
            assert gif_frames(blob, limit) == want, (limit, len(blob))


def test_gif_frames_decode_close_to_the_graphs():
    """Measured: Pillow-written GIFs (random colours, a moving digit) within 5e-5 of the graph's floats (the
    same frames composed, the same antialiased bilinear kernel)."""
    import tensorflow as tf

    from tasks.video_frames.predicting import decode_gif
    from tasks.video_frames.serving import _one_gif

    rng = np.random.default_rng(0)
    for blob in (_gif(rng.integers(0, 256, (5, 40, 50, 3), np.uint8)), _gif(np.repeat(_videos((9,))[0], 3, -1))):
        for size, most in ((16, 64), (32, 3)):
            want = _one_gif(tf.constant(blob), size, most).numpy()
            got = decode_gif(blob, size, most)
            assert got.shape == want.shape
            assert np.abs(got - want).max() < 0.01


def test_bounds_and_bad_items_give_the_graphs_answers(monkeypatch):
    from tasks.video_frames import predicting

    png = encode_frames(np.zeros((1, 8, 8, 1), np.uint8))[0]
    with pytest.raises(DataError, match=f"^frames has more than {bounds.IMAGE_ROWS} rows; send at most"):
        predicting.decode_frames(np.full((bounds.IMAGE_ROWS + 1, 1), png, object), 16, 64)
    with pytest.raises(DataError, match=f"^frames has more than {bounds.FRAMES} frames \\(rows x time, after the cut "
                                        "at max_length 64\\)"):
        predicting.decode_frames(np.full((5, 64), png, object), 16, 64)
    pixels, lengths, valid = predicting.decode_frames(np.full((5, 100), png, object), 16, 50)  # cut first: 250
    assert pixels.shape == (5, 50, 16, 16, 3) and lengths.tolist() == [50] * 5 and valid.all()
    rows = np.array([[png, b"", png, b""], [b"", b"", b"", b""], [BAD[1], png, b"", b""]], object)
    pixels, lengths, valid = predicting.decode_frames(rows, 16, 64)
    assert lengths.tolist() == [3, 0, 2] and valid.tolist() == [[True, False, True, False], [False] * 4,
                                                                [False, True, False, False]]
    monkeypatch.setattr(bounds, "IMAGE_CALL_BYTES", len(png) * 2)
    with pytest.raises(DataError, match="^the video items together are over"):
        predicting.decode_gifs(np.array([png] * 3, object), 16, 64)
    monkeypatch.undo()
    big = _gif(np.stack([np.full((20, 30, 3), 60 * i, np.uint8) for i in range(3)]))  # frames that differ
    assert predicting.decode_gif(big, 16, 64).shape == (3, 16, 16, 3)
    monkeypatch.setattr(bounds, "VIDEO_PIXELS", 2 * 600)  # two frames of 20 x 30 read: the third is not
    assert predicting.decode_gif(big, 16, 2).shape == (2, 16, 16, 3) and predicting.decode_gif(big, 16, 3) is None
    monkeypatch.setattr(bounds, "IMAGE_PIXELS", 599)
    assert predicting.decode_gif(big, 16, 1) is None
    for blob in (b"", b"GIF89a", b"text", png):
        assert predicting.decode_gif(blob, 16, 64) is None


# -- a trained run and its exports ------------------------------------------------------------------------
def _exports(root, overrides, formats):
    from seqapps.core import registry
    from seqapps.inference.export import export

    task = registry.get("video_frames")
    run = seqapps.train("video_frames", "demo", overrides=[*task.tiny_overrides, *overrides], run_dir=root / "run",
                        verbose=0, evaluate=False)
    paths = {"run": run, "savedmodel": run.export(root / "savedmodel")}
    for fmt, q in formats:
        paths[f"{fmt}-{q}"] = export(run.bundle(), root / f"{fmt}-{q}", fmt, q)
    return paths


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """A tiny labeller (small CNN per frame, bidirectional LSTM) on the demo videos, its SavedModel and its ONNX
    and LiteRT exports fp32 and int8."""
    return _exports(tmp_path_factory.mktemp("formats-video"), [],
                    [(f, q) for f in ("onnx", "litert") for q in ("none", "int8")])


@pytest.fixture(scope="module")
def reference(exports):
    return seqapps.load(exports["savedmodel"])


def _same_answers(got, want, atol=1e-4):
    assert sorted(got) == sorted(want)
    for key in ("labels", "lengths", "valid"):
        assert np.asarray(got[key]).tolist() == np.asarray(want[key]).tolist(), key
    np.testing.assert_allclose(got["probabilities"], want["probabilities"], atol=atol)


@pytest.mark.slow
def test_folder_and_metadata(exports):
    for fmt, graph_file in (("onnx", "model.onnx"), ("litert", "model.tflite")):
        folder = exports[f"{fmt}-none"]
        assert sorted(p.name for p in folder.iterdir()) == sorted([graph_file, "metadata.json"])
        meta = json.loads((folder / "metadata.json").read_text())
        assert meta["format"] == fmt and set(meta["graph"]["inputs"]) == {"pixels", "mask"}
        assert set(meta["graph"]["outputs"]) == {"scores", "probabilities"} and "Pillow" in meta["graph"]["outside"]


@pytest.mark.slow
def test_graphs_are_the_keras_model_on_the_same_pixels(exports):
    import keras

    from seqapps.inference.litert import RowSession, interpreter
    from seqapps.inference.onnx_runtime import session
    from tasks.video_frames.predicting import decode_frames

    model = exports["run"].bundle().model
    pixels, lengths, _ = decode_frames(demo_rows(), 16, 64)
    mask = (np.arange(pixels.shape[1])[None] < lengths[:, None]).astype(np.float32)
    scores = keras.ops.convert_to_numpy(model({"frames": pixels, "mask": mask}, training=False))
    want = keras.ops.convert_to_numpy(keras.ops.softmax(scores, axis=-1)) * mask[..., None]
    onnx = session(exports["onnx-none"] / "model.onnx")
    litert = RowSession(interpreter(exports["litert-none"] / "model.tflite"), "mask")
    for graph in (onnx, litert):
        got_scores, got = graph.run(["scores", "probabilities"], {"pixels": pixels, "mask": mask})
        np.testing.assert_allclose(got * mask[..., None], want, atol=1e-4)
        np.testing.assert_allclose(got_scores * mask[..., None], scores * mask[..., None], atol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["onnx", "litert"])
def test_answers_like_the_savedmodel(exports, reference, fmt, tmp_path):
    """fp32: on PNG frames (a broken one among them) and on GIFs (demo clips, random frames, bytes that are no
    GIF), the labels, lengths and valid flags are the SavedModel's, the probabilities within 1e-4; empty calls
    have its shapes and over-bound calls its lines."""
    model = seqapps.load(exports[f"{fmt}-none"])
    assert type(model).runtime == fmt
    rows = demo_rows()
    _same_answers(model.call(frames=rows), reference.call(frames=rows))
    video = np.array(gifs(tmp_path), dtype=object)
    got = model.call("gif", video=video)
    assert got["lengths"][-3:].tolist() == [0, 0, 0] and got["lengths"][:3].tolist() == [14, 20, 5]
    _same_answers(got, reference.call("gif", video=video))
    for signature, inputs in (("serving_default", {"frames": np.zeros((0, 0), object)}),
                              ("serving_default", {"frames": np.full((2, 3), b"", object)}),
                              ("gif", {"video": np.zeros(0, object)})):
        got, want = model.call(signature, **inputs), reference.call(signature, **inputs)
        assert {k: np.shape(v) for k, v in got.items()} == {k: np.shape(v) for k, v in want.items()}
        _same_answers(got, want)
    for inputs in ({"frames": np.full((bounds.IMAGE_ROWS + 1, 1), rows[1, 0], object)},
                   {"frames": np.full((9, 64), rows[1, 0], object)}):
        with pytest.raises(DataError) as got:
            model.call(**inputs)
        with pytest.raises(DataError) as want:
            reference.call(**inputs)
        assert str(got.value) == str(want.value)


@pytest.mark.slow
def test_predictor_helpers_and_int8(exports, reference):
    videos = _videos()
    want = reference.predict(videos + [videos[0][:0]])
    got = seqapps.load(exports["onnx-none"]).predict(videos + [videos[0][:0]])
    assert [r["segments"] for r in got] == [r["segments"] for r in want]
    assert got[-1]["error"] == "the video has no frames"
    rows = demo_rows()
    want = reference.call(frames=rows)
    mask = np.asarray(want["valid"]) | (np.arange(rows.shape[1])[None] < np.asarray(want["lengths"])[:, None])
    for name in ("onnx-int8", "litert-int8"):
        got = seqapps.load(exports[name]).call(frames=rows)
        same = (np.asarray(got["labels"]) == np.asarray(want["labels"]))[mask]
        assert same.mean() >= INT8_SAME, (name, same.mean())
        assert np.abs(got["probabilities"] - want["probabilities"]).max() < INT8_PROBABILITIES, name


@pytest.mark.slow
def test_the_crf_head_answers_like_the_savedmodel(tmp_path):
    """``model.crf=true``: the graph gives the CRF's potentials, Viterbi runs in NumPy; labels and probabilities
    are the SavedModel's."""
    paths = _exports(tmp_path, ["model.crf=true"], [("onnx", "none")])
    rows = demo_rows()
    _same_answers(seqapps.load(paths["onnx-none"]).call(frames=rows), seqapps.load(paths["savedmodel"]).call(frames=rows))


@pytest.mark.slow
def test_answers_without_tensorflow(exports, reference, tmp_path):
    rows = demo_rows()
    np.save(tmp_path / "rows.npy", rows, allow_pickle=True)
    code = f"""
import numpy as np
rows = np.load("rows.npy", allow_pickle=True)
out = {{}}
for name in ("onnx-none", "litert-none"):
    model = seqapps.load({str(exports["run"].dir.parent)!r} + "/" + name)
    answer = model.call(frames=rows)
    out[name] = {{"labels": answer["labels"].astype(str).tolist(), "lengths": answer["lengths"].tolist(),
                 "segments": [r["segments"] for r in model.analyze([list(r[r != b""]) for r in rows])]}}
"""
    out = without_tensorflow("import seqapps\n" + code, tmp_path)
    want = reference.call(frames=rows)
    for name in ("onnx-none", "litert-none"):
        assert out[name]["labels"] == np.asarray(want["labels"]).astype(str).tolist()
        assert out[name]["lengths"] == np.asarray(want["lengths"]).tolist()
        assert out[name]["segments"] == [[list(s) for s in r["segments"]]
                                         for r in reference.analyze([list(r[r != b""]) for r in rows])]

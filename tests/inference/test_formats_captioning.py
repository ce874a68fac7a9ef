"""ONNX exports of captioning: the image encoder with the decoder's initial state (``encoder.onnx``) and one
decoder step (``model.onnx``) as graphs; image decoding (Pillow), greedy and beam search and the joining of
words outside them, without TensorFlow. The graphs are the Keras model's on the same pixels; Pillow's pixels
are close to the SavedModel's, so captions are compared as shares."""

from __future__ import annotations

import io
import json
import random

import numpy as np
import pytest

import seqapps
from conftest import without_tensorflow
from tasks.captioning.demo import COLOURS, SHAPES, examples, image_bytes

TINY = ["model.encoder=small_cnn", "model.encoder_weights=none", "model.encoder_trainable=true",
        "model.image_size=32", "model.units=48", "model.embedding_dim=24", "model.feature_units=32",
        "model.attention_units=16", "model.dropout=0", "data.max_length=9", "data.min_count=1",
        "train.batch_size=32", "train.learning_rate=0.005", "train.patience=0", "data.augment=false"]
BAD = [b"", b"not an image", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, b"\xff\xd8\xff\xe0 truncated", b"GIF89a\x01"]
INT8_SAME = 0.5  # least share of int8 captions equal to the SavedModel's on the demo images; measured: 8 of 13
# greedy and 8 of 13 beam (fp32: 13 of 13 each)


def demo_images(n=13, side=64, fmt="PNG", seed=5):
    if fmt == "PNG" and side == 64:
        return [b for b, _ in examples(n, side, seed=seed)]
    rng, objects = random.Random(seed), [(s, c) for s in SHAPES for c in COLOURS]
    return [image_bytes(*rng.sample(objects, 2), rng.choice(["above", "left"]), side, rng, fmt) for _ in range(n)]


def same(a, b) -> int:
    return sum(x == y for x, y in zip(list(a), list(b)))


# -- Pillow's pixels against the graph's (no training: fast) ---------------------------------------------
def _noise(w, h, fmt):
    from PIL import Image

    arr = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray((np.cumsum(arr, 1) % 256).astype(np.uint8)).save(out, fmt)
    return out.getvalue()


@pytest.mark.parametrize("w,h", [(64, 64), (300, 200), (17, 45), (2100, 900)])
def test_pillow_pixels_are_close_to_the_graphs(w, h):
    """Measured: every format within 0.003 of the graph's floats (the same decoders, JPEG's accurate integer
    IDCT on both sides, at full, 1/2, 1/4 and 1/8 scale, and the same antialiased bilinear kernel). With
    TensorFlow's default fast IDCT in the graph, JPEGs were up to 4 levels apart."""
    import tensorflow as tf

    from seqapps.encoders.images import decode_one
    from tasks.captioning.predicting import decode_image

    for fmt in ("PNG", "JPEG", "GIF", "BMP"):
        blob = _noise(w, h, fmt)
        for size in (32, 224):
            diff = np.abs(decode_image(blob, size) - decode_one(tf.constant(blob), size).numpy())
            assert diff.max() < 0.01, (fmt, w, h, size, diff.max())


def test_pillow_decoding_refuses_what_the_graph_refuses(monkeypatch):
    from tasks.captioning import predicting

    for blob in BAD + [_noise(20, 20, "WEBP")]:
        assert predicting.decode_image(blob, 32) is None
    pixels, valid = predicting.decode_images([_noise(12, 10, "PNG"), b"", _noise(30, 30, "GIF")], 32)
    assert valid.tolist() == [True, False, True] and pixels.shape == (3, 32, 32, 3) and not pixels[1].any()
    monkeypatch.setattr(predicting, "IMAGE_PIXELS", 119)  # by the header's size, before decoding
    assert predicting.decode_image(_noise(12, 10, "PNG"), 32) is None
    assert predicting.decode_image(_noise(11, 10, "BMP"), 32) is not None
    assert predicting.join_caption("  a dog , runs .  it 's n't ") == "a dog, runs. it's n't"


def test_an_animated_gif_gives_its_first_frame_as_the_graph():
    import tensorflow as tf
    from PIL import Image

    from seqapps.encoders.images import decode_one
    from tasks.captioning.predicting import decode_image

    frames = [Image.new("RGB", (40, 30), colour) for colour in ((200, 10, 10), (10, 10, 200))]
    out = io.BytesIO()
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:], duration=100)
    pixels = decode_image(out.getvalue(), 32)
    assert pixels[..., 0].min() > 150 and pixels[..., 2].max() < 60
    np.testing.assert_allclose(pixels, decode_one(tf.constant(out.getvalue()), 32).numpy(), atol=0.01)


# -- a trained run and its exports --------------------------------------------------------------------
@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """A tiny captioner (small CNN, LSTM with additive attention) on the demo shapes, its SavedModel and its
    ONNX and LiteRT exports fp32 and int8."""
    from seqapps.inference.export import export

    root = tmp_path_factory.mktemp("formats-captioning")
    run = seqapps.train("captioning", "demo", epochs=4, overrides=TINY, run_dir=root / "run", verbose=0)
    paths = {"run": run, "savedmodel": run.export(root / "savedmodel")}
    for q in ("none", "int8"):
        paths[q] = export(run.bundle(), root / f"onnx-{q}", "onnx", q)
        paths[f"litert-{q}"] = export(run.bundle(), root / f"litert-{q}", "litert", q)
    return paths


@pytest.fixture(scope="module")
def reference(exports):
    return seqapps.load(exports["savedmodel"])


@pytest.mark.slow
def test_folder_and_metadata(exports):
    folder = exports["none"]
    assert sorted(p.name for p in folder.iterdir()) == ["encoder.onnx", "metadata.json", "model.onnx",
                                                         "tokenizer.json", "vocabulary.json"]
    graph = json.loads((folder / "metadata.json").read_text())["graph"]
    assert set(graph["inputs"]["encoder.onnx"]) == {"pixels"}
    assert set(graph["inputs"]["model.onnx"]) == {"tokens", "h", "c", "features", "keys"}
    assert set(graph["outputs"]["model.onnx"]) == {"logits", "next.h", "next.c", "attention"}
    assert "Pillow" in graph["outside"] and "beam" in graph["outside"]
    assert json.loads((exports["int8"] / "metadata.json").read_text())["quantize"] == "int8"
    assert sorted(p.name for p in exports["int8"].glob("*.onnx")) == ["encoder.onnx", "model.onnx"]


@pytest.mark.slow
def test_graphs_are_the_keras_model_on_the_same_pixels(exports):
    import tensorflow as tf

    from seqapps.inference.export_parts import flat_state, nested_state
    from seqapps.inference.onnx_runtime import session
    from tasks.captioning.predicting import decode_images

    model = exports["run"].bundle().model
    pixels, valid = decode_images(demo_images(6) + BAD[:1], 32)
    assert valid.tolist() == [True] * 6 + [False]
    encoder, step = (session(exports["none"] / f"{name}.onnx") for name in ("encoder", "model"))
    want = {k: v.numpy() for k, v in flat_state(model.initial_state(model.image_features(tf.constant(pixels)))).items()}
    got = dict(zip(want, encoder.run(list(want), {"pixels": pixels})))
    for k in want:
        np.testing.assert_allclose(got[k], want[k], atol=1e-4)
    tokens = np.array([2, 4, 5, 6, 7, 3, 0], np.int64)
    logits, state, extras = model.step(tf.constant(tokens, tf.int32), nested_state({k: tf.constant(v) for k, v in want.items()}))
    names = ["logits", "next.h", "next.c", "attention"]
    out = dict(zip(names, step.run(names, {"tokens": tokens, **want})))
    for name, value in (("logits", logits), ("next.h", state["h"]), ("next.c", state["c"]),
                        ("attention", extras["attention"])):
        np.testing.assert_allclose(out[name], value.numpy(), atol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("signature", ["serving_default", "beam", "attention"])
def test_captions_like_the_savedmodel(exports, reference, signature):
    """fp32: every caption, score and attention map on the demo images (PNG; JPEGs of 40 pixels decoded at
    full scale and of 300 at 1/8; GIF, BMP) is the SavedModel's; undecodable items are invalid with no caption."""
    model = seqapps.load(exports["none"])
    for images in (demo_images() + BAD[:3], demo_images(5, 300, "JPEG") + demo_images(5, 300, "GIF")
                   + demo_images(5, 300, "BMP"), demo_images(8, 40, "JPEG", seed=7)):
        got, want = model.call(signature, image=images), reference.call(signature, image=images)
        assert sorted(got) == sorted(want)
        assert got["valid"].tolist() == np.asarray(want["valid"]).tolist()
        assert got["caption"].tolist() == np.asarray(want["caption"]).tolist()
        assert got["length"].tolist() == np.asarray(want["length"]).tolist()
        for key in ("score", "attention"):
            if key in want:
                np.testing.assert_allclose(got[key], want[key], atol=1e-4)
        if "words" in want:
            assert got["words"].tolist() == np.asarray(want["words"]).tolist()
    assert got["valid"].all() and not model.call(signature, image=BAD)["valid"].any()
    assert model.call(signature, image=BAD)["caption"].tolist() == [b""] * len(BAD)
    assert model.call(signature, image=[])["caption"].shape == (0,)


@pytest.mark.slow
def test_predictor_helpers_and_int8(exports, reference):
    model, int8 = seqapps.load(exports["none"]), seqapps.load(exports["int8"])
    images = demo_images()
    rows = model.caption(images + [b"nope"], beam=1)
    assert [r["caption"] for r in rows[:-1]] == [r["caption"] for r in reference.caption(images, beam=1)]
    assert rows[-1]["caption"] is None and "not a JPEG, PNG, GIF or BMP" in rows[-1]["error"]
    with pytest.raises(Exception, match="beam=5"):
        model.caption(images[:1], beam=5)
    with pytest.raises(Exception, match="more than 16 rows"):
        model.call(image=images + images)
    for beam in (1, reference.beam_width):
        want = [r["caption"] for r in reference.caption(images, beam=beam)]
        got = [r["caption"] for r in int8.caption(images, beam=beam)]
        assert same(got, want) >= INT8_SAME * len(images), (beam, got, want)


@pytest.mark.slow
def test_answers_without_tensorflow(exports, reference, tmp_path):
    images = demo_images(6)
    code = f"""
import seqapps
model = seqapps.load({str(exports["none"])!r})
images = {images!r} + [b"not an image"]
out = {{"greedy": [r["caption"] for r in model.caption(images, beam=1)],
        "beam": [r["caption"] for r in model.caption(images)],
        "valid": model.call(image=images)["valid"].tolist()}}
"""
    out = without_tensorflow(code, tmp_path)
    assert out["greedy"] == [r["caption"] for r in reference.caption(images, beam=1)] + [None]
    assert out["beam"] == [r["caption"] for r in reference.caption(images)] + [None]
    assert out["valid"] == [True] * 6 + [False]


@pytest.mark.slow
def test_litert_captions_like_the_savedmodel(exports, reference):
    """LiteRT: the ONNX export's two graphs with built-in operators only (neither has a loop: a whole batch per
    call); fp32 captions and scores are the SavedModel's, int8 at least the ONNX int8's share."""
    from seqapps.inference.litert import interpreter

    folder = exports["litert-none"]
    assert sorted(p.name for p in folder.iterdir()) == ["encoder.tflite", "metadata.json", "model.tflite",
                                                         "tokenizer.json", "vocabulary.json"]
    for name in ("tokenizer.json", "vocabulary.json"):  # the ONNX export's, byte for byte
        assert (folder / name).read_bytes() == (exports["none"] / name).read_bytes(), name
    for q in ("none", "int8"):
        for graph in ("encoder.tflite", "model.tflite"):
            ops = {op["op_name"] for op in interpreter(exports[f"litert-{q}"] / graph)._get_ops_details()}
            assert not any(op.startswith("Flex") for op in ops), (q, graph, ops)
    model, int8 = seqapps.load(folder), seqapps.load(exports["litert-int8"])
    assert type(model).runtime == "litert"
    images = demo_images() + BAD[:2]
    for signature in ("serving_default", "beam", "attention"):
        got, want = model.call(signature, image=images), reference.call(signature, image=images)
        assert got["valid"].tolist() == np.asarray(want["valid"]).tolist()
        assert got["caption"].tolist() == np.asarray(want["caption"]).tolist(), signature
        for key in ("score", "attention"):
            if key in want:
                np.testing.assert_allclose(got[key], want[key], atol=1e-4)
    for beam in (1, reference.beam_width):
        want = [r["caption"] for r in reference.caption(demo_images(), beam=beam)]
        got = [r["caption"] for r in int8.caption(demo_images(), beam=beam)]
        assert same(got, want) >= INT8_SAME * len(want), (beam, got, want)

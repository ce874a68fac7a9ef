"""captioning: data readers, model shapes, train -> export -> caption, bad input, the default encoder."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from conftest import run_cli
from seqapps.core.config import DataConfig
from tasks.captioning import data as caplib
from tasks.captioning.demo import examples, image_bytes
from seqapps.analysis.metrics import corpus_bleu_scores
from seqapps.core.errors import ConfigError, DataError

TINY = ["model.encoder=small_cnn", "model.encoder_weights=none", "model.encoder_trainable=true",
        "model.image_size=32", "model.units=48", "model.embedding_dim=24", "model.feature_units=32",
        "model.attention_units=16", "model.dropout=0", "data.max_length=9", "data.min_count=1",
        "train.batch_size=32", "train.learning_rate=0.005", "train.patience=0", "data.augment=false"]


def _png(colour=(200, 0, 0), size=(12, 10)):
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "PNG")
    return out.getvalue()


def _folder(tmp_path, n=10):
    (tmp_path / "images").mkdir()
    rows = ["image,caption"]
    for i in reversed(range(n)):
        (tmp_path / "images" / f"img{i:02d}.png").write_bytes(_png((i * 20, 0, 0)))
        rows += [f"img{i:02d}.png,a picture number {i} .", f'img{i:02d}.png,"a red thing, number {i}"']
    (tmp_path / "captions.txt").write_text("\n".join(rows) + "\n")
    return tmp_path


def test_folder_with_captions_csv_is_split_by_sorted_name(tmp_path):
    splits = caplib.load_caption_data(DataConfig(source=str(_folder(tmp_path))), "captioning")
    assert (len(splits.train), len(splits.val), len(splits.test)) == (8, 1, 1)
    train, test = splits.train.materialize(), splits.test.materialize()
    assert train.names[0] == "img00.png" and test.names == ["img09.png"]
    assert train.captions[3] == ["a picture number 3 .", "a red thing, number 3"]
    assert train.read(0)[:4] == b"\x89PNG" and splits.train.n == 16


def test_coco_json_and_bad_tables(tmp_path):
    folder = _folder(tmp_path)
    coco = {"images": [{"id": i, "file_name": f"img{i:02d}.png"} for i in range(10)],
            "annotations": [{"image_id": i % 10, "caption": f"caption {i}"} for i in range(30)]}
    (folder / "coco.json").write_text(json.dumps(coco))
    data = caplib.read_coco_json(folder / "coco.json")
    assert len(data) == 10 and data.captions[2] == ["caption 2", "caption 12", "caption 22"]
    (folder / "bad.json").write_text(json.dumps({"images": [], "annotations": [{"image_id": 7, "caption": "x"}]}))
    with pytest.raises(DataError, match="image_id"):
        caplib.read_coco_json(folder / "bad.json")
    (folder / "missing.csv").write_text("image,caption\nnope.jpg,a caption\n")
    with pytest.raises(DataError, match=r"missing.csv:2: image nope.jpg is not in .*1 of 1 images are missing"):
        caplib.read_caption_table(folder / "missing.csv")
    (folder / "cols.csv").write_text("picture,words\nimg00.png,a caption\n")
    with pytest.raises(DataError, match="which column holds the image"):
        caplib.read_caption_table(folder / "cols.csv")


def test_vocabulary_encodes_teacher_forcing_pairs():
    vocab = caplib.CaptionVocab.from_captions([["A red circle .", "a red square"], ["a blue circle"]], 100, 1, max_length=3)
    assert vocab.words[:4] == caplib.SPECIALS and vocab.words[4] == "a"
    inputs, targets = vocab.encode(["A red circle .", "zebra"])
    a, red, circle = (vocab.index[w] for w in ("a", "red", "circle"))
    assert inputs[0].tolist() == [2, a, red, circle] and targets[0].tolist() == [a, red, circle, 3]  # cut at 3 words
    assert inputs[1].tolist() == [2, 1, 0, 0] and targets[1].tolist() == [1, 3, 0, 0]


def test_bleu_uses_every_reference():
    refs = [["a dog runs", "a brown dog runs on grass"], ["two kids play"]]
    perfect = corpus_bleu_scores(["a brown dog runs on grass", "two kids play"], refs)
    assert perfect[1] == pytest.approx(100.0) and perfect[4] == pytest.approx(100.0)
    assert corpus_bleu_scores(["a cat sleeps", "one kid"], refs)[4] < 10


@pytest.mark.parametrize("attention", ["additive", "multiplicative", "none"])
def test_model_shapes_and_attention(attention):
    import tensorflow as tf

    from tasks.captioning.model import ImageCaptioner

    model = ImageCaptioner(20, encoder="small_cnn", image_size=32, units=16, embedding_dim=8, feature_units=12,
                           attention=attention, attention_units=8, cell="gru")
    assert model.grid == (2, 2)
    logits = model({"image": tf.zeros([3, 32, 32, 3]), "tokens": tf.zeros([3, 5], tf.int32)})
    assert logits.shape == (3, 5, 20)
    state = model.initial_state(model.image_features(tf.zeros([3, 32, 32, 3])))
    step_logits, new_state, extras = model.step(tf.constant([2, 2, 2]), state)
    assert step_logits.shape == (3, 20) and new_state["h"].shape == (3, 16)
    if attention == "none":
        assert extras == {}
    else:
        weights = extras["attention"].numpy()
        assert weights.shape == (3, 4)
        np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-5)


def test_config_errors():
    from seqapps.core import registry
    from seqapps.training.fit import resolve_config

    task = registry.get("captioning")
    cfg = resolve_config(task, "demo", overrides=["model.encoder_weights=none"])
    with pytest.raises(ConfigError, match="frozen encoder needs pretrained weights"):
        task.load_data(cfg)
    from seqapps.encoders import build_encoder

    with pytest.raises(ConfigError, match="keras.applications"):
        build_encoder("NoSuchNet", "none", 32)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    import seqapps

    root = tmp_path_factory.mktemp("captioning")
    run = seqapps.train("captioning", "demo", epochs=4, overrides=TINY, run_dir=root / "run", verbose=0)
    export = run.export(root / "export")
    return run, export, root


@pytest.mark.slow
def test_demo_learns_and_scores(trained):
    run, _, _ = trained
    import pandas as pd

    history = pd.read_csv(run.history_path)
    assert history["loss"].iloc[-1] < history["loss"].iloc[0] * 0.7
    test = run.metrics["test"]
    assert {"sacrebleu1_greedy", "sacrebleu4_greedy", "sacrebleu1_beam3", "sacrebleu4_beam3"} <= set(test)
    assert test["sacrebleu1_greedy"] > 30  # the shared "a ... of a ..." frame at least
    if "coco_note" not in test:  # with Java: the COCO caption evaluation's figures beside them
        assert {"bleu1_greedy", "bleu4_beam3", "meteor_greedy", "rouge_l_beam3", "cider_d_greedy"} <= set(test)
    assert len(test["samples"]) == 10


@pytest.mark.slow
def test_export_signatures_caption_files_and_mark_undecodable_items(trained):
    import seqapps

    run, export, root = trained
    rows = examples(n=4, size=64, seed=11)
    paths = []
    for i, (blob, _) in enumerate(rows):
        (root / f"x{i}.png").write_bytes(blob)
        paths.append(str(root / f"x{i}.png"))
    p = seqapps.load(export)
    greedy = [r["caption"] for r in p.caption(paths, beam=1)]
    beam = [r["caption"] for r in p.caption(paths, beam=3)]
    attention = p.attention(paths[:2])
    assert all(greedy) and all(beam)
    images = np.array([open(path, "rb").read() for path in paths] + [b"", b"not an image"], dtype=object)
    g, b = p.call("serving_default", image=images), p.call("beam", image=images)
    a = p.call("attention", image=images[:2])
    assert [s.decode() for s in g["caption"]] == greedy + ["", ""]
    assert [s.decode() for s in b["caption"]] == beam + ["", ""]
    assert g["valid"].tolist() == [True] * 4 + [False, False]
    steps = a["attention"].shape[1]
    assert list(a["attention"].shape) == [2, steps, 2, 2]
    for row, n in zip(a["attention"].sum(-1).sum(-1), a["length"]):
        np.testing.assert_allclose(row[:n], 1.0, rtol=1e-4)
    for r, caption in zip(attention, greedy):
        assert r["caption"] == caption and r["words"] and r["attention"].shape == (len(r["words"]), 2, 2)


@pytest.mark.slow
def test_predictor_reports_bad_items_and_captions_the_rest(trained):
    from PIL import Image

    _, export, root = trained
    import seqapps

    big = io.BytesIO()
    Image.new("RGB", (4000, 4000), (20, 60, 200)).save(big, "JPEG")
    (root / "text.jpg").write_text("hello, I am text\n")
    (root / "trunc.jpg").write_bytes(big.getvalue()[:2000])
    items = [big.getvalue(), _png(size=(1, 1)), b"", str(root / "text.jpg"), str(root / "trunc.jpg"),
             str(root / "missing.png"), image_bytes(("circle", "red"), ("square", "blue"), "above", 64)]
    results = seqapps.load(export).caption(items, beam=3)
    assert [r["error"] is None for r in results] == [True, True, False, False, False, False, True]
    assert results[0]["caption"] and results[6]["caption"]
    assert "1x1" in results[1]["warning"]
    assert "empty input" in results[2]["error"]
    assert "not a JPEG, PNG, GIF or BMP" in results[3]["error"]
    assert "truncated JPEG" in results[4]["error"]
    assert "cannot read the file" in results[5]["error"]
    with pytest.raises(ConfigError, match="beam search of width 3"):
        seqapps.load(export).caption(items[:1], beam=5)


@pytest.mark.slow
def test_cli_predict_and_bad_option(trained):
    _, export, root = trained
    good = root / "good.png"
    good.write_bytes(image_bytes(("triangle", "green"), ("circle", "yellow"), "left", 64))
    (root / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    proc = run_cli("predict", export, good, root / "bad.png")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[0].startswith(f"{good}\t") and "error" not in lines[0]
    assert lines[1].startswith(f"{root / 'bad.png'}\terror: corrupt or truncated PNG")
    proc = run_cli("train", "captioning", "--data", "demo", "--set", "model.attention=sideways", "--run-dir",
                   root / "never")
    assert proc.returncode == 2 and proc.stderr.strip().startswith("error: model.attention must be one of")


@pytest.mark.slow
def test_default_encoder_is_frozen_imagenet_efficientnet_with_a_feature_cache(tmp_path):
    """The default path: EfficientNet-Lite0 with ImageNet weights, frozen, its features cached once."""
    import keras

    import seqapps
    from seqapps.core import registry
    from seqapps.encoders import build_encoder

    cache = tmp_path / "cache"
    run = seqapps.train("captioning", "demo", run_dir=tmp_path / "run", verbose=0, overrides=[
        "model.image_size=64", "model.units=8", "model.embedding_dim=8", "model.feature_units=8",
        "model.attention_units=8", "model.beam_width=2", "data.max_length=8", "data.min_count=1", "train.epochs=1",
        f"data.feature_cache={cache}"])
    model_cfg = json.loads((run.dir / "config.json").read_text())["model"]
    assert (model_cfg["encoder"], model_cfg["encoder_weights"], model_cfg["encoder_trainable"]) == (
        "efficientnet_lite0", "imagenet", False)
    assert [p for p in cache.rglob("*") if p.is_file()], "no features were cached"
    registry.get("captioning")  # registers the model class
    trained = keras.saving.load_model(run.dir / "best.keras").encoder.get_weights()
    imagenet = build_encoder("efficientnet_lite0", "imagenet", 64).get_weights()
    assert len(trained) == len(imagenet) and all(np.array_equal(a, b) for a, b in zip(trained, imagenet))
    results = seqapps.load(run.dir).caption([image_bytes(("circle", "red"), ("square", "blue"), "above", 64)])
    assert results[0]["error"] is None and isinstance(results[0]["caption"], str)


def test_captions_never_hold_the_unknown_word():
    """A decoder that would rather say [UNK] (or start again) than a word still captions with words:
    the signatures ban both ids, greedy and beam."""
    import tensorflow as tf

    from tasks.captioning.serving import caption_endpoints

    words = ["", "[UNK]", "[START]", "[END]", "dog", "runs"]

    class Prefers:  # logits: [UNK] 50, [START] 10, "dog" 5, the rest 0
        grid = (1, 1)

        def image_features(self, pixels):
            return tf.zeros([tf.shape(pixels)[0], 1, 2])

        def initial_state(self, features):
            return tf.zeros([tf.shape(features)[0], 2])

        def step(self, tokens, state):
            logits = tf.tile(tf.constant([[0.0, 50.0, 10.0, 0.0, 5.0, 0.0]]), [tf.shape(tokens)[0], 1])
            return logits, state, {}

    png = tf.io.encode_png(tf.zeros([8, 8, 3], tf.uint8))
    endpoints = caption_endpoints(Prefers(), words, start=2, end=3, max_steps=3, image_size=8, beam_width=2,
                                  attention=False)
    for name in ("serving_default", "beam"):
        caption = endpoints[name].fn(tf.stack([png]))["caption"][0].numpy().decode()
        assert caption.split() == ["dog"] * 3 or caption.lower().startswith("dog"), (name, caption)
        assert "[UNK]" not in caption and "[START]" not in caption, (name, caption)

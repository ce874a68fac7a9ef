"""Pretrain, then fine-tune: a word-level language model (word_vectors, model.objective=lm) trained on the
demo's training sentences (and other demo text) starts sentiment's encoder (model.encoder_from=RUN_DIR); the encoder computes
what the language model does before training, stays frozen for train.unfreeze_epochs, and its export
answers like the run; a run that is not a language model, or one that does not match, is one error line."""

from __future__ import annotations

import json

import numpy as np
import pytest

import seqapps
from seqapps.core.errors import ConfigError

LM = ["model.objective=lm", "model.dim=8", "model.units=8", "model.layers=2", "model.bidirectional=true",
      "data.min_count=1", "train.epochs=1", "train.batch_size=64",
      "train.learning_rate=0.01", "train.patience=0"]
SENTIMENT = ["model.units=8", "model.layers=2", "model.subword_buckets=500"]


def _training_texts():
    from seqapps.training.fit import resolve_config
    from seqapps.core.registry import get

    task = get("sentiment")
    cfg = resolve_config(task, "demo")
    return task.load_data(cfg).train.materialize()[0]


@pytest.fixture(scope="module")
def lm(tmp_path_factory):
    root = tmp_path_factory.mktemp("pretrain")
    text = root / "train.txt"
    text.write_text("\n".join(_training_texts()) + "\n", encoding="utf-8")  # the training split's own sentences
    # (all in the language model's training split: they are the buckets sentiment's split left for training)
    # and word_vectors' demo text, whose lines also validate
    return seqapps.train("word_vectors", f"{text}+demo", run_dir=root / "lm", verbose=0, evaluate=False, overrides=LM)


def _lm_weights(run):
    import keras

    model = keras.saving.load_model(run.model_path, compile=False)
    words = (run.dir / "words.txt").read_text(encoding="utf-8").split("\n")
    return model, words


@pytest.mark.slow
def test_the_encoder_starts_as_the_language_model(lm):
    """Before training: the shared words' rows, the unknown row and every recurrent kernel are the language
    model's, and the encoder's outputs are its forward and backward states side by side."""
    import keras
    import tensorflow as tf

    from seqapps.core.registry import get
    from seqapps.data import text as textlib
    from seqapps.training.fit import resolve_config
    from tasks.word_vectors.lm import word_table

    task = get("sentiment")
    cfg = resolve_config(task, "demo", overrides=[*SENTIMENT, "model.subwords=false", f"model.encoder_from={lm.dir}"])
    task.validate(cfg)
    splits = task.load_data(cfg)
    prep = task.fit_preprocessing(cfg, splits)
    model = task.build_model(cfg, prep)
    lm_model, words = _lm_weights(lm)

    table = keras.ops.convert_to_numpy(model.get_layer("embedding").embeddings)
    lm_table = keras.ops.convert_to_numpy(lm_model.get_layer("embedding").embeddings)
    assert table.shape[1] == 8  # the language model's width, not model.embedding_dim's 128
    shared = [(i, words.index(w) + 2) for i, w in enumerate(prep.vocabulary) if i >= 2 and w in words]
    assert len(shared) == len(prep.vocabulary) - 2  # it read the same sentences: every word is known
    mine, theirs = map(list, zip(*shared))
    np.testing.assert_array_equal(table[mine], lm_table[theirs])
    np.testing.assert_array_equal(table[1], lm_table[1])
    for i, direction in enumerate(("forward", "backward")):
        layer = getattr(model.get_layer("encoder_1"), f"{direction}_layer")
        for a, b in zip(layer.get_weights(), lm_model.get_layer(f"{direction}_1").get_weights()):
            np.testing.assert_array_equal(a, b)
        kernel, recurrent, bias = getattr(model.get_layer("encoder_2"), f"{direction}_layer").get_weights()
        lm_kernel, lm_recurrent, lm_bias = lm_model.get_layer(f"{direction}_2").get_weights()
        np.testing.assert_array_equal(kernel[8 * i:8 * (i + 1)], lm_kernel)   # its own direction's outputs
        assert not kernel[8 * (1 - i):8 * (2 - i)].any()                        # the other's start at zero
        np.testing.assert_array_equal(recurrent, lm_recurrent)
        np.testing.assert_array_equal(bias, lm_bias)

    texts = _training_texts()[:6]
    inputs = task.encoder(cfg, prep)(tf.constant(texts))[0]
    encoded = keras.Model(model.inputs, model.get_layer("encoder_2").output)(inputs)
    lm_tokens = word_table(words).lookup(textlib.words(tf.constant(texts))).to_tensor(0)
    states = keras.Model(lm_model.inputs, [lm_model.get_layer("forward_2").output,
                                           lm_model.get_layer("backward_2_order").output])(lm_tokens)
    mask = keras.ops.convert_to_numpy(inputs["tokens"]) != 0
    assert (mask == (keras.ops.convert_to_numpy(lm_tokens) != 0)).all()
    both = np.concatenate([keras.ops.convert_to_numpy(s) for s in states], axis=-1)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(encoded)[mask], both[mask], atol=1e-5)


@pytest.mark.slow
def test_fine_tuning_with_the_encoder_frozen_first_and_its_export_in_a_fresh_process(lm, tmp_path):
    import keras

    from conftest import run_fresh

    run = seqapps.train("sentiment", "demo", run_dir=tmp_path / "run", verbose=0, evaluate=False,
                        overrides=[*SENTIMENT, "train.epochs=1", "train.unfreeze_epochs=1",
                                   f"model.encoder_from={lm.dir}"])
    model = keras.saving.load_model(run.model_path, compile=False)
    lm_model, _ = _lm_weights(lm)
    # frozen for its only epoch: the recurrent layers are still the language model's; the head learned
    for a, b in zip(model.get_layer("encoder_1").forward_layer.get_weights(),
                    lm_model.get_layer("forward_1").get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(model.get_layer("embedding").get_weights()[0][1:],  # (row 0 pads: drawn)
                                  _started(run, lm).get_layer("embedding").get_weights()[0][1:])

    export = run.export(tmp_path / "export")
    texts = ["a gripping, beautiful film", "dull and far too long", "", "the plot"]
    expected = [r["probabilities"] for r in seqapps.load(run.dir).predict(texts)]
    got = run_fresh(f"""
import json, tensorflow as tf
serve = tf.saved_model.load({str(export)!r}).signatures["serving_default"]
out = serve(text=tf.constant({texts!r}))
print(json.dumps(out["probabilities"].numpy().tolist()))
""", tmp_path)
    labels = json.loads((export / "metadata.json").read_text())["labels"]
    np.testing.assert_allclose(got, [[p[label] for label in labels] for p in expected], atol=1e-5)

    # without freezing, the encoder moves from where the language model left it
    moved = seqapps.train("sentiment", "demo", run_dir=tmp_path / "moved", verbose=0, evaluate=False,
                          overrides=[*SENTIMENT, "train.epochs=1", "train.learning_rate=0.01",
                                     f"model.encoder_from={lm.dir}"])
    kernel = keras.saving.load_model(moved.model_path, compile=False).get_layer("encoder_1").forward_layer.cell.kernel
    start = lm_model.get_layer("forward_1").cell.kernel
    assert not np.allclose(kernel.numpy(), start.numpy())
    assert np.abs(kernel.numpy() - start.numpy()).max() < 0.5


def _started(run, lm):
    """The sentiment model of ``run``'s config as model.encoder_from starts it, before training."""
    from seqapps.training.fit import resolve_config

    cfg = resolve_config(run.task, "demo", overrides=[*SENTIMENT, f"model.encoder_from={lm.dir}"])
    return run.task.build_model(cfg, run.task.load_preprocessing(cfg, run.dir))


# -- one error line, before a run is written -----------------------------------------------------------
def _fake_run(path, task="word_vectors", **model):
    path.mkdir()
    (path / "run.json").write_text(json.dumps({"task": task}))
    (path / "config.json").write_text(json.dumps({"model": {"objective": "lm", "cell": "lstm", "units": 8,
                                                            "layers": 2, "bidirectional": True, "dim": 8, **model}}))
    (path / "best.keras").write_bytes(b"")
    (path / "words.txt").write_text("the\n")
    return path


@pytest.mark.parametrize("fake, overrides, message", [
    (dict(task="sentiment"), [], r"a sentiment run, not a language model"),
    (dict(objective="skipgram"), [], r"a word_vectors run of skip-gram vectors, not a language model"),
    ({}, ["model.cell=gru"], r"does not match the language model: model\.cell=gru \(the language model's: lstm\)$"),
    ({}, ["model.units=16", "model.layers=1"],
     r"model\.units=16 \(the language model's: 8\); model\.layers=1 \(the language model's: 2\)$"),
    (dict(bidirectional=False), [], r"model\.bidirectional=true \(the language model reads forward only"),
    ({}, ["model.word_vectors=count:demo"], r"model\.word_vectors and model\.encoder_from both"),
    ({}, ["model.architecture=transformer", "model.heads=2"], r"needs the recurrent encoder"),
])
def test_a_run_that_is_not_a_matching_language_model_is_one_line(tmp_path, fake, overrides, message):
    run = _fake_run(tmp_path / "lm", **fake)
    with pytest.raises(ConfigError, match=message) as e:
        seqapps.train("sentiment", "demo", run_dir=tmp_path / "run", verbose=0,
                      overrides=[*SENTIMENT, f"model.encoder_from={run}", *overrides])
    assert "\n" not in str(e.value)
    assert not (tmp_path / "run").exists()


def test_not_a_run_and_freezing_without_a_language_model_are_one_line(tmp_path):
    with pytest.raises(ConfigError, match="not a run directory"):
        seqapps.train("sentiment", "demo", run_dir=tmp_path / "run", verbose=0,
                      overrides=[f"model.encoder_from={tmp_path}"])
    with pytest.raises(ConfigError, match="train.unfreeze_epochs keeps an encoder started from model.encoder_from"):
        seqapps.train("sentiment", "demo", run_dir=tmp_path / "run", verbose=0, overrides=["train.unfreeze_epochs=1"])
    assert not (tmp_path / "run").exists()

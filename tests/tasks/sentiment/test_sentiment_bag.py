"""sentiment's one-to-one baseline, ``model.architecture=bag``: word order plays no part (and does for
the recurrent default), it learns a small batch, its export answers like the run in a process with
only TensorFlow, it trains on JAX, and a bad architecture is one line."""

from __future__ import annotations

import importlib.util
import json
import pickle

import numpy as np
import pytest

import seqapps
from conftest import FRESH, assert_same_outputs, fitted, run_cli, run_fresh, sample_batches
from seqapps.core import registry
from seqapps.core.errors import ConfigError
from seqapps.core.testing import make_batch

BAG = ["model.architecture=bag", "model.units=16", "model.embedding_dim=16", "model.subword_buckets=500",
       "train.learning_rate=0.005"]
SENTENCES = ["the acting was brilliant but the script is tedious", "a gripping , beautiful film that never drags",
             "dull and far too long , with a shallow plot", "not good , not bad , just a film about a dog"]


def shuffled(texts, seed=0):
    """Each text with its words in another order (never the same order)."""
    rng, out = np.random.default_rng(seed), []
    for text in texts:
        words = text.split()
        order = rng.permutation(len(words))
        while (order == np.arange(len(words))).all():
            order = rng.permutation(len(words))
        out.append(" ".join(words[i] for i in order))
    return out


@pytest.fixture(scope="module")
def bag(tmp_path_factory):
    root = tmp_path_factory.mktemp("sentiment-bag")
    run = seqapps.train("sentiment", "demo", epochs=3, run_dir=root / "run", verbose=0, overrides=BAG)
    export = run.export(root / "export")
    return {"task": registry.get("sentiment"), "run": run, "export": export, "loaded": seqapps.load(export),
            "memory": seqapps.load(run.dir), "meta": json.loads((export / "metadata.json").read_text())}


def probabilities(task, cfg, prep, model, texts):
    import tensorflow as tf

    return np.asarray(model(task.encoder(cfg, prep)(tf.constant(texts))[0], training=False))


@pytest.mark.slow
def test_the_bag_ignores_word_order_and_the_rnn_does_not(bag):
    for predictor in (bag["loaded"], bag["memory"]):  # the export and the run, raw strings in
        same, moved = (predictor.call(text=t)["probabilities"] for t in (SENTENCES, shuffled(SENTENCES)))
        np.testing.assert_allclose(moved, same, rtol=0, atol=1e-6)
        assert np.ptp(same[:, 1]) > 1e-3  # the sentences get different answers: the model is no constant
    for architecture in ("bag", "rnn"):  # the same small fit, the model called directly
        task, cfg, prep, model, _ = fitted(f"model.architecture={architecture}", epochs=5)
        same, moved = (probabilities(task, cfg, prep, model, t) for t in (SENTENCES, shuffled(SENTENCES)))
        gap = float(np.abs(same - moved).max())
        assert (gap < 1e-6) if architecture == "bag" else (gap > 1e-3), (architecture, gap)


@pytest.mark.slow
def test_the_bag_overfits_a_small_batch():
    _, cfg, _, model, history = fitted("model.architecture=bag")
    assert cfg.model.subwords and any(layer.name == "bag_pooling" for layer in model.layers)
    assert not any("lstm" in layer.name or "encoder" in layer.name for layer in model.layers)
    assert history.history["accuracy"][-1] == 1.0 and history.history["loss"][-1] < 0.05


@pytest.mark.slow
def test_the_export_answers_in_a_fresh_tensorflow_process_like_the_run(bag, tmp_path):
    batches = sample_batches(bag)
    (tmp_path / "batches.pkl").write_bytes(pickle.dumps(batches))
    result = run_fresh(FRESH.format(export=str(bag["export"])), tmp_path)
    outputs = pickle.loads((tmp_path / "outputs.pkl").read_bytes())
    assert result["signatures"] == sorted(bag["memory"].signatures) == ["self_attention", "serving_default"]
    for name, calls in batches.items():
        for kind in ("batch", "empty"):
            assert isinstance(outputs[name][kind], dict), outputs[name][kind]
            assert_same_outputs(outputs[name][kind], bag["memory"].call(name, **calls[kind]), f"bag:{name}:{kind}")
    signature = bag["meta"]["signatures"]["serving_default"]  # the same signature as the recurrent model's
    assert signature["inputs"] == {"text": {"dtype": "string", "shape": [None]}}
    assert bag["meta"]["config"]["model"]["architecture"] == "bag"
    results = bag["loaded"].predict(["", "   ", "a gripping film"])  # the Python helpers are the same too
    assert [sorted(r) for r in results] == [["label", "probabilities", "probability"]] * 3
    maps = bag["loaded"].self_attention(["a gripping film", ""])  # no self-attention: 0 layers, the words kept
    assert maps[0]["tokens"] == ["a", "gripping", "film"] and maps[0]["attention"].shape == (0, 0, 3, 3)
    assert maps[1]["tokens"] == [] and maps[1]["attention"].shape == (0, 0, 0, 0)


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed")
def test_the_bag_trains_on_jax_and_its_tensorflow_export_answers_like_the_run(bag, tmp_path):
    run = seqapps.train("sentiment", "demo", backend="jax", epochs=1, run_dir=tmp_path / "run", verbose=0,
                        evaluate=False, overrides=[*BAG, "train.steps_per_epoch=2"])
    assert json.loads((run.dir / "run.json").read_text())["backend"] == "jax"
    export = run.export(tmp_path / "export")  # this process runs TensorFlow
    loaded, memory = seqapps.load(export), seqapps.load(run.dir)
    batch = make_batch(loaded.signatures["serving_default"][1],
                       bag["task"].sample_inputs(np.random.default_rng(1), 5, bag["meta"]))
    assert_same_outputs(loaded.call(**batch), memory.call(**batch), "bag trained on jax")


@pytest.mark.slow
def test_a_bad_architecture_or_bag_pooling_is_one_line(tmp_path):
    out = run_cli("train", "sentiment", "--data", "demo", "--set", "model.architecture=cnn",
                  "--run-dir", tmp_path / "r")
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "error: model.architecture must be one of rnn, transformer, bag, got 'cnn'"]
    assert not (tmp_path / "r").exists()
    with pytest.raises(ConfigError, match=r"^model.bag_pooling must be one of mean, sum, got 'max'$"):
        seqapps.train("sentiment", "demo", overrides=["model.architecture=bag", "model.bag_pooling=max"],
                      run_dir=tmp_path / "r", verbose=0)
    assert not (tmp_path / "r").exists()


def test_bag_pooling_sums_or_averages_the_words_only():
    from seqapps.layers import MaskedPooling

    x = np.array([[[1.0, -2.0], [5.0, 7.0], [100.0, 100.0]]], dtype="float32")  # the last step is padding
    mask = np.array([[True, True, False]])
    np.testing.assert_allclose(MaskedPooling("sum")(x, mask=mask), [[6.0, 5.0]])
    np.testing.assert_allclose(MaskedPooling("mean")(x, mask=mask), [[3.0, 2.5]])
    np.testing.assert_allclose(MaskedPooling("sum")(x, mask=np.zeros((1, 3), bool)), [[0.0, 0.0]])
    assert MaskedPooling.from_config(MaskedPooling("sum").get_config()).mode == "sum"

"""``model.architecture=transformer`` in the text tasks: it learns a small batch, its export answers like
the run in a process with only TensorFlow (same signatures as the recurrent model), and settings it
cannot use are one line at config time."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

import seqapps
from conftest import run_fresh
from seqapps import registry
from seqapps.errors import ConfigError
from test_contract import FRESH, assert_same_outputs, sample_batches
from test_sentiment_bag import fitted

SENTIMENT = ["model.architecture=transformer", "model.units=16", "model.heads=2", "model.layers=1",
             "model.embedding_dim=16", "model.subword_buckets=500", "train.learning_rate=0.005"]


def test_the_sentiment_transformer_overfits_a_small_batch():
    _, cfg, _, model, history = fitted("model.architecture=transformer", "model.heads=2", "model.ff_units=32")
    blocks = [layer for layer in model.layers if type(layer).__name__ == "TransformerBlock"]
    assert len(blocks) == cfg.model.layers == 1 and blocks[0].ff_units == 32
    assert not any("lstm" in layer.name for layer in model.layers)
    assert history.history["accuracy"][-1] == 1.0 and history.history["loss"][-1] < 0.05


@pytest.fixture(scope="module")
def sentiment(tmp_path_factory):
    root = tmp_path_factory.mktemp("sentiment-transformer")
    run = seqapps.train("sentiment", "demo", epochs=2, run_dir=root / "run", verbose=0, overrides=SENTIMENT)
    export = run.export(root / "export")
    return {"task": registry.get("sentiment"), "run": run, "export": export, "loaded": seqapps.load(export),
            "memory": seqapps.load(run.dir), "meta": json.loads((export / "metadata.json").read_text())}


def test_the_sentiment_transformer_export_answers_in_a_fresh_process_like_the_run(sentiment, tmp_path):
    batches = sample_batches(sentiment)
    (tmp_path / "batches.pkl").write_bytes(pickle.dumps(batches))
    result = run_fresh(FRESH.format(export=str(sentiment["export"])), tmp_path)
    outputs = pickle.loads((tmp_path / "outputs.pkl").read_bytes())
    assert result["signatures"] == ["serving_default"]
    for name, calls in batches.items():
        for kind in ("batch", "empty"):
            assert isinstance(outputs[name][kind], dict), outputs[name][kind]
            assert_same_outputs(outputs[name][kind], sentiment["memory"].call(name, **calls[kind]),
                                f"transformer:{name}:{kind}")
    assert sentiment["meta"]["signatures"]["serving_default"]["inputs"] == {"text": {"dtype": "string",
                                                                                     "shape": [None]}}
    texts = ["", "a gripping film", "word " * 2000]  # empty, short, longer than data.max_length
    assert [r["label"] in ("negative", "positive") for r in sentiment["loaded"].predict(texts)] == [True] * 3
    padded = sentiment["loaded"].call(text=["a gripping film", "a gripping film " + "dull " * 40])
    alone = sentiment["loaded"].call(text=["a gripping film"])  # padding in the batch changes nothing
    np.testing.assert_allclose(padded["probabilities"][:1], alone["probabilities"], atol=1e-6)


@pytest.mark.parametrize("overrides, message", [
    (["model.heads=3"], r"^model.heads \(3\) must divide model.units \(64\)"),
    (["model.heads=0"], r"^model.heads must be >= 1"),
    (["model.pooling=last"], r"^model.pooling=last reads a recurrent layer's final state"),
    (["model.ff_units=-1"], r"^model.ff_units must be"),
])
def test_transformer_settings_it_cannot_use_are_one_line(overrides, message, tmp_path):
    with pytest.raises(ConfigError, match=message):
        seqapps.train("sentiment", "demo", overrides=["model.architecture=transformer", *overrides],
                      run_dir=tmp_path / "r", verbose=0)
    assert not (tmp_path / "r").exists()

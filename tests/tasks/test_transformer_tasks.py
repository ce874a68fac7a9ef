"""``model.architecture=transformer`` in the text tasks: it learns a small batch, its export answers like
the run in a process with only TensorFlow (the same signatures as the recurrent model's), no answer
depends on the rest of its batch, and settings it cannot use are one line at config time."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import keras
import numpy as np
import pytest

import seqapps
from conftest import FRESH, assert_same_outputs, fitted, run_fresh, sample_batches
from seqapps.core import config as configlib, registry
from seqapps.core.errors import ConfigError
from seqapps.core.testing import batch_independence

TRANSFORMER = ["model.architecture=transformer", "model.heads=2", "model.layers=1"]
TINY = {  # the tasks' tiny settings (seqapps.core.task.Task.tiny_overrides), the width a multiple of the heads
    "sentiment": ["model.units=16", "model.embedding_dim=16", "model.subword_buckets=500",
                  "train.learning_rate=0.005", "train.epochs=2"],
    "pos": ["model.units=8", "model.crf=true", "train.epochs=2"],
    "translation": ["model.units=8", "train.steps_per_epoch=6"],
    "char_lm": ["model.units=8", "train.steps_per_epoch=8"],
}


@pytest.mark.slow
def test_the_sentiment_transformer_overfits_a_small_batch():
    _, cfg, _, model, history = fitted("model.architecture=transformer", "model.heads=2", "model.ff_units=32")
    blocks = [layer for layer in model.layers if type(layer).__name__ == "TransformerBlock"]
    assert len(blocks) == cfg.model.layers == 1 and blocks[0].ff_units == 32
    assert not any("lstm" in layer.name for layer in model.layers)
    assert history.history["accuracy"][-1] == 1.0 and history.history["loss"][-1] < 0.05


@pytest.mark.parametrize("task_name", ["pos", "translation", "char_lm"])
@pytest.mark.slow
def test_a_transformer_overfits_a_small_batch(task_name):
    task = registry.get(task_name)
    cfg = task.default_config().override(["data.source=demo", *task.tiny_overrides, *TRANSFORMER, "model.units=16"])
    quiet = [f"{key}=0" for key in ("model.dropout", "model.embedding_dropout", "model.word_dropout")
             if configlib.get_value(cfg, key) is not None]  # no dropout: the batch is to be learnt by heart
    cfg = cfg.override(quiet)
    task.validate(cfg)
    splits = task.load_data(cfg)
    prep = task.fit_preprocessing(cfg, splits)
    batch = next(iter(task.datasets(cfg, prep, splits)[0]))  # (x, y) or (x, y, weights)
    keras.utils.set_random_seed(0)
    model = task.build_model(cfg, prep)
    assert any(type(layer).__name__ == "TransformerBlock" for layer in model.layers)
    assert not any(isinstance(layer, keras.layers.RNN) for layer in model._flatten_layers())
    task.compile(model, cfg, keras.optimizers.Adam(0.01), prep)
    losses = model.fit(*batch[:2], sample_weight=batch[2] if len(batch) > 2 else None, epochs=60,
                       verbose=0).history["loss"]
    assert losses[-1] < 0.05 * losses[0], losses[::10]


@pytest.fixture(scope="module", params=sorted(TINY))
def trained(request, tmp_path_factory):
    name = request.param
    task = registry.get(name)
    root = tmp_path_factory.mktemp(f"{name}-transformer")
    run = seqapps.train(name, "demo", run_dir=root / "run", verbose=0,
                        overrides=[*task.tiny_overrides, *TRANSFORMER, *TINY[name]])
    export = run.export(root / "export")
    return {"task": task, "run": run, "export": export, "loaded": seqapps.load(export),
            "memory": seqapps.load(run.dir), "meta": json.loads((export / "metadata.json").read_text())}


@pytest.mark.slow
def test_the_export_answers_in_a_fresh_process_like_the_run(trained, tmp_path):
    batches = sample_batches(trained)
    (tmp_path / "batches.pkl").write_bytes(pickle.dumps(batches))
    result = run_fresh(FRESH.format(export=str(trained["export"])), tmp_path)
    outputs = pickle.loads((tmp_path / "outputs.pkl").read_bytes())
    assert result["signatures"] == sorted(trained["memory"].signatures)
    for name, calls in batches.items():
        for kind in ("batch", "empty"):
            assert isinstance(outputs[name][kind], dict), outputs[name][kind]
            assert_same_outputs(outputs[name][kind], trained["memory"].call(name, **calls[kind]),
                                f"{trained['task'].name} transformer:{name}:{kind}")
    assert trained["meta"]["config"]["model"]["architecture"] == "transformer"


@pytest.mark.slow
def test_the_signatures_are_the_recurrent_models_and_no_answer_depends_on_its_batch(trained):
    task = trained["task"]
    cfg = task.default_config().override(["data.source=demo", *task.tiny_overrides])  # the recurrent model
    splits = task.load_data(cfg)
    prep = task.fit_preprocessing(cfg, splits)
    endpoints = task.endpoints(task.build_model(cfg, prep), prep, cfg)
    exported = trained["meta"]["signatures"]
    assert sorted(exported) == sorted(endpoints)
    for name, endpoint in endpoints.items():
        assert {spec.name: (spec.dtype.name, spec.shape.as_list()) for spec in endpoint.input_signature} == \
            {k: (v["dtype"], v["shape"]) for k, v in exported[name]["inputs"].items()}
    for signature in trained["loaded"].signatures:
        assert batch_independence(task, trained["loaded"], trained["meta"], signature, max_examples=4) > 0


@pytest.mark.slow
def test_self_attention_maps_come_from_the_export_and_evaluate_plots_them(trained, tmp_path):
    task = trained["task"]
    if task.name not in ("sentiment", "pos"):
        pytest.skip("the self_attention signature is the encoder tasks' (translation plots its cross-attention, "
                    "char_lm's inspect its self-attention)")
    texts = ["the film is wonderful !", "I saw a red car", ""]
    maps = trained["loaded"].self_attention(texts)
    assert [m["tokens"] for m in maps] == [["the", "film", "is", "wonderful", "!"],
                                           ["i" if task.name == "sentiment" else "I", "saw", "a", "red", "car"], []]
    for m in maps:
        n = len(m["tokens"])
        assert m["attention"].shape == (1, 2, n, n)  # one block, two heads
        np.testing.assert_allclose(m["attention"].sum(-1), 1.0, atol=1e-5)  # padding gets none of it
    # the short sentence in a batch with a long one: the same maps (padding is never attended to)
    alone = trained["loaded"].self_attention("I saw a red car")
    np.testing.assert_allclose(alone["attention"], maps[1]["attention"], atol=1e-5)
    # the weights are the model's own: the first block's attention layer on the run's embeddings
    memory = trained["memory"].self_attention(texts[:2])
    for a, b in zip(memory, maps):
        np.testing.assert_allclose(a["attention"], b["attention"], atol=1e-5)
    examples = (["the film is wonderful and warm", "a dull slow story"], ["positive", "negative"]) \
        if task.name == "sentiment" else [(["I", "saw", "a", "red", "car"], ["PRON", "VERB", "DET", "ADJ", "NOUN"])]
    report = task.evaluate(trained["loaded"], examples, trained["run"].config, out_dir=tmp_path, plot=True)
    plots = report["self_attention_plots"]
    assert len(plots) == (2 if task.name == "sentiment" else 1) and all(Path(p).stat().st_size > 1000 for p in plots)
    assert "self-attention maps: " in task.format_metrics(report)


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


def test_pos_refuses_heads_that_do_not_divide_its_width(tmp_path):
    with pytest.raises(ConfigError, match=r"^model.heads \(5\) must divide model.units \(128\)"):
        seqapps.train("pos", "demo", overrides=["model.architecture=transformer", "model.heads=5"],
                      run_dir=tmp_path / "r", verbose=0)


@pytest.mark.slow
def test_every_signature_survives_hostile_inputs_and_long_texts(trained):
    """The recurrent models' bad-input contract: random bytes, NaN/inf, extreme integers, batches
    of 0..5, and (for the text inputs) an empty string, emoji and 100,000 characters."""
    from seqapps.core.testing import fuzz_signature

    for signature in trained["loaded"].signatures:
        counts = fuzz_signature(trained["loaded"], signature, max_examples=6, seed=0)
        assert counts["tried"] == 6, counts
    texts = ["", "😀 🎉 ok", "a" * 100_000]
    name = trained["task"].name
    if name == "char_lm":  # a prime far longer than the context window (train.bptt)
        out = trained["loaded"].generate(texts, length=5, temperature=0.0)
        assert [len(t) for t in out] == [5, 5, 5]
        assert trained["loaded"].generate("x" * 5000 + "ab", length=5, temperature=0.0) == \
            trained["loaded"].generate("y" * 40 + "x" * 60 + "ab", length=5, temperature=0.0)  # only the end counts
    else:
        assert len(trained["loaded"].predict(texts)) == 3


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(TINY))
def test_the_transformer_trains_and_exports_in_mixed_precision(name, tmp_path):
    """float16 compute, float32 scores and outputs: finite answers from the export, and the policy is
    float32 again afterwards."""
    from seqapps.core.testing import make_batch

    task = registry.get(name)
    overrides = [*task.tiny_overrides, *TRANSFORMER, *TINY[name], "train.mixed_precision=true",
                 "train.steps_per_epoch=2", "train.epochs=1"]
    run = seqapps.train(name, "demo", overrides=overrides, run_dir=tmp_path / "run", verbose=0, evaluate=False)
    assert keras.mixed_precision.global_policy().name == "float32"
    export = run.export(tmp_path / "export")
    predictor, meta = seqapps.load(export), json.loads((export / "metadata.json").read_text())
    specs = predictor.signatures["serving_default"][1]
    out = predictor.call(**make_batch(specs, task.sample_inputs(np.random.default_rng(0), 3, meta)))
    for key, value in out.items():
        assert value.shape[0] == 3, key
        if np.issubdtype(value.dtype, np.floating):
            assert value.dtype != np.float16 and np.isfinite(value).all(), key

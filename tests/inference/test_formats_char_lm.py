"""ONNX exports of char_lm: one step of the model in the graph, the loops over characters (reading,
scoring, greedy and sampled generation) in NumPy; score and greedy generation answer as the SavedModel."""

from __future__ import annotations

import json

import numpy as np
import pytest

import seqapps
from conftest import without_tensorflow

pytestmark = pytest.mark.slow  # every test uses trained runs and their exports

TEXTS = ["hello there", "", "a", "unknown ünïcode 😀 ☃ chars", "First Citizen:\nBefore we proceed any further",
         "x" * 400]
PRIMES = ["", "the ", "😀☃", "First Citizen:\n", "ab" * 2500]  # the last one over the 4,000 characters read
INT8_BOUND = 0.05  # largest |nats per char int8 - SavedModel| allowed; measured 1.0e-2 on a run like this one


def train(root, *overrides):
    from seqapps.inference.export import export

    run = seqapps.train("char_lm", "demo", epochs=1, run_dir=root / "run", verbose=0,
                        overrides=["train.batch_size=8", "train.bptt=16", "train.steps_per_epoch=5", *overrides])
    paths = {"run": run.dir, "savedmodel": run.export(root / "savedmodel")}
    for q in ("none", "int8"):
        paths[q] = export(run.bundle(), root / f"onnx-{q}", "onnx", q)
    return paths


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """A tiny recurrent char_lm run, its SavedModel, and its ONNX exports fp32 and int8."""
    return train(tmp_path_factory.mktemp("formats-char-lm"), "model.units=16", "model.embedding_dim=8")


@pytest.fixture(scope="module")
def reference(exports):
    return seqapps.load(exports["savedmodel"])


def per_char(out):
    return out["log_likelihood"] / np.maximum(out["count"], 1)


def test_folder_and_metadata(exports):
    folder = exports["none"]
    assert sorted(p.name for p in folder.iterdir()) == ["chars.json", "metadata.json", "model.onnx", "state.npz",
                                                         "tokenizer.json"]
    meta = json.loads((folder / "metadata.json").read_text())
    assert meta["task"] == "char_lm" and meta["format"] == "onnx"
    assert set(meta["graph"]["inputs"]) == {"tokens", "h", "c"} and "NumPy" in meta["graph"]["outside"]


def test_score_like_the_savedmodel(exports, reference):
    want = reference.call("score", text=TEXTS)
    for quantize, bound in (("none", 1e-4), ("int8", INT8_BOUND)):
        model = seqapps.load(exports[quantize])
        got = model.call("score", text=TEXTS)
        assert (got["count"] == want["count"]).all()
        assert np.abs(per_char(got) - per_char(want)).max() <= bound, (quantize, per_char(got), per_char(want))
        text = "".join(TEXTS[3:])
        assert model.score(text, streams=3)["nats_per_char"] == pytest.approx(
            reference.score(text, streams=3)["nats_per_char"], abs=bound)
    empty = seqapps.load(exports["none"]).call("score", text=[])
    assert empty["log_likelihood"].shape == (0,) and empty["count"].shape == (0,)


def test_greedy_generation_like_the_savedmodel(exports, reference):
    model = seqapps.load(exports["none"])
    want = reference.generate(PRIMES, 40, temperature=0.0)
    assert model.generate(PRIMES, 40, temperature=0.0) == want
    assert model.generate("the ", 25, temperature=0.0) == reference.generate("the ", 25, temperature=0.0)
    # top_k 1 is greedy whatever the draw, so the seeded sampling path agrees too
    assert model.generate(PRIMES[:3], 30, temperature=1.0, top_k=1, seed=5) == [w[:30] for w in want[:3]]
    out = model.call(prime=[], length=5, temperature=0.0, top_k=0, top_p=1.0, seed=1)
    assert out["text"].shape == (0,) and out["length"].shape == (0,)
    assert model.generate(["x", "y"], 0, temperature=0.0) == ["", ""]
    int8 = seqapps.load(exports["int8"]).generate(PRIMES, 40, temperature=0.0)
    assert [len(t) for t in int8] == [40] * len(PRIMES)


def test_seeded_sampling(exports):
    """A seed gives the same text again (NumPy's generator: not the SavedModel's draws), only characters of
    the vocabulary, and the filters hold: top_p near 0 is greedy."""
    model = seqapps.load(exports["none"])
    chars = set(json.loads((exports["none"] / "chars.json").read_text()))
    a = model.generate(["the ", ""], 60, temperature=1.0, top_k=10, top_p=0.9, seed=7)
    assert a == model.generate(["the ", ""], 60, temperature=1.0, top_k=10, top_p=0.9, seed=7)
    assert a != model.generate(["the ", ""], 60, temperature=1.0, top_k=10, top_p=0.9, seed=8)
    assert all(set(t) <= chars and len(t) == 60 for t in a)
    greedy = model.generate("the ", 30, temperature=0.0)
    assert model.generate("the ", 30, temperature=2.0, top_p=1e-6, seed=3) == greedy


def test_errors(exports):
    from seqapps.core.errors import ConfigError, DataError, ExportError

    model = seqapps.load(exports["none"])
    with pytest.raises(ConfigError):
        model.generate("a", 5, temperature=-1.0)
    with pytest.raises(DataError, match="invalid input: top_p"):
        model.call(prime=["a"], length=5, temperature=1.0, top_k=0, top_p=0.0, seed=1)
    with pytest.raises(DataError):
        model.score("a")
    with pytest.raises(ExportError, match="states"):
        model.call("states", text=["abc"])


def test_answers_without_tensorflow(exports, reference, tmp_path):
    code = f"""
import seqapps
model = seqapps.load({str(exports["none"])!r})
out = {{"greedy": model.generate({PRIMES[:4]!r}, 30, temperature=0.0),
       "nats": model.score({"".join(TEXTS)!r}, streams=4)["nats_per_char"]}}
"""
    out = without_tensorflow(code, tmp_path)
    assert out["greedy"] == reference.generate(PRIMES[:4], 30, temperature=0.0)
    assert out["nats"] == pytest.approx(reference.score("".join(TEXTS), streams=4)["nats_per_char"], abs=1e-4)


def test_transformer_steps_through_its_cache(tmp_path):
    """The transformer's step carries its ring key/value cache as graph inputs and outputs."""
    paths = train(tmp_path, "model.architecture=transformer", "model.units=16", "model.layers=1", "model.heads=2")
    reference, model = seqapps.load(paths["savedmodel"]), seqapps.load(paths["none"])
    assert {"cache_0.key", "cache_0.value", "cache_0.positions", "position"} <= set(
        json.loads((paths["none"] / "metadata.json").read_text())["graph"]["inputs"])
    texts = TEXTS[:4] + ["y" * 40]  # longer than the 16-character context: the ring wraps
    want, got = reference.call("score", text=texts), model.call("score", text=texts)
    assert np.abs(per_char(got) - per_char(want)).max() <= 1e-4
    primes = PRIMES[:4] + ["z" * 40]
    assert model.generate(primes, 30, temperature=0.0) == reference.generate(primes, 30, temperature=0.0)

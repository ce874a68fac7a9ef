"""ONNX and LiteRT exports of word_vectors: the vector table in the graph, the lookup and the cosine top k in
NumPy (tasks.word_vectors.predicting); they answer as the SavedModel does, refuse what it refuses with the same
line, and load without TensorFlow."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import seqapps
from conftest import without_tensorflow
from seqapps.core.errors import DataError
from tasks.word_vectors.predicting import standardize

FORMATS = [("onnx", "none"), ("onnx", "int8"), ("onnx", "float16"), ("litert", "none"), ("litert", "int8"),
           ("litert", "float16")]
# Quantized: the largest |got - want| of a vector's number (as a fraction of the table's largest) and of a top-k
# cosine similarity. Measured on two runs of this tiny recipe (106 words x 8), largest: ONNX int8 0.0037 of the table
# and 0.008-0.011 of a similarity (top-1 neighbour the same for 98-99% of words), float16 0.0003 and 0.0003; LiteRT
# float16 the same as ONNX's; LiteRT's int8 leaves a table this small (under 1,024 numbers) in float, as fp32.
QUANTIZED = {"int8": (0.01, 0.02), "float16": (0.002, 0.001)}
ODD = ["UNSEEN-word", "", "  Cat ", "\tTHE\n", "x" * 150, "the" + "s" * 120, "a b", "\u00a0the", "THE\0tail", "\u0130"]
LATIN = "àáâãäåæçèéêëìíîïñòóôõöøùúûüýÿÀÁÂÃÄÅÆÇÈÉÊËÌÍÎÏÑÒÓÔÕÖØÙÚÛÜÝßœŒšŠžŽ"


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """One tiny skip-gram run, its SavedModel and every ONNX and LiteRT export."""
    from seqapps.inference.export import export

    root = tmp_path_factory.mktemp("formats-word-vectors")
    run = seqapps.train("word_vectors", "demo", epochs=1, run_dir=root / "run", verbose=0,
                        overrides=["model.dim=8", "model.window=2", "model.negatives=2", "data.min_count=1"])
    paths = {"run": run.dir, "savedmodel": run.export(root / "savedmodel")}
    bundle = run.bundle()
    for fmt, q in FORMATS:
        paths[fmt, q] = export(bundle, root / f"{fmt}-{q}", fmt, q)
    return paths


@pytest.fixture(scope="module")
def reference(exports):
    return seqapps.load(exports["savedmodel"])


def vocabulary(exports) -> list[str]:
    return json.loads((exports["onnx", "none"] / "words.json").read_text(encoding="utf-8"))


def same_neighbours(want: dict, got: dict, scores: float = 1e-4, tie: float = 1e-5) -> None:
    """Row by row: the similarities (nearest first) within ``scores``; the same words, except that words whose
    similarities tie (within ``tie``) may come in another order, or swap at the k-th place."""
    assert want["neighbours"].shape == got["neighbours"].shape
    assert np.abs(want["similarities"] - got["similarities"]).max(initial=0) <= scores
    for names_w, sims_w, names_g, sims_g in zip(want["neighbours"], want["similarities"], got["neighbours"],
                                                got["similarities"]):
        w, g = dict(zip(names_w, sims_w)), dict(zip(names_g, sims_g))
        for name in set(w) & set(g):
            assert abs(w[name] - g[name]) <= scores, name
        last = sims_w[-1] if len(sims_w) else 0.0
        for name in set(w) ^ set(g):  # only at the cut, among equal scores
            assert abs(w.get(name, g.get(name)) - last) <= tie, (name, last)
        for i, (a, b) in enumerate(zip(names_w, names_g)):  # out of order only among equal scores
            assert a == b or abs(sims_w[i] - sims_g[i]) <= tie and abs(w.get(b, sims_w[i]) - sims_w[i]) <= tie


@pytest.mark.slow
def test_folders_and_metadata(exports):
    onnx, lite = exports["onnx", "none"], exports["litert", "none"]
    assert sorted(p.name for p in onnx.iterdir()) == ["metadata.json", "model.onnx", "words.json"]
    assert sorted(p.name for p in lite.iterdir()) == ["metadata.json", "model.tflite", "words.json"]
    assert (onnx / "words.json").read_bytes() == (lite / "words.json").read_bytes()
    assert vocabulary(exports) == (exports["run"] / "words.txt").read_text(encoding="utf-8").splitlines()
    for folder, fmt in ((onnx, "onnx"), (lite, "litert")):
        meta = json.loads((folder / "metadata.json").read_text())
        assert meta["task"] == "word_vectors" and meta["format"] == fmt and list(meta["graph"]["inputs"]) == ["ids"]
    import onnx as onnxlib

    graph = onnxlib.load(str(onnx / "model.onnx")).graph
    assert [i.name for i in graph.input] == ["ids"] and [o.name for o in graph.output] == ["vectors"]


@pytest.mark.slow
@pytest.mark.parametrize("fmt,quantize", FORMATS)
def test_answers_like_the_savedmodel(exports, reference, fmt, quantize):
    model = seqapps.load(exports[fmt, quantize])
    assert type(model).__name__ == ("PredictionsOnnxPredictor" if fmt == "onnx" else "PredictionsLiteRTPredictor")
    words = vocabulary(exports)
    items = words + [w.upper() for w in words[:20]] + ODD
    want, got = reference.call(words=items), model.call(words=items)
    assert (got["in_vocabulary"] == want["in_vocabulary"]).all() and got["vectors"].dtype == np.float32
    assert want["in_vocabulary"][:len(words)].all() and not want["in_vocabulary"][-1]
    k = np.int32(5)
    near_w, near_g = reference.call("neighbours", words=items, k=k), model.call("neighbours", words=items, k=k)
    a, b, c = words[:40], words[1:41], words[2:42]
    analogy_w, analogy_g = reference.call("analogy", a=a, b=b, c=c), model.call("analogy", a=a, b=b, c=c)
    if quantize == "none" or (fmt, quantize) == ("litert", "int8"):
        assert np.array_equal(got["vectors"], want["vectors"])
        same_neighbours(near_w, near_g)
        same_neighbours({"neighbours": analogy_w["answer"][:, None], "similarities": analogy_w["similarity"][:, None]},
                        {"neighbours": analogy_g["answer"][:, None], "similarities": analogy_g["similarity"][:, None]})
        assert [len(r) for r in model.neighbours(words[:3], 4)] == [4, 4, 4]
    else:
        table, sims = QUANTIZED[quantize]
        scale = np.abs(want["vectors"]).max()
        assert np.abs(got["vectors"] - want["vectors"]).max() <= table * scale
        assert np.abs(near_g["similarities"] - near_w["similarities"]).max() <= sims
        assert np.abs(analogy_g["similarity"] - analogy_w["similarity"]).max() <= sims
    assert model.neighbours("UNSEEN-word") == reference.neighbours("UNSEEN-word") == []
    assert model.format(["UNSEEN-word"], [[]]) == ["UNSEEN-word: (no vector)"]


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["onnx", "litert"])
def test_refuses_what_the_savedmodel_refuses(exports, reference, fmt):
    """Empty calls, over-long and unknown words answered alike; wrong types, too many rows and an over-long item
    refused with the same DataError line."""
    model = seqapps.load(exports[fmt, "none"])
    assert model.vectors([]).shape == reference.vectors([]).shape == (0, 8)
    assert model.neighbours([]) == reference.neighbours([]) == [] and model.analogy([], [], []) == []
    for k in (0, -3, 10 ** 6):
        want, got = reference.call("neighbours", words=["the", "zzz"], k=np.int32(k)), \
            model.call("neighbours", words=["the", "zzz"], k=np.int32(k))
        assert got["neighbours"].shape == want["neighbours"].shape
    long_words = ["x" * 150, "y" * 100, "Z" * 101 + " " + "z" * 300]
    assert np.array_equal(model.call(words=long_words)["in_vocabulary"], reference.call(words=long_words)["in_vocabulary"])
    cases = [lambda m: m.neighbours(5), lambda m: m.neighbours([b"x"]), lambda m: m.vectors(None),
             lambda m: m.vectors(["a", 3]), lambda m: m.call(words=[["a"]]), lambda m: m.call(words=["a"] * 1025),
             lambda m: m.call(words=["a" * 100_001]), lambda m: m.call(words=["a" * 99_000] * 11),
             lambda m: m.call(words=["a" * 90_000] + ["a"] * 50)]
    for case in cases:
        lines = []
        for m in (reference, model):
            with pytest.raises(DataError) as e:
                case(m)
            lines.append(str(e.value))
        assert lines[0] == lines[1]


@pytest.mark.slow
def test_answers_without_tensorflow(exports, reference, tmp_path):
    paths = {fmt: str(exports[fmt, "none"]) for fmt in ("onnx", "litert")}
    words = vocabulary(exports)[:6] + ["UNSEEN-word", " The "]
    code = f"""
import seqapps
out = {{}}
for fmt, path in {paths!r}.items():
    model = seqapps.load(path)
    out[fmt] = {{"neighbours": model.neighbours({words!r}, 4), "vectors": model.vectors({words!r}).tolist(),
                "analogy": model.analogy({words[:3]!r}, {words[1:4]!r}, {words[2:5]!r})}}
"""
    out = without_tensorflow(code, tmp_path)
    assert set(out) == set(paths)
    want = reference.call("neighbours", words=words, k=np.int32(4))
    for fmt, got in out.items():
        assert np.array_equal(np.asarray(got["vectors"], np.float32), reference.vectors(words)), fmt
        known = reference.call(words=words)["in_vocabulary"]
        rows = [r for r, ok in zip(got["neighbours"], known) if ok]
        same_neighbours({"neighbours": want["neighbours"][known].astype(object),
                         "similarities": want["similarities"][known]},
                        {"neighbours": np.array([[n.encode() for n, _ in r] for r in rows], dtype=object),
                         "similarities": np.array([[s for _, s in r] for r in rows], np.float32)})
        assert got["neighbours"][-2] == []
        assert len(got["analogy"]) == 3


# -- the Python standardization against the graph's TensorFlow ops --------------------------------------------
def graph_standardize(items: list[str]) -> list[str]:
    """What the SavedModel's signatures do to ``words`` before the lookup: the text checks' cut of long words
    (seqapps.inference.checks.bounded_text), then the task's strip and lower-case."""
    import tensorflow as tf

    from seqapps.inference import checks

    x = checks.bounded_text(tf.constant(items, tf.string), "words", True)
    out = tf.strings.lower(tf.strings.strip(x), encoding="utf-8")
    return [v.decode("utf-8") for v in out.numpy().tolist()]


WORD = st.text(st.sampled_from([chr(i) for i in range(128)] + list(LATIN)), max_size=250)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(WORD, st.lists(st.sampled_from(["a", "É", " ", "\t", "\v", "\0", "x" * 60]),
                                         max_size=12).map("".join)), min_size=1, max_size=8))
def test_standardize_is_the_graphs_on_ascii_and_latin(items):
    assert [standardize(t) for t in items] == graph_standardize(items)


def test_standardize_differs_where_documented():
    """A capital letter newer than TensorFlow's Unicode tables is lower-cased by Python only
    (tasks.word_vectors.predicting); 'İ' and Unicode spaces are read alike."""
    assert standardize("\u2c2f") == "\u2c5f" and graph_standardize(["\u2c2f"]) == ["\u2c2f"]
    assert standardize("\u0130") == graph_standardize(["\u0130"])[0] == "i\u0307"
    assert standardize("\u00a0Cat\u2003") == graph_standardize(["\u00a0Cat\u2003"])[0] == "\u00a0cat\u2003"


@pytest.mark.slow
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_lookup_is_the_savedmodels(exports, reference, data):
    """Vocabulary words in random case, with ASCII spaces around and Latin letters added, known or not alike."""
    model = seqapps.load(exports["onnx", "none"])
    words = vocabulary(exports)
    items = []
    for _ in range(data.draw(st.integers(1, 6))):
        w = data.draw(st.sampled_from(words))
        w = "".join(ch.upper() if data.draw(st.booleans()) else ch for ch in w)
        items.append(data.draw(st.sampled_from(["", " ", "\t\n"])) + w + data.draw(st.sampled_from(["", " ", "é", "\v"])))
    want, got = reference.call(words=items), model.call(words=items)
    assert np.array_equal(got["in_vocabulary"], want["in_vocabulary"]) and np.array_equal(got["vectors"], want["vectors"])


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["onnx", "litert"])
def test_served_like_the_savedmodel(exports, reference, fmt):
    """``seqapps serve`` loads the folder (its runtime picked from the file) and answers its three signatures."""
    from seqapps.http import models

    served = models.load("word_vectors", exports[fmt, "none"], 1)
    words = vocabulary(exports)[:5] + ["UNSEEN-word"]
    got = served.signatures["serving_default"]({"words": np.array(words, dtype=object)})
    assert np.array_equal(got["vectors"], reference.vectors(words))
    near = served.signatures["neighbours"]({"words": np.array(words, dtype=object), "k": np.int32(3)})
    same_neighbours(reference.call("neighbours", words=words, k=np.int32(3)), near)
    answer = served.signatures["analogy"]({k: np.array(words[i:i + 3], dtype=object) for i, k in enumerate("abc")})
    assert answer["answer"].tolist() == reference.call("analogy", a=words[0:3], b=words[1:4], c=words[2:5])["answer"].tolist()
    assert served.signatures["neighbours"].outputs["neighbours"].shape.rank == 2

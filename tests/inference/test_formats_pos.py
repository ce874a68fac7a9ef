"""ONNX exports of pos: the tags of the SavedModel's signatures from a graph that takes ids, with the
tokenizer, the lookups and the decoding outside it (Python and NumPy, no TensorFlow)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import seqapps
from conftest import without_tensorflow
from seqapps.core.testing import random_texts

TEXTS = ["The dog ran .", "", "   ", "I don't know, it's 3.5 U.S. 'quoted' 1,000 10:30", "zzqxv Blorptastic ÉTÉ 😀",
         "we’re ’tis\tx\v\x00y ¿qué? 東京", "word" + "x" * 150 + " end", "the " * 400]
INT8_BOUND = 0.02  # largest |p_int8 - p_model| of a tag probability allowed; measured 1.3e-3 on this tiny run


def softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """A tiny pos run, its SavedModel, and its ONNX exports fp32 and int8."""
    from seqapps.inference.export import export

    root = tmp_path_factory.mktemp("formats-pos")
    run = seqapps.train("pos", "demo", epochs=2, run_dir=root / "run", verbose=0,
                        overrides=["model.units=8", "model.embedding_dim=8", "model.char_dim=4",
                                   "model.char_features=8"])
    paths = {"run": run.dir, "savedmodel": run.export(root / "savedmodel")}
    for q in ("none", "int8"):
        paths[q] = export(run.bundle(), root / f"onnx-{q}", "onnx", q)
    return paths


@pytest.fixture(scope="module")
def reference(exports):
    return seqapps.load(exports["savedmodel"])


def token_lists():
    return [["The", "", "dog"], ["x"], [" "], ["UNSEEN", "Wörd", "😀", "y" * 130], ["a"] * 300, []]


@pytest.mark.slow
def test_folder_and_metadata(exports):
    folder = exports["none"]
    assert sorted(p.name for p in folder.iterdir()) == ["chars.json", "metadata.json", "model.onnx",
                                                         "tokenizer.json", "vocabulary.json"]
    meta = json.loads((folder / "metadata.json").read_text())
    assert meta["task"] == "pos" and meta["format"] == "onnx" and set(meta["graph"]["inputs"]) == {"words", "chars"}
    assert "Viterbi" not in meta["graph"]["outside"] and "argmax" in meta["graph"]["outside"]


@pytest.mark.slow
@pytest.mark.parametrize("quantize", ["none", "int8"])
def test_tags_like_the_savedmodel(exports, reference, quantize):
    """Both signatures: fp32 gives every output identical; int8 the same tokens and lengths, and the same
    tags wherever the fp32 tag probabilities are not within the int8 bound of a tie."""
    from seqapps.inference.predictor import pad_strings

    model = seqapps.load(exports[quantize])
    texts = random_texts(np.random.default_rng(0), 40)
    # each call within the tag_tokens bound (rows x the longest row's tokens): ten random texts a call
    calls = [("serving_default", {"text": TEXTS})] + [("serving_default", {"text": texts[i:i + 10]}) for i in (0, 10, 20, 30)]
    for signature, inputs in calls + [("tag_tokens", {"tokens": pad_strings(token_lists())})]:
        want, got = reference.call(signature, **inputs), model.call(signature, **inputs)
        assert set(got) == set(want) == {"tokens", "tags", "lengths", "in_vocabulary"}
        for key in ("tokens", "lengths", "in_vocabulary"):
            assert got[key].shape == want[key].shape and (got[key] == want[key]).all(), (signature, key)
        same = got["tags"] == want["tags"]
        if quantize == "none":
            assert same.all(), signature
        else:
            assert same.mean() > 0.9, same.mean()
    assert model.predict(TEXTS[0]) == reference.predict(TEXTS[0]) or quantize == "int8"
    assert [r["tokens"] for r in model.analyze(TEXTS)] == [r["tokens"] for r in reference.analyze(TEXTS)]


@pytest.mark.slow
def test_tag_probabilities_within_bounds(exports):
    """The graph's tag probabilities against the Keras model's on the same ids: fp32 within 1e-4, int8
    within :data:`INT8_BOUND`, and the argmax the same wherever the top two are further apart."""
    from seqapps.inference.bundle import Bundle
    from seqapps.inference.onnx_runtime import session
    from seqapps.inference.tokenizer import TaggerTokenizer

    tokenizer = TaggerTokenizer.load(exports["none"])
    texts = TEXTS + random_texts(np.random.default_rng(1), 30)
    inputs = tokenizer.encode(tokenizer.tokens(texts))
    mask = inputs["words"] > 0
    want = softmax(np.asarray(Bundle(exports["run"]).model(inputs, training=False)))[mask]
    for quantize, bound in (("none", 1e-4), ("int8", INT8_BOUND)):
        (scores,) = session(exports[quantize] / "model.onnx").run(["scores"], inputs)
        got = softmax(scores)[mask]
        diff = np.abs(got - want).max()
        assert diff <= bound, (quantize, diff)
        top2 = np.sort(want, -1)[:, -2:]
        sure = top2[:, 1] - top2[:, 0] > 2 * bound
        assert (got.argmax(-1)[sure] == want.argmax(-1)[sure]).all()


@pytest.mark.slow
def test_empty_and_edge_inputs(exports, reference):
    from seqapps.core.errors import DataError

    model = seqapps.load(exports["none"])
    for signature, inputs in (("serving_default", {"text": []}), ("serving_default", {"text": [""]}),
                              ("tag_tokens", {"tokens": np.zeros((0, 3), object)}),
                              ("tag_tokens", {"tokens": np.array([["", ""]], object)})):
        want, got = reference.call(signature, **inputs), model.call(signature, **inputs)
        for key in want:
            assert got[key].shape == want[key].shape and (got[key] == want[key]).all(), (signature, inputs, key)
    assert model.predict([]) == [] and model.predict("") == []
    assert model.format(["a b"], [[("a", "X"), ("b", "Y")]]) == ["a/X b/Y"]
    with pytest.raises(DataError):
        model.predict([1])
    with pytest.raises(DataError):
        model.call(text=[1, 2])
    from seqapps.core.errors import ExportError

    with pytest.raises(ExportError, match="self_attention"):
        model.call("self_attention", text=["a"])


@pytest.mark.slow
def test_answers_without_tensorflow(exports, reference, tmp_path):
    code = f"""
import seqapps
out = {{q: seqapps.load(p).analyze({TEXTS!r} + {token_lists()!r})
       for q, p in {{"none": {str(exports["none"])!r}, "int8": {str(exports["int8"])!r}}}.items()}}
"""
    out = without_tensorflow(code, tmp_path)
    want = reference.analyze(TEXTS + token_lists())
    assert out["none"] == [{k: list(v) for k, v in r.items()} for r in want]
    assert [r["tokens"] for r in out["int8"]] == [r["tokens"] for r in want]


# -- the tokenizer outside the graph ------------------------------------------------------------------
ODD = list("abcXYZ '’-!?.,;:\"()[]\t\n\v\f\r\x85\xa0\u2028\u200b_0٣Ⅻ") + [
    "n't", "N’T", "'s", "'RE", "’ll", "'d", "'M", "İ", "Σ", "ΣΑΣ ", "é", "e\u0301", "日本", "😀", "ß", "ǅ", "\u0345",
    "ﬁ", "\x00", "3.5", "1,2,3", "10:30", "U.S.", "\ue000", "\ue001"]


@pytest.fixture(scope="module")
def in_graph(exports):
    """The SavedModel's in-graph tokenizing and encoding (the same calls its signature makes, after its
    checks and cut of long words) and the export's tokenizer."""
    import tensorflow as tf

    from seqapps.inference.bundle import Bundle
    from seqapps.inference.checks import bounded_text
    from seqapps.inference.tokenizer import TaggerTokenizer
    from tasks.pos.data import tokenize
    from tasks.pos.serving import tagger_features

    prep = Bundle(exports["run"]).prep

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def encode(text):
        ragged = tokenize(bounded_text(text, "text", words=True))
        tokens, _, feats, mask = tagger_features(prep.encode, ragged.to_tensor(""), ragged.row_lengths())
        return {"tokens": tf.where(mask, tokens, ""), **feats}

    def graph(texts):
        out = {k: v.numpy() for k, v in encode(tf.constant(texts, tf.string)).items()}
        out["tokens"] = np.vectorize(lambda b: b.decode("utf-8"), otypes=[object])(out["tokens"])
        return out

    return graph, TaggerTokenizer.load(exports["none"])


# characters this Python's Unicode database knows (3.11: Unicode 14.0); TensorFlow's RE2 and ICU know later ones
TEXT = st.text(st.characters(exclude_categories=["Cn", "Cs"]), max_size=40)


@pytest.mark.slow
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(TEXT, st.lists(st.sampled_from(ODD), max_size=15).map("".join),
                          st.lists(st.sampled_from(ODD + ["a"] * 30), min_size=90, max_size=240).map("".join)),
                min_size=1, max_size=6))
def test_tokenizer_gives_the_in_graph_ids(in_graph, texts):
    graph, tokenizer = in_graph
    want = graph(texts)
    rows = tokenizer.tokens(texts)
    got = tokenizer.encode(rows, want["words"].shape[1])
    assert [list(r) + [""] * (want["tokens"].shape[1] - len(r)) for r in rows] == want["tokens"].tolist(), texts
    for key in ("words", "chars"):
        assert got[key].shape == want[key].shape and (got[key] == want[key]).all(), (key, texts)


@pytest.mark.slow
def test_vocabulary_words_and_unseen_characters(in_graph, exports):
    graph, tokenizer = in_graph
    vocab = json.loads((exports["none"] / "vocabulary.json").read_text())
    chars = json.loads((exports["none"] / "chars.json").read_text())
    texts = [" ".join(vocab[:60]), " ".join(w.upper() for w in vocab[-60:]), "Qqqzx ☃☃ " + vocab[0]]
    want = graph(texts)
    got = tokenizer.encode(tokenizer.tokens(texts), want["words"].shape[1])
    assert (got["words"] == want["words"]).all() and (got["chars"] == want["chars"]).all()
    assert got["words"][2, 0] == 1 and got["words"][2, 3] == 2  # unknown, then the first word of the vocabulary
    assert "☃" not in chars and got["chars"][2, 1, 0] == 1  # an unseen character: the unknown id


def test_numpy_viterbi_is_the_graphs():
    """The ONNX predictor's Viterbi (NumPy) gives :func:`seqapps.layers.crf.viterbi_decode`'s paths."""
    from seqapps.inference.onnx_runtime import viterbi
    from seqapps.layers.crf import viterbi_decode

    rng = np.random.default_rng(0)
    potentials = rng.normal(size=(6, 9, 5, 5)).astype(np.float32)
    lengths = np.array([9, 1, 0, 4, 8, 5])
    mask = np.arange(9)[None] < lengths[:, None]
    want = np.asarray(viterbi_decode(potentials, mask)[0])
    assert (viterbi(potentials, mask) == want).all()


@pytest.mark.slow
def test_crf_transformer_and_pretrained_vectors(tmp_path):
    """A CRF tagger over a transformer encoder with frozen pretrained vectors: the graph takes the vectors'
    ids too and returns the CRF's potentials, Viterbi runs in NumPy, and both signatures answer as the
    SavedModel's."""
    from seqapps.inference.export import export
    from seqapps.inference.predictor import pad_strings

    vectors = tmp_path / "vectors.txt"
    vectors.write_text("the 0.1 0.2 0.3\ndog 0.3 -0.2 0.5\nran 0.0 0.4 -0.1\ncat -0.3 0.2 0.1\n")
    run = seqapps.train("pos", "demo", epochs=1, run_dir=tmp_path / "run", verbose=0,
                        overrides=["model.units=8", "model.embedding_dim=8", "model.char_dim=4",
                                   "model.char_features=8", "model.crf=true", "model.architecture=transformer",
                                   "model.layers=1", "model.heads=2", f"model.word_vectors={vectors}"])
    folder = export(run.bundle(), tmp_path / "onnx", "onnx", "none")
    graph = json.loads((folder / "metadata.json").read_text())["graph"]
    assert set(graph["inputs"]) == {"words", "chars", "vectors"} and "Viterbi" in graph["outside"]
    assert json.loads((folder / "vector_words.json").read_text()) == ["the", "dog", "ran", "cat"]
    reference, model = seqapps.load(run.dir), seqapps.load(folder)
    texts = TEXTS + ["the Cat ran", "THE DOG"] + random_texts(np.random.default_rng(2), 20)
    for signature, inputs in (("serving_default", {"text": texts}),
                              ("tag_tokens", {"tokens": pad_strings(token_lists())})):
        want, got = reference.call(signature, **inputs), model.call(signature, **inputs)
        for key in want:
            assert got[key].shape == want[key].shape and (got[key] == want[key]).all(), (signature, key)

"""ONNX exports (``export --format onnx --quantize none|int8|float16``): they answer like the run's
SavedModel, load and answer without TensorFlow, are served under the same REST contract, and the
tokenizer outside the graph gives the in-graph ids."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import seqapps
from conftest import ROOT, cli_here, without_tensorflow
from seqapps.core.testing import random_texts

pytestmark = pytest.mark.slow  # every test uses the trained run and its exports

TEXTS = ["the acting was brilliant", "dull and far too long", "", "   ", "zzqxv blorptastic unseenword",
         "It's GREAT, isn't it? I don't know...", "très bien, 東京 😀", "\u200b\x00 ¿qué?", "a " * 300]
INT8_BOUND = 0.02  # largest |p_int8 - p_savedmodel| allowed; measured 2e-4 on these tiny runs (see the test)


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """A tiny sentiment run, its SavedModel, and its ONNX exports fp32 / int8 / float16."""
    from seqapps.inference.export import export

    root = tmp_path_factory.mktemp("formats")
    run = seqapps.train("sentiment", "demo", epochs=3, run_dir=root / "run", verbose=0,
                        overrides=["model.units=16", "model.embedding_dim=16", "model.subword_dim=8",
                                   "model.subword_buckets=500", "train.learning_rate=0.005"])
    paths = {"run": run.dir, "savedmodel": run.export(root / "savedmodel")}
    for q in ("none", "int8", "float16"):
        paths[q] = export(run.bundle(), root / f"onnx-{q}", "onnx", q)
    return paths


@pytest.fixture(scope="module")
def reference(exports):
    return seqapps.load(exports["savedmodel"])


def texts_for_check():
    return TEXTS + random_texts(np.random.default_rng(0), 60)


def test_folder_holds_the_graph_and_its_tokenizer(exports):
    folder = exports["none"]
    assert sorted(p.name for p in folder.iterdir()) == ["metadata.json", "model.onnx", "tokenizer.json",
                                                         "vocabulary.json"]
    meta = json.loads((folder / "metadata.json").read_text())
    assert meta["format"] == "onnx" and meta["quantize"] == "none" and meta["task"] == "sentiment"
    assert set(meta["graph"]) >= {"inputs", "outputs", "in_graph", "outside"}
    import onnx

    ops = {n.op_type for n in onnx.load(str(exports["int8"] / "model.onnx")).graph.node}
    assert {"DynamicQuantizeLinear", "MatMulInteger"} & ops, ops  # int8 weights (sizes: benchmarks/formats.py)


@pytest.mark.parametrize("quantize,bound", [("none", 1e-4), ("float16", 1e-2), ("int8", INT8_BOUND)])
def test_answers_like_the_savedmodel(exports, reference, quantize, bound):
    texts = texts_for_check()
    want = reference.call(text=texts)
    got = seqapps.load(exports[quantize]).call(text=texts)
    diff = np.abs(got["probabilities"] - want["probabilities"]).max()
    assert diff <= bound, diff
    margin = np.abs(want["probabilities"][:, 0] - want["probabilities"][:, 1])
    sure = margin > 2 * bound  # labels must agree wherever the SavedModel is not within the bound of a tie
    assert (got["label"][sure] == want["label"][sure]).all()
    if quantize == "none":
        assert (got["label"] == want["label"]).all()
        for a, b in zip(reference.predict(texts[:3]), seqapps.load(exports["none"]).predict(texts[:3])):
            assert a["label"] == b["label"] and a["probability"] == pytest.approx(b["probability"], abs=1e-4)


def test_a_large_call_runs_in_slices_of_rows_with_the_same_answers(exports, tmp_path):
    """As the SavedModel, a call whose n-gram vectors would pass ``bounds.subword_values`` runs a slice of rows
    at a time: with the bound at one number every row runs alone, and the answers are the whole call's."""
    import shutil

    from seqapps.inference import onnx_runtime

    sliced = tmp_path / "sliced"
    shutil.copytree(exports["none"], sliced)
    meta = json.loads((sliced / "metadata.json").read_text())
    assert meta["bounds"]["subword_values"] > 1 and meta["config"]["model"]["subwords"]
    meta["bounds"]["subword_values"] = 1
    (sliced / "metadata.json").write_text(json.dumps(meta))
    texts = texts_for_check()
    calls = []
    original = onnx_runtime.session

    def counting(path, threads=onnx_runtime.THREADS):
        sess = original(path, threads)

        class Counted:
            def __getattr__(self, name):
                return getattr(sess, name)

            def run(self, outputs, feed):
                calls.append(len(next(iter(feed.values()))))
                return sess.run(outputs, feed)
        return Counted()

    whole = seqapps.load(exports["none"]).call(text=texts)
    onnx_runtime.session = counting
    try:
        got = seqapps.load(sliced).call(text=texts)
    finally:
        onnx_runtime.session = original
    assert calls == [1] * len(texts)
    np.testing.assert_allclose(got["probabilities"], whole["probabilities"], atol=1e-6)
    assert (got["label"] == whole["label"]).all()


def test_predict_helpers_and_empty_inputs(exports, reference):
    model = seqapps.load(exports["int8"])
    one = model.predict("the acting was brilliant")
    assert set(one) == {"label", "probability", "probabilities"} and one["label"] in ("negative", "positive")
    assert model.predict([]) == []
    assert model.call(text=[])["probabilities"].shape == (0, 2)
    assert [r["label"] for r in model.predict(["", " "])] == [r["label"] for r in reference.predict(["", " "])]
    assert model.format(["x"], [one])[0].startswith(one["label"] + "\t")
    from seqapps.core.errors import DataError

    with pytest.raises(DataError):
        model.predict(None)
    for bad in (123, [1, 2], [["a"]], {"a": 1}, None, [b"ok", 3]):  # the SavedModel's words, exactly
        with pytest.raises(DataError) as onnx_error:
            model.call(text=bad)
        with pytest.raises(DataError) as savedmodel_error:
            reference.call(text=bad)
        assert str(onnx_error.value) == str(savedmodel_error.value), bad
        assert str(onnx_error.value).startswith("input 'text' of signature 'serving_default' must be string [any]")


def test_answers_without_tensorflow(exports, reference, tmp_path):
    """``import seqapps; seqapps.load(OUT).predict(...)`` where importing tensorflow (or keras) fails."""
    code = f"""
import seqapps
out = {{q: seqapps.load(p).predict({TEXTS!r}) for q, p in {{"none": {str(exports["none"])!r},
                                                            "int8": {str(exports["int8"])!r}}}.items()}}
"""
    out = without_tensorflow(code, tmp_path)
    want = reference.predict(TEXTS)
    for q, bound in (("none", 1e-4), ("int8", INT8_BOUND)):
        for got, ref in zip(out[q], want):
            assert got["probabilities"] == pytest.approx(ref["probabilities"], abs=bound)
    assert [r["label"] for r in out["none"]] == [r["label"] for r in want]


# -- the tokenizer outside the graph ------------------------------------------------------------------
ODD = list("abcXYZ '’-!?.,;:\"()[]\t\n\v\f\r\x85\xa0\u2028\u200b_0٣Ⅻ") + [
    "n't", "'s", "'RE", "'ll", "'d", "İ", "Σ", "ΣΑΣ ", "é", "e\u0301", "日本", "😀", "ß", "ǅ", "\u0345", "ﬁ", "\x00"]


@pytest.fixture(scope="module")
def in_graph(exports):
    """The SavedModel's in-graph preprocessing (the same library calls its endpoint makes) and the
    export's tokenizer."""
    import tensorflow as tf

    from seqapps.data import text as textlib
    from seqapps.inference.bundle import Bundle
    from seqapps.inference.checks import bounded_text
    from seqapps.inference.tokenizer import TextTokenizer
    from seqapps.layers.subwords import dense_char_ngram_ids

    bundle = Bundle(exports["run"])
    prep, cfg = bundle.prep, bundle.config
    vectorizer = prep.vectorizer()

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def encode(text):
        text = bounded_text(text, "text", words=True)  # the signature's checks and its cut of long words
        words = textlib.clip_and_pad(textlib.words(text).to_tensor(""), prep.max_length, pad_value="")
        return {"tokens": textlib.clip_and_pad(vectorizer(text), prep.max_length),
                "subwords": dense_char_ngram_ids(words, cfg.model.subword_buckets)}

    return lambda texts: {k: v.numpy() for k, v in encode(tf.constant(texts, tf.string)).items()}, \
        TextTokenizer.load(exports["none"])


# characters this Python's Unicode database knows (3.11: Unicode 14.0); TensorFlow's RE2 and ICU know later
# ones, and a letter assigned since (e.g. U+31350) is a letter in the graph but punctuation here
TEXT = st.text(st.characters(exclude_categories=["Cn", "Cs"]), max_size=40)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(TEXT, st.lists(st.sampled_from(ODD), max_size=15).map("".join),
                          st.lists(st.sampled_from(ODD + ["a"] * 30), min_size=90, max_size=240).map("".join)),
                min_size=1, max_size=6))
def test_tokenizer_gives_the_in_graph_ids(in_graph, texts):
    graph, tokenizer = in_graph
    want = graph(texts)
    got, _ = tokenizer.encode(texts)
    for key in ("tokens", "subwords"):
        assert got[key].shape == want[key].shape, (key, texts)
        assert (got[key] == want[key]).all(), (key, texts)


def test_vocabulary_words_and_unseen_words(in_graph, exports):
    graph, tokenizer = in_graph
    vocab = json.loads((exports["none"] / "vocabulary.json").read_text())
    texts = [" ".join(vocab[:50]), " ".join(vocab[-50:]), "qqqzx unseenword " + vocab[0]]
    got, want = tokenizer.encode(texts)[0], graph(texts)
    assert (got["tokens"] == want["tokens"]).all() and (got["subwords"] == want["subwords"]).all()
    assert got["tokens"][2, 0] == 1 and got["tokens"][2, 2] == 2  # unknown, then the first word of the vocabulary


# -- command line and server ----------------------------------------------------------------------------
def test_export_command_flags(exports, tmp_path, capsys):
    proc = cli_here(capsys, "export", exports["run"], tmp_path / "int8", "--format", "onnx", "--quantize", "int8")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "int8" / "metadata.json").read_text())["quantize"] == "int8"
    proc = cli_here(capsys, "export", exports["run"], tmp_path / "sm", "--quantize", "int8")
    assert proc.returncode == 2 and "--quantize applies to --format onnx" in proc.stderr
    # an ONNX export may replace an ONNX export in place
    proc = cli_here(capsys, "export", exports["run"], tmp_path / "int8", "--format", "onnx")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "int8" / "metadata.json").read_text())["quantize"] == "none"


def test_served_beside_a_savedmodel(exports, tmp_path):
    """ONNX and LiteRT exports are served beside the SavedModel under the same contract."""
    import shutil
    import socket
    import urllib.request

    models = tmp_path / "models"
    shutil.copytree(exports["savedmodel"], models / "sm")
    shutil.copytree(exports["none"], models / "onnx")
    from seqapps.inference.export import export

    export(exports["run"], models / "litert", "litert", "none")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    log = open(tmp_path / "server.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "seqapps", "serve", str(models), "--port", str(port)],
                            env=env, stdout=log, stderr=subprocess.STDOUT)

    def post(name, body):
        req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/models/{name}:predict",
                                     json.dumps(body).encode(), headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    try:
        for _ in range(600):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models/onnx", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert proc.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
            time.sleep(0.1)
        body = {"instances": TEXTS[:6]}
        (s1, a), (s2, b), (s3, c) = post("sm", body), post("onnx", body), post("litert", body)
        assert s1 == s2 == s3 == 200, (a, b, c)
        for x, y, z in zip(a["predictions"], b["predictions"], c["predictions"]):
            assert x["label"] == y["label"] == z["label"]
            assert x["probabilities"] == pytest.approx(y["probabilities"], abs=1e-4)
            assert x["probabilities"] == pytest.approx(z["probabilities"], abs=1e-4)
        status, columnar = post("onnx", {"inputs": {"text": TEXTS[:2]}})
        assert status == 200 and set(columnar["outputs"]) == {"label", "probabilities"}
        status, error = post("onnx", {"instances": [1, 2]})
        assert status == 400 and "error" in error
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models/onnx/metadata", timeout=30) as r:
            meta = json.loads(r.read())
        assert meta["metadata"]["signature_def"]["signature_def"]["serving_default"]["inputs"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()

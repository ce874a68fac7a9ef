"""LiteRT exports (``export --format litert --quantize none|int8|float16``): built-in operators only, one
text per call at its own length; they answer like the run's SavedModel and load without TensorFlow."""

from __future__ import annotations

import json
import sys
from types import SimpleNamespace

import numpy as np
import pytest

import seqapps
from conftest import cli_here, without_tensorflow
from seqapps.core.errors import ExportError
from seqapps.core.testing import random_texts

LONG = " ".join(f"w{i}" for i in range(260))  # more words than the run's max_length (200): cut like the graph cuts
TEXTS = ["the acting was brilliant", "dull and far too long", "", "   ", "zzqxv blorptastic unseenword",
         "It's GREAT, isn't it? I don't know...", "très bien, 東京 😀", "\u200b\x00 ¿qué?", "a " * 300, LONG,
         "the film is wonderful " * 60]
INT8_BOUND = 0.02  # largest |p_int8 - p_savedmodel| allowed; measured 4e-4 on these tiny runs
OVERRIDES = ["model.units=16", "model.embedding_dim=16", "model.subword_dim=8", "model.subword_buckets=500",
             "train.learning_rate=0.005"]


def _ops(path) -> set[str]:
    from seqapps.inference.litert import interpreter

    return {op["op_name"] for op in interpreter(path)._get_ops_details()}


# -- the conversion itself, on a small masked bidirectional LSTM (no training) --------------------------
@pytest.mark.slow  # about 20 s: two conversions
def test_free_time_axis_converts_a_masked_lstm_without_flex_ops(tmp_path, monkeypatch):
    import keras
    import tensorflow as tf

    from seqapps.inference import litert
    from seqapps.layers.pooling import MaskedPooling

    tokens = keras.Input(shape=(None,), dtype="int64", name="tokens")
    mask = keras.ops.not_equal(tokens, 0)
    x = keras.layers.Embedding(30, 4)(tokens)
    x = keras.layers.Bidirectional(keras.layers.LSTM(3, return_sequences=True))(x, mask=mask)
    x = MaskedPooling("max_mean")(x, mask=mask)
    model = keras.Model({"tokens": tokens}, keras.layers.Dense(2, activation="softmax")(x))
    rows = np.array([[5, 9, 2, 7, 0, 0, 0], [3, 1, 4, 1, 5, 9, 2]], np.int64)  # padded as a batch pads
    want = model({"tokens": rows}).numpy()

    path = tmp_path / "model.tflite"
    litert.convert(model, {"tokens": tf.TensorSpec([1, None], tf.int64, name="tokens")}, path, "none", "test")
    assert "WHILE" in _ops(path) and not any(op.startswith("Flex") for op in _ops(path))
    runner = litert.interpreter(path).get_signature_runner()
    for row, ref, length in zip(rows, want, (4, 7)):  # each text alone, at its own length: no padding
        got = runner(tokens=row[None, :length])["output_0"][0]
        assert np.abs(got - ref).max() <= 1e-5, (got, ref)

    # without ai_edge_litert, TensorFlow's own interpreter answers, and says so
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    with pytest.warns(UserWarning, match="tf.lite.Interpreter"):
        fallback = litert.interpreter(path)
    got = fallback.get_signature_runner()(tokens=rows[:1, :4])["output_0"][0]
    assert np.abs(got - want[0]).max() <= 1e-5

    # a free batch axis needs TensorFlow's tensor-list ops: refused with one line, nothing written
    with pytest.raises(ExportError, match="LiteRT's built-in operators") as e:
        litert.convert(model, {"tokens": tf.TensorSpec([None, None], tf.int64, name="tokens")},
                       tmp_path / "batch.tflite", "none", "test")
    assert "\n" not in str(e.value) and "TensorList" in str(e.value)


def test_other_tasks_are_refused_with_one_line(tmp_path):
    from seqapps.inference import formats

    bundle = SimpleNamespace(task=SimpleNamespace(name="no_such_task"))  # every registered task has an adapter
    with pytest.raises(ExportError, match="--format litert is not available for no_such_task") as e:
        formats.write(bundle, tmp_path / "out", "litert", "none")
    assert "\n" not in str(e.value) and not (tmp_path / "out").exists()


# -- a tiny sentiment run and its exports ---------------------------------------------------------------
@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """A tiny sentiment run (bidirectional LSTM), its SavedModel, and its LiteRT exports fp32 / int8 / float16."""
    from seqapps.inference.export import export

    root = tmp_path_factory.mktemp("litert")
    run = seqapps.train("sentiment", "demo", epochs=3, run_dir=root / "run", verbose=0, overrides=OVERRIDES)
    paths = {"run": run.dir, "savedmodel": run.export(root / "savedmodel")}
    for q in ("none", "int8", "float16"):
        paths[q] = export(run.bundle(), root / f"litert-{q}", "litert", q)
    paths["onnx"] = export(run.bundle(), root / "onnx", "onnx", "none")
    return paths


@pytest.fixture(scope="module")
def reference(exports):
    return seqapps.load(exports["savedmodel"])


@pytest.mark.slow
def test_folder_holds_the_graph_and_its_tokenizer(exports):
    folder = exports["none"]
    assert sorted(p.name for p in folder.iterdir()) == ["metadata.json", "model.tflite", "tokenizer.json",
                                                         "vocabulary.json"]
    meta = json.loads((folder / "metadata.json").read_text())
    assert meta["format"] == "litert" and meta["quantize"] == "none" and meta["task"] == "sentiment"
    assert set(meta["graph"]) >= {"inputs", "outputs", "in_graph", "outside"}
    for q in ("none", "int8", "float16"):
        ops = _ops(exports[q] / "model.tflite")
        assert "WHILE" in ops and not any(op.startswith("Flex") for op in ops), (q, ops)
    sizes = {q: (exports[q] / "model.tflite").stat().st_size for q in ("none", "int8", "float16")}
    assert sizes["int8"] < sizes["float16"] < sizes["none"], sizes
    for name in ("tokenizer.json", "vocabulary.json"):  # what runs outside the graph is the ONNX export's
        assert (folder / name).read_bytes() == (exports["onnx"] / name).read_bytes(), name


@pytest.mark.slow
@pytest.mark.parametrize("quantize,bound", [("none", 1e-4), ("float16", 1e-2), ("int8", INT8_BOUND)])
def test_answers_like_the_savedmodel(exports, reference, quantize, bound):
    texts = TEXTS + random_texts(np.random.default_rng(0), 40)
    want = reference.call(text=texts)
    got = seqapps.load(exports[quantize]).call(text=texts)
    diff = np.abs(got["probabilities"] - want["probabilities"]).max()
    assert diff <= bound, diff
    margin = np.abs(want["probabilities"][:, 0] - want["probabilities"][:, 1])
    sure = margin > 2 * bound  # labels must agree wherever the SavedModel is not within the bound of a tie
    assert (got["label"][sure] == want["label"][sure]).all()
    if quantize == "none":
        assert (got["label"] == want["label"]).all()


@pytest.mark.slow
def test_longest_input_is_cut_empty_and_unseen_inputs(exports, reference):
    model = seqapps.load(exports["none"])
    cut = " ".join(LONG.split()[:200])  # the first max_length words: what the graph keeps
    a, b = model.call(text=[LONG, cut])["probabilities"]
    assert np.abs(a - b).max() <= 1e-6
    assert model.predict([]) == [] and model.call(text=[])["probabilities"].shape == (0, 2)
    for texts in (["", " "], ["zzqxv blorptastic unseenword"], [LONG]):
        for got, want in zip(model.predict(texts), reference.predict(texts)):
            assert got["label"] == want["label"]
            assert got["probability"] == pytest.approx(want["probability"], abs=1e-4)
    one = model.predict("the acting was brilliant")
    assert set(one) == {"label", "probability", "probabilities"}
    assert model.format(["x"], [one])[0].startswith(one["label"] + "\t")
    from seqapps.core.errors import DataError

    with pytest.raises(DataError):
        model.predict(None)
    with pytest.raises(DataError):
        model.call(text=[1, 2])


@pytest.mark.slow
def test_answers_without_tensorflow(exports, reference, tmp_path):
    """``import seqapps; seqapps.load(OUT).predict(...)`` where importing tensorflow (or keras) fails."""
    code = f"""
import seqapps
out = {{q: seqapps.load(p).predict({TEXTS!r}) for q, p in {{"none": {str(exports["none"])!r},
                                                            "int8": {str(exports["int8"])!r}}}.items()}}
out["runtime"] = type(seqapps.load({str(exports["none"])!r})).runtime
"""
    out = without_tensorflow(code, tmp_path)
    assert out["runtime"] == "litert"
    want = reference.predict(TEXTS)
    for q, bound in (("none", 1e-4), ("int8", INT8_BOUND)):
        for got, ref in zip(out[q], want):
            assert got["probabilities"] == pytest.approx(ref["probabilities"], abs=bound)
    assert [r["label"] for r in out["none"]] == [r["label"] for r in want]


@pytest.mark.slow
def test_export_command(exports, tmp_path, capsys):
    proc = cli_here(capsys, "export", exports["run"], tmp_path / "int8", "--format", "litert", "--quantize", "int8")
    assert proc.returncode == 0, proc.stderr
    meta = json.loads((tmp_path / "int8" / "metadata.json").read_text())
    assert (meta["format"], meta["quantize"]) == ("litert", "int8")
    proc = cli_here(capsys, "export", exports["run"], tmp_path / "x", "--format", "tflite")
    assert proc.returncode == 2 and "litert" in proc.stderr


# -- the other encoders of sentiment ---------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("overrides", [["model.cell=gru"], ["model.architecture=transformer"],
                                       ["model.cell=rnn", "model.bidirectional=false", "model.layers=2",
                                        "model.pooling=last"]], ids=["gru", "transformer", "rnn-last"])
def test_other_encoders_answer_like_the_run(tmp_path, overrides):
    from seqapps.inference.export import export

    run = seqapps.train("sentiment", "demo", epochs=1, run_dir=tmp_path / "run", verbose=0,
                        overrides=OVERRIDES + overrides)
    texts = TEXTS + random_texts(np.random.default_rng(1), 20)
    want = seqapps.load(run.dir).call(text=texts)
    got = seqapps.load(export(run.bundle(), tmp_path / "litert", "litert", "none")).call(text=texts)
    assert np.abs(got["probabilities"] - want["probabilities"]).max() <= 1e-4
    assert (got["label"] == want["label"]).all()


# -- pos ------------------------------------------------------------------------------------------------
POS_TEXTS = ["The cat sat on the mat.", "", "   ", "Zzqx blorptastic unseenword!", "I don't know, it's GREAT.",
             "très bien, 東京 😀", " ".join(["word"] * 300), "x" * 150 + " tail"]


def _padded(rows):
    width = max(len(r) for r in rows)
    return np.array([r + [""] * (width - len(r)) for r in rows], object)


def litert_rows(run):
    from seqapps.inference import litert
    from seqapps.inference.bundle import Bundle

    return litert.calibration_rows(Bundle(run))


@pytest.fixture(scope="module")
def pos_exports(tmp_path_factory):
    """A tiny pos run with a CRF (Viterbi outside the graph), its SavedModel and LiteRT exports fp32 / int8."""
    from seqapps.inference.export import export

    root = tmp_path_factory.mktemp("litert-pos")
    run = seqapps.train("pos", "demo", epochs=2, run_dir=root / "run", verbose=0,
                        overrides=["model.units=8", "model.embedding_dim=8", "model.char_dim=4",
                                   "model.char_features=8", "model.crf=true"])
    paths = {"run": run.dir, "savedmodel": run.export(root / "savedmodel")}
    for q in ("none", "int8", "int8-full"):
        paths[q] = export(run.bundle(), root / f"litert-{q}", "litert", q)
    paths["onnx"] = export(run.bundle(), root / "onnx", "onnx", "none")
    return paths


@pytest.mark.slow
def test_full_integer_is_calibrated_on_training_inputs_and_refused_elsewhere(pos_exports, exports, monkeypatch):
    from seqapps.core.errors import ExportError
    from seqapps.inference import litert
    from seqapps.inference.bundle import Bundle
    from seqapps.inference.export import export

    assert json.loads((pos_exports["int8-full"] / "metadata.json").read_text())["quantize"] == "int8-full"
    ops = _ops(pos_exports["int8-full"] / "model.tflite")
    assert "QUANTIZE" in ops and "DEQUANTIZE" in ops, ops  # int8 activations; dynamic int8 has no QUANTIZE
    assert "QUANTIZE" not in _ops(pos_exports["int8"] / "model.tflite")
    rows = litert.calibration_rows(Bundle(pos_exports["run"]), n=5)
    assert len(rows) == 5 and all(isinstance(r, list) and r for r in rows)  # sentences' words
    for fmt, run, text in (("onnx", pos_exports["run"], "static quantization measured slower"),
                           ("litert", exports["run"], "for sentiment use --quantize int8")):
        with pytest.raises(ExportError, match=text):
            export(Bundle(run), pos_exports["run"].parent / "refused", fmt, "int8-full")
    assert not (pos_exports["run"].parent / "refused").exists()
    monkeypatch.setenv("SEQAPPS_DATA", str(pos_exports["run"].parent / "nowhere"))
    bundle = Bundle(pos_exports["run"])
    bundle.config.data.source = "ud_english_ewt"
    with pytest.raises(ExportError, match=r"^--quantize int8-full calibrates on the run's training split "
                                          r"\(ud_english_ewt\), which cannot be read here"):
        litert.calibration_rows(bundle)


@pytest.mark.slow
@pytest.mark.parametrize("quantize", ["none", "int8", "int8-full"])
def test_pos_tags_like_the_savedmodel(pos_exports, quantize):
    """Both signatures, a batch's rows each at its own length: fp32 gives every output identical; int8 the
    same tokens, lengths and vocabulary flags, and at least 95% of the tags (all of them, measured here)."""
    reference, model = seqapps.load(pos_exports["savedmodel"]), seqapps.load(pos_exports[quantize])
    meta = json.loads((pos_exports[quantize] / "metadata.json").read_text())
    assert meta["format"] == "litert" and "Viterbi" in meta["graph"]["outside"]
    for name in ("tokenizer.json", "vocabulary.json", "chars.json"):  # the ONNX export's files outside the graph
        assert (pos_exports[quantize] / name).read_bytes() == (pos_exports["onnx"] / name).read_bytes(), name
    texts = POS_TEXTS + random_texts(np.random.default_rng(2), 30)
    rows = [["The", "cat", "", "sat"], ["x"], ["a"] * 250, [""], ["Zzqx", "unseen"]]
    for signature, inputs in (("serving_default", {"text": texts}), ("tag_tokens", {"tokens": _padded(rows)}),
                              ("serving_default", {"text": []}), ("tag_tokens", {"tokens": np.zeros((0, 3), object)})):
        want, got = reference.call(signature, **inputs), model.call(signature, **inputs)
        assert set(got) == set(want) == {"tokens", "tags", "lengths", "in_vocabulary"}
        for key in ("tokens", "lengths", "in_vocabulary"):
            assert got[key].shape == want[key].shape and (got[key] == want[key]).all(), (signature, key)
        same = got["tags"] == want["tags"]
        if quantize == "int8-full" and same.size:
            # calibrated on the training sentences: inputs far longer than those (the 250 words here) can leave
            # the ranges (measured on this tiny run: 11% of that row's tags kept); the rest are held to 95%
            same = same[want["lengths"] <= max(map(len, litert_rows(pos_exports["run"])))]
        assert same.all() if quantize == "none" or not same.size else same.mean() >= 0.95, (signature, same)
    assert model.predict([]) == [] and model.predict("") == []


@pytest.mark.slow
def test_pos_answers_without_tensorflow(pos_exports, tmp_path):
    code = f"""
import seqapps
out = seqapps.load({str(pos_exports["none"])!r}).predict({POS_TEXTS!r})
"""
    got = without_tensorflow(code, tmp_path)
    want = seqapps.load(pos_exports["savedmodel"]).predict(POS_TEXTS)
    assert got == [[list(pair) for pair in sentence] for sentence in want]


def test_pos_character_bilstm_is_refused_with_one_line(tmp_path):
    """pos' character BiLSTM loops over a sentence's words as its batch, which LiteRT's built-in ops need fixed."""
    from seqapps.inference import formats

    bundle = SimpleNamespace(task=SimpleNamespace(name="pos"),
                             config=SimpleNamespace(model=SimpleNamespace(char_encoder="rnn")))
    with pytest.raises(ExportError, match="char_encoder=rnn") as e:
        formats.write(bundle, tmp_path / "out", "litert", "none")
    assert "\n" not in str(e.value) and not (tmp_path / "out").exists()
    assert not list(tmp_path.iterdir())  # no temporary folder left either


# -- char_lm: one step of the model, the whole batch per call -------------------------------------------
CHAR_TEXTS = ["To be, or not to be, that is the question", "", "x", "zqé unknown 東 😀", "First Citizen:\n" * 20]
PRIMES = ["", "the ", "😀☃", "First Citizen:\n", "ab" * 2500]  # the last one over the 4,000 characters read


@pytest.mark.slow
@pytest.mark.parametrize("overrides", [["model.units=16", "model.embedding_dim=8"],
                                       ["model.architecture=transformer", "model.units=16", "model.layers=1",
                                        "model.heads=2"]], ids=["lstm", "transformer"])
def test_char_lm_scores_and_generates_like_the_savedmodel(tmp_path, overrides):
    """Per-character log-likelihoods within 1e-4 (int8: 0.05 nats), greedy text identical, the files outside the
    graph the ONNX export's, and answers without TensorFlow."""
    from seqapps.inference.export import export

    run = seqapps.train("char_lm", "demo", epochs=1, run_dir=tmp_path / "run", verbose=0,
                        overrides=["train.batch_size=8", "train.bptt=16", "train.steps_per_epoch=5", *overrides])
    reference = seqapps.load(run.export(tmp_path / "savedmodel"))
    paths = {q: export(run.bundle(), tmp_path / f"litert-{q}", "litert", q) for q in ("none", "int8")}
    onnx = export(run.bundle(), tmp_path / "onnx", "onnx", "none")
    for name in ("tokenizer.json", "chars.json", "state.npz"):
        assert (paths["none"] / name).read_bytes() == (onnx / name).read_bytes(), name
    assert not any(op.startswith("Flex") for op in _ops(paths["none"] / "model.tflite"))

    want = reference.call("score", text=CHAR_TEXTS)
    for quantize, bound in (("none", 1e-4), ("int8", 0.05)):
        got = seqapps.load(paths[quantize]).call("score", text=CHAR_TEXTS)
        assert (got["count"] == want["count"]).all()
        per_char = [out["log_likelihood"] / np.maximum(out["count"], 1) for out in (got, want)]
        assert np.abs(per_char[0] - per_char[1]).max() <= bound, (quantize, per_char)
    model = seqapps.load(paths["none"])
    greedy = reference.generate(PRIMES, 30, temperature=0.0)
    assert model.generate(PRIMES, 30, temperature=0.0) == greedy
    assert model.call("score", text=[])["log_likelihood"].shape == (0,)

    code = f"""
import seqapps
out = seqapps.load({str(paths["none"])!r}).generate({PRIMES!r}, 30, temperature=0.0)
"""
    assert without_tensorflow(code, tmp_path) == greedy

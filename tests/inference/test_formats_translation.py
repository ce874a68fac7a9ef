"""ONNX exports of translation: the encoder (``encoder.onnx``) and one decoder step (``model.onnx``) as
graphs, with tokenizing, greedy and beam search and detokenizing outside them (Python and NumPy, no
TensorFlow); the strings are the SavedModel's."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import seqapps
from conftest import without_tensorflow

pytestmark = pytest.mark.slow  # every test uses trained runs and their exports

PAIRS = [  # (French, English): a corpus the model learns by heart, so its outputs are real sentences
    ("Je suis fatigué.", "I'm tired."), ("Où est la gare ?", "Where is the station?"),
    ("Il fait froid.", "It's cold."), ("Nous avons faim.", "We are hungry."),
    ("Elle aime le café.", "She likes coffee."), ("Tu es en retard.", "You're late."),
    ("C'est l'été !", "It's summer!"), ("Je ne sais pas.", "I don't know."),
    ("Ils ont un chien.", "They have a dog."), ("Le chat dort.", "The cat is sleeping."),
    ("Merci beaucoup.", "Thank you very much."), ("Bonne nuit !", "Good night!"),
]
TEXTS = [fr for fr, _ in PAIRS] + [
    "", "   ", "Xyzzy ☃ 🤖 plugh !", "le chat est en retard ?", "L’été, c'est froid (non) - merci !",
    "JE SUIS\tle\vchat\x00 dort", "word" + "x" * 150 + " fin", " ".join(["chat"] * 300), "nuit nuit nuit nuit"]
INT8_SAME = 0.7  # least share of int8 strings equal to the SavedModel's; measured on these runs: recurrent
# 18 of 21 greedy and 21 of 21 beam 4, transformer 20 of 21 for both


def train(root, *overrides):
    from seqapps.inference.export import export

    data = root / "corpus"
    data.mkdir()
    for split in ("train", "dev"):
        (data / f"{split}.fr").write_text("".join(fr + "\n" for fr, _ in PAIRS), encoding="utf-8")
        (data / f"{split}.en").write_text("".join(en + "\n" for _, en in PAIRS), encoding="utf-8")
    run = seqapps.train("translation", str(data), epochs=8, run_dir=root / "run", verbose=0, overrides=[
        "model.units=32", "model.embedding_dim=32", "model.attention_units=32", "train.learning_rate=0.01",
        "train.patience=0", "train.batch_size=16", "train.steps_per_epoch=10", *overrides])
    paths = {"run": run.dir, "savedmodel": run.export(root / "savedmodel")}
    for q in ("none", "int8"):
        paths[q] = export(run.bundle(), root / f"onnx-{q}", "onnx", q)
    return paths


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """A tiny recurrent translator (bidirectional GRU, additive attention), its SavedModel and its ONNX
    exports fp32 and int8."""
    return train(tmp_path_factory.mktemp("formats-translation"))


@pytest.fixture(scope="module")
def reference(exports):
    return seqapps.load(exports["savedmodel"])


def test_folder_and_metadata(exports):
    folder = exports["none"]
    assert sorted(p.name for p in folder.iterdir()) == ["encoder.onnx", "metadata.json", "model.onnx",
                                                         "target_vocabulary.json", "tokenizer.json",
                                                         "vocabulary.json"]
    meta = json.loads((folder / "metadata.json").read_text())
    assert meta["task"] == "translation" and meta["format"] == "onnx"
    graph = meta["graph"]
    assert set(graph["inputs"]["encoder.onnx"]) == {"source"}
    assert {"tokens", "s0", "values", "mask", "keys"} == set(graph["inputs"]["model.onnx"])
    assert {"logits", "next.s0", "attention"} == set(graph["outputs"]["model.onnx"])
    assert "NumPy" in graph["outside"] and "beam" in graph["outside"]
    assert json.loads((exports["int8"] / "metadata.json").read_text())["quantize"] == "int8"
    assert sorted(p.name for p in exports["int8"].glob("*.onnx")) == ["encoder.onnx", "model.onnx"]


@pytest.mark.parametrize("beam,penalty", [(1, 0.6), (4, 0.6), (4, 0.0), (3, 1.0)])
def test_strings_and_scores_like_the_savedmodel(exports, reference, beam, penalty):
    model = seqapps.load(exports["none"])
    want = reference.call("translate", text=TEXTS, beam_width=beam, length_penalty=penalty)
    got = model.call("translate", text=TEXTS, beam_width=beam, length_penalty=penalty)
    assert got["translation"].tolist() == want["translation"].tolist()
    np.testing.assert_allclose(got["score"], want["score"], atol=1e-4)
    assert model.translate(TEXTS[:12], beam=beam)[:12] == reference.translate(TEXTS[:12], beam=beam)
    learned = model.translate([fr for fr, _ in PAIRS], beam=beam)
    assert sum(a == en for a, (_, en) in zip(learned, PAIRS)) >= 8, learned  # real sentences, detokenized


def test_default_decoding_odd_and_long_inputs(exports, reference):
    """serving_default (beam 4, the run's default), empty and blank inputs, unseen words and a 300-word
    input cut to max_length words."""
    model = seqapps.load(exports["none"])
    got, want = model.translate(TEXTS), reference.translate(TEXTS)
    assert got == want
    assert got[12] == got[13] == ""
    assert model.translate([]) == [] and model.call(text=[])["translation"].shape == (0,)
    max_length = json.loads((exports["none"] / "metadata.json").read_text())["max_length"]
    att = model.call("attention", text=TEXTS, beam_width=1)
    ref = reference.call("attention", text=TEXTS, beam_width=1)
    assert att["source_lengths"].tolist() == np.asarray(ref["source_lengths"]).tolist()
    assert att["source_lengths"][19] == max_length and att["source_lengths"][12] == 0
    assert att["source_tokens"].tolist() == np.asarray(ref["source_tokens"]).tolist()
    assert att["output_tokens"].tolist() == np.asarray(ref["output_tokens"]).tolist()
    assert att["attention"].shape == tuple(ref["attention"].shape)
    np.testing.assert_allclose(att["attention"], ref["attention"], atol=1e-4)
    rows = model.attention(TEXTS[:3], beam=4)
    for a, b in zip(rows, reference.attention(TEXTS[:3], beam=4)):
        assert a["source_tokens"] == b["source_tokens"] and a["output_tokens"] == b["output_tokens"]
        np.testing.assert_allclose(a["weights"], b["weights"], atol=1e-4)


def test_a_large_call_decodes_a_few_rows_at_a_time_with_the_same_answers(exports, tmp_path):
    """As the SavedModel, decoding takes bounds.DECODE_VALUES // (beam x what a hypothesis holds) rows at a
    time; with that set so one row is decoded at a time, the answers are the whole call's."""
    import shutil

    from seqapps.core import bounds

    whole = seqapps.load(exports["none"])
    folder = tmp_path / "one-row"
    shutil.copytree(exports["none"], folder)
    spec = json.loads((folder / "tokenizer.json").read_text())
    assert 0 < spec["hypothesis_values"] < bounds.DECODE_VALUES
    spec["hypothesis_values"] = bounds.DECODE_VALUES
    (folder / "tokenizer.json").write_text(json.dumps(spec))
    sliced = seqapps.load(folder)
    for beam in (1, 4):
        want = whole.call("translate", text=TEXTS, beam_width=beam, length_penalty=0.6)
        got = sliced.call("translate", text=TEXTS, beam_width=beam, length_penalty=0.6)
        assert got["translation"].tolist() == want["translation"].tolist()
        np.testing.assert_allclose(got["score"], want["score"], atol=1e-5)
        want, got = whole.call("attention", text=TEXTS, beam_width=beam), sliced.call("attention", text=TEXTS,
                                                                                     beam_width=beam)
        assert got["output_tokens"].tolist() == want["output_tokens"].tolist()
        assert got["attention"].shape == want["attention"].shape
        for row, n in enumerate(want["output_lengths"]):  # past a row's length the slice holds padding
            np.testing.assert_allclose(got["attention"][row, :n], want["attention"][row, :n], atol=1e-5)


def test_int8_within_the_measured_bound(exports, reference):
    model = seqapps.load(exports["int8"])
    for beam in (1, 4):
        want, got = reference.translate(TEXTS, beam=beam), model.translate(TEXTS, beam=beam)
        assert np.mean([a == b for a, b in zip(got, want)]) >= INT8_SAME, (beam, got, want)
        assert got[12] == ""


def test_errors(exports):
    from seqapps.core.errors import DataError

    model = seqapps.load(exports["none"])
    with pytest.raises(DataError, match="invalid input: beam_width"):
        model.call("translate", text=["a"], beam_width=0, length_penalty=0.6)
    with pytest.raises(DataError, match="invalid input: length_penalty"):
        model.call("translate", text=["a"], beam_width=2, length_penalty=float("nan"))
    with pytest.raises(DataError, match="beam must be between"):
        model.translate(["a"], beam=65)
    with pytest.raises(DataError, match="texts"):
        model.translate(None)


def test_answers_without_tensorflow(exports, reference, tmp_path):
    code = f"""
import seqapps
model = seqapps.load({str(exports["none"])!r})
out = {{"greedy": model.translate({TEXTS!r}, beam=1), "beam": model.translate({TEXTS!r}, beam=4)}}
"""
    out = without_tensorflow(code, tmp_path)
    assert out["greedy"] == reference.translate(TEXTS, beam=1)
    assert out["beam"] == reference.translate(TEXTS, beam=4)


# -- the tokenizer and the detokenizer outside the graph ------------------------------------------------
ODD = list("abcXYZ '’‘-!?.,;:\"()[]{}%\t\n\v\f\r\x85\xa0\u202f\u2009\u2007\u2028\u200b\u00ad_0٣Ⅻ") + [
    "n't", "N'T", "'s", "'RE", "'ll", "'d", "l'", "L'", "qu'", "jusqu'", "ſ'", "İ", "Σ", "é", "e\u0301", "日本",
    "😀", "ß", "ǅ", "\u0345", "ﬁ", "\x00", "chat", "été"]
TEXT = st.text(st.characters(exclude_categories=["Cn", "Cs"]), max_size=40)  # see test_formats.py on Unicode


@pytest.fixture(scope="module")
def in_graph(exports):
    """The SavedModel's source encoding (the same library calls its signature makes: the bounds' cut of
    long words, then the source encoder) and the export's tokenizer."""
    import tensorflow as tf

    from seqapps.inference.bundle import Bundle
    from seqapps.inference.checks import bounded_text
    from seqapps.inference.tokenizer import SourceTokenizer

    encode = Bundle(exports["run"]).prep.source_encoder()

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def ids(text):
        return encode(bounded_text(text, "text", words=True))

    return lambda texts: ids(tf.constant(texts, tf.string)).numpy(), SourceTokenizer.load(exports["none"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(TEXT, st.lists(st.sampled_from(ODD), max_size=15).map("".join),
                          st.lists(st.sampled_from(ODD + ["a"] * 30), min_size=90, max_size=240).map("".join)),
                min_size=1, max_size=6))
def test_tokenizer_gives_the_in_graph_ids(in_graph, texts):
    graph, tokenizer = in_graph
    want, (got, _) = graph(texts), tokenizer.encode(texts)
    assert got.shape == want.shape and (got == want).all(), texts


def test_vocabulary_and_unseen_words(in_graph, exports):
    graph, tokenizer = in_graph
    vocab = json.loads((exports["none"] / "vocabulary.json").read_text())
    texts = [" ".join(vocab), "qqqzx unseenword " + vocab[0]]
    got = tokenizer.encode(texts)[0]
    assert (got == graph(texts)).all()
    assert got[0, :len(vocab)].tolist() == list(range(2, 2 + len(vocab)))[:got.shape[1]]
    assert got[1, :3].tolist() == [1, 1, 2]  # unknown, unknown, the first word of the vocabulary


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(ODD + ["I", "it", "the", "cat", "'", "-", "(", ")"]), max_size=12),
       st.booleans())
def test_detokenize_is_the_graphs(words, french):
    import tensorflow as tf

    from seqapps.inference.tokenizer import detokenize
    from tasks.translation.data import detokenize as in_graph

    joined = " ".join(w for w in words if w.strip() and "\x00" not in w)
    want = in_graph(tf.constant([joined]), french_spacing=french).numpy()[0].decode("utf-8")
    assert detokenize(joined, french) == want, joined


def test_transformer_steps_through_its_cache(tmp_path):
    """The transformer's decoder step carries its key/value cache and position as graph inputs and outputs;
    greedy and beam strings are the SavedModel's."""
    paths = train(tmp_path, "model.architecture=transformer", "model.units=32", "model.layers=1", "model.heads=2",
                  "train.learning_rate=0.005")
    reference, model = seqapps.load(paths["savedmodel"]), seqapps.load(paths["none"])
    carried = json.loads((paths["none"] / "tokenizer.json").read_text())["carried"]
    assert {"cache_0.key", "cache_0.value", "cache_0.positions", "position"} == set(carried)
    for beam in (1, 4):
        assert model.translate(TEXTS, beam=beam) == reference.translate(TEXTS, beam=beam), beam
    int8 = seqapps.load(paths["int8"]).translate(TEXTS, beam=1)
    assert np.mean([a == b for a, b in zip(int8, reference.translate(TEXTS, beam=1))]) >= INT8_SAME

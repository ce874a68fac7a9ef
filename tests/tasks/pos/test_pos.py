"""pos: tokenizer, padding, CRF and word vectors, data sources (the shared contract is in test_contract.py)."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import seqapps
from conftest import needs_data, run_cli
from seqapps.core import registry
from seqapps.core.errors import ConfigError, DataError
from seqapps.training.fit import resolve_config

TINY = ["model.units=32", "model.embedding_dim=32", "model.char_dim=16", "model.char_features=32",
        "train.learning_rate=0.01", "train.patience=0", "train.backup_every=0"]
SENTENCES = ["The old man the boat .", "Anna sees two green dogs near Lisbon !", "she runs back", "Zyx",
             "I don't know, it's 3.5 km 🙂 ✈ …"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("pos")
    softmax = seqapps.train("pos", "demo", epochs=6, overrides=TINY, run_dir=root / "softmax", verbose=0)
    # the CRF tagger also reads frozen word vectors, which know a word the training data lacks
    from tasks.pos.demo import sentences
    from seqapps.data.vectors import count_vectors, write_vectors

    text = [w for w, _ in sentences()] + [s.split() for s in UNLABELED]
    write_vectors(root / "vectors.txt", *count_vectors(text, dim=8, window=2, min_count=1))
    crf = seqapps.train("pos", "demo", epochs=6, overrides=TINY + [
        "model.crf=true", "model.char_encoder=rnn", f"model.word_vectors={root / 'vectors.txt'}"],
        run_dir=root / "crf", verbose=0)
    return {"softmax": softmax, "crf": crf, "root": root}


UNLABELED = ["the zebras sleep near the river .", "two zebras run .", "a zebra sees the dog ."]


@pytest.mark.slow
def test_word_vectors_are_frozen_and_reach_unseen_words(runs):
    from seqapps.data.vectors import read_vectors

    run = runs["crf"]
    words, matrix = read_vectors(runs["root"] / "vectors.txt")
    weights = run.load_model().get_layer("word_vectors").get_weights()[0]
    assert np.allclose(weights[2:], matrix) and not weights[:2].any()  # unchanged by training; pad/unknown 0
    prep = registry.get("pos").load_preprocessing(run.config, run.dir)
    assert "zebras" not in prep.words and prep.vector_words == words
    feats = prep.encode(tf.constant([["Zebras", "the", "qqq"]]), tf.constant([3]))
    assert feats["words"].numpy()[0, 0] == 1  # unknown to the trained embedding ...
    assert feats["vectors"].numpy()[0].tolist() == [words.index("zebras") + 2, words.index("the") + 2, 1]  # ... known here


@pytest.mark.slow
def test_learns_the_demo(runs):
    for name in ("softmax", "crf"):
        metrics = runs[name].metrics
        assert metrics["val"]["accuracy"] > 0.9, (name, metrics["val"]["accuracy"])
        assert metrics["test"]["tokens"] > 100
        assert set(metrics["test"]["per_class"]) >= {"NOUN", "VERB", "DET", "PUNCT"}


def _plain(outputs):
    return {k: [[x.decode("utf-8") for x in r] for r in v] if v.dtype == object else v.tolist()
            for k, v in outputs.items()}


@pytest.mark.slow
def test_export_tokenizes_tags_and_pads_like_the_run(runs):
    """Both variants (the CRF one with frozen word vectors) export and tag as their runs do."""
    rows = [["The", "dog", "sleeps", "."], ["Tom", "", "sings", ""], ["", "", "", ""], ["cat", "", "", ""]]
    loaded = {}
    for name in ("softmax", "crf"):
        p = seqapps.load(runs[name].export(runs["root"] / f"export-{name}"))
        loaded[name] = {"text": _plain(p.call("serving_default", text=np.array(SENTENCES, dtype=object))),
                        "tokens": _plain(p.call("tag_tokens", tokens=np.array(rows, dtype=object)))}
    for name in ("softmax", "crf"):
        text, tokens = loaded[name]["text"], loaded[name]["tokens"]
        assert text["lengths"] == [6, 8, 3, 1, 12]
        assert text["tokens"][4] == ["I", "do", "n't", "know", ",", "it", "'s", "3.5", "km", "🙂", "✈", "…"]
        from_export = [list(zip(t[:n], g[:n])) for t, g, n in zip(text["tokens"], text["tags"], text["lengths"])]
        assert from_export == runs[name].predictor().predict(SENTENCES)
        # padding positions are empty strings
        assert text["tokens"][3][1:] == text["tags"][3][1:] == [""] * 11
        assert text["in_vocabulary"][3][0] is False  # "Zyx" was never seen
        # pre-tokenized rows: trailing "" is padding, an inner "" is a token
        assert tokens["lengths"] == [4, 3, 0, 1]
        assert tokens["tags"][2] == ["", "", "", ""] and tokens["tags"][1][1] != ""
        in_memory = runs[name].predictor().predict([rows[0]])[0]
        assert [t for _, t in in_memory] == tokens["tags"][0]
        assert tokens["in_vocabulary"][0] == [True, True, True, True]


@pytest.mark.slow
def test_predictor_bad_input_never_crashes(runs):
    predictor = runs["softmax"].predictor()
    long = " ".join(["the dog runs"] * 167)  # 501 words
    results = predictor.predict(["", "   ", "cat", long, "🙂🙂 ✈", "\u200b\x00 ¿qué?", ["only", "tokens"], []])
    assert results[0] == [] and results[1] == [] and results[7] == []
    assert len(results[2]) == 1 and results[2][0][0] == "cat"
    assert len(results[3]) == 501 and all(tag for _, tag in results[3])
    assert [w for w, _ in results[4]] == ["🙂", "🙂", "✈"]
    assert [w for w, _ in results[6]] == ["only", "tokens"]
    tags = set(predictor.metadata["tags"])
    assert all(t in tags for sent in results for _, t in sent)
    empty = predictor.call(text=np.array([], dtype=object))
    assert empty["tags"].shape[0] == 0 and empty["lengths"].shape == (0,)
    with pytest.raises(DataError, match="expected a sentence"):
        predictor.predict([3])
    with pytest.raises(DataError, match="input 1: a list of tokens holds only strings; token 1 is NoneType"):
        predictor.predict(["fine", ["a", None]])


@pytest.mark.slow
def test_padding_never_counts(runs):
    task = registry.get("pos")
    for name in ("softmax", "crf"):
        run = runs[name]
        cfg, model = run.config, run.load_model()
        prep = task.load_preprocessing(cfg, run.dir)
        short = tf.constant([["The", "cat", "sleeps", "."], ["A", "dog", "", ""]])
        padded = tf.constant([["The", "cat", "sleeps", ".", "", ""], ["A", "dog", "", "", "", ""]])
        lengths = tf.constant([4, 2])
        y_short = np.array([[3, 6, 12, 10], [3, 6, 0, 0]])
        y_padded = np.array([[3, 6, 12, 10, 0, 0], [3, 6, 0, 0, 0, 0]])
        a = model.evaluate(prep.encode(short, lengths), y_short, verbose=0, return_dict=True)
        b = model.evaluate(prep.encode(padded, lengths), y_padded, verbose=0, return_dict=True)
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)
        assert a["accuracy"] == pytest.approx(b["accuracy"])
        assert a["accuracy"] * 6 == pytest.approx(round(a["accuracy"] * 6))  # 6 real tokens
        # a sentence tags the same alone and in a padded batch
        alone = run.predictor().predict([["A", "dog"]])[0]
        together = run.predictor().predict([["A", "dog"], ["The", "cat", "sleeps", "quietly", "near", "Paris"]])[0]
        assert alone == together


@pytest.mark.slow
def test_cli_predict_and_evaluate(runs, tmp_path):
    export = runs["softmax"].export(tmp_path / "export")
    proc = run_cli("predict", export, "The old man the boat .")
    assert proc.returncode == 0, proc.stderr
    words = proc.stdout.strip().split(" ")
    assert [w.rsplit("/", 1)[0] for w in words] == ["The", "old", "man", "the", "boat", "."]
    proc = run_cli("evaluate", export, "--data", "demo", "--out", tmp_path / "eval")
    assert proc.returncode == 0, proc.stderr
    assert "token accuracy" in proc.stdout and "OOV accuracy" in proc.stdout
    assert (tmp_path / "eval" / "confusion.png").stat().st_size > 1000
    report = json.loads((tmp_path / "eval" / "evaluation-test.json").read_text())
    assert 0.9 < report["accuracy"] <= 1.0


@pytest.mark.slow
def test_cli_malformed_conllu_one_line(tmp_path):
    bad = tmp_path / "bad.conllu"
    bad.write_text("1\tThe\tthe\tDET\tDT\t_\t2\tdet\t_\t_\n2\tcat\tcat\tNOUN\n")
    proc = run_cli("train", "pos", "--data", bad, "--run-dir", tmp_path / "run")
    assert proc.returncode == 2
    assert proc.stderr.strip() == (f"error: {bad}:2: expected 10 tab-separated CoNLL-U columns, found 4 "
                                   "(set data.skip_bad_rows=true to skip such rows and count them)")
    assert not (tmp_path / "run").exists()


@needs_data
def test_data_sources_and_config_errors(tmp_path):
    task = registry.get("pos")
    cfg = resolve_config(task, "ud_english_ewt")
    splits = task.load_data(cfg)
    # protocol: the dev file trains, its last 10% of sentences validate, test is the test file
    assert (len(splits.train), len(splits.val), len(splits.test)) == (1801, 200, 2077)
    assert len(splits.info["tags"]) == 17
    atis = task.load_data(resolve_config(task, "ud_english_atis"))
    assert (len(atis.train), len(atis.val), len(atis.test)) == (4274, 572, 586)
    two_col = tmp_path / "tagged.txt"
    two_col.write_text("".join(f"w{i} {'A' if i % 2 else 'B'}\n" + ("\n" if i % 3 == 2 else "") for i in range(60)))
    cols = task.load_data(resolve_config(task, str(two_col)))
    assert len(cols.train) + len(cols.val) + len(cols.test) == 20
    with pytest.raises(ConfigError, match="data.tagset must be one of upos, xpos, got 'ner'"):
        resolve_config(task, "demo", overrides=["data.tagset=ner"])  # before any data is read
    with pytest.raises(ConfigError, match="model.char_encoder must be one of cnn, rnn, none, got 'lstm'"):
        resolve_config(task, "demo", overrides=["model.char_encoder=lstm"])
    with pytest.raises(DataError, match="is for the sentiment task"):
        task.load_data(resolve_config(task, "sst2"))
    assert keras.saving.get_registered_object("seqapps>CRF") is not None


@pytest.mark.slow
def test_a_call_holds_at_most_tag_tokens_and_the_helpers_split_within_it(runs, tmp_path, monkeypatch):
    """rows x the longest row's tokens is bounded in the graph (the tagger's memory grows with every token
    position); the export records the bound and its Python helpers split their calls within it."""
    from seqapps.core import bounds

    run = runs["softmax"]
    reference = run.predictor().predict(SENTENCES)
    monkeypatch.setattr(bounds, "TAG_TOKENS", 12)
    small = seqapps.load(run.export(tmp_path / "small"))
    assert small.metadata["bounds"]["tag_tokens"] == 12
    assert "tag_tokens" not in bounds.table("sentiment") and bounds.table("pos")["tag_tokens"] == 12
    with pytest.raises(DataError, match=r"rows x the tokens of the longest row is 3 x 5; the bound is 12: send long"):
        small.call(text=np.array(["a b c d e", "a", "b"], dtype=object))
    assert small.call(text=np.array(["a b c d", "a b c", "b"], dtype=object))["lengths"].tolist() == [4, 3, 1]
    assert small.predict(SENTENCES) == reference  # the helpers' calls stay within 12 token positions
    with pytest.raises(DataError, match="the bound is 12"):
        small.predict(" ".join(["w"] * 13))  # one sentence over the bound alone is refused

"""pos streams its data: the fitting pass's vocabularies are the ones fitted on the training split read
whole, each split holds the sentences it held when files were read into lists, the pass is cached until a
file changes, a bad row deep in a file names its line, the training batches are the export's encoding of
their raw sentences, and a file far larger than the demo trains at the demo's peak memory."""

from __future__ import annotations

import os
import random
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from conftest import needs_data, peak_memory_mb
from seqapps.core.errors import DataError
from seqapps.data.splits import split

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SEQAPPS_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def config(source, *sets):
    from seqapps.core import registry
    from seqapps.training.fit import resolve_config

    return resolve_config(registry.get("pos"), str(source), overrides=list(sets), preset="none")


def load(source, *sets):
    from tasks.pos.data import load_tagged_sentences

    return load_tagged_sentences(config(source, *sets).data, "pos", verbose=False)


def resampled(n: int, seed: int = 0) -> list[tuple[list[str], list[str]]]:
    """``n`` tagged sentences drawn from a larger demo set."""
    from tasks.pos.demo import sentences

    pool = sentences(2000, seed=seed)
    rng = random.Random(seed)
    return [pool[rng.randrange(len(pool))] for _ in range(n)]


def write_conllu(path, sentences):
    """A CoNLL-U file (a comment in each sentence and, now and then, a multi-word token line); the path."""
    with open(path, "w", encoding="utf-8") as f:
        for i, (words, tags) in enumerate(sentences):
            f.write(f"# sent_id = {i}\n")
            for k, (word, tag) in enumerate(zip(words, tags), 1):
                if k == 2 and i % 7 == 0 and k < len(words):
                    f.write(f"{k}-{k + 1}\t{word}{words[k]}\t_\t_\t_\t_\t_\t_\t_\t_\n")
                f.write(f"{k}\t{word}\t{word.lower()}\t{tag}\t_\t_\t0\tdep\t_\t_\n")
            f.write("\n")
    return path


def break_a_word_line(path, after: int) -> tuple[int, int]:
    """Cuts the first word line past line ``after`` to 4 columns: its line number and the index of
    its sentence."""
    lines = Path(path).read_text(encoding="utf-8").split("\n")
    at = next(i for i in range(after, len(lines)) if lines[i][:1].isdigit() and "-" not in lines[i].split("\t")[0])
    lines[at] = "\t".join(lines[at].split("\t")[:4])
    Path(path).write_text("\n".join(lines), encoding="utf-8")
    return at + 1, sum(1 for line in lines[:at] if line.startswith("# sent_id")) - 1


def old_fit(sentences, data_cfg):
    """The vocabularies as TaggerData.fit made them from the training split held as a list, before
    streaming: lower-cased word counts (ties alphabetical), characters and tags, of sentences cut to
    data.max_length words."""
    cut = data_cfg.max_length
    sentences = [(w[:cut], t[:cut]) for w, t in sentences]
    counts = Counter(w.lower() for words, _ in sentences for w in words)
    words = [w for w, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
             if c >= data_cfg.min_count][:max(0, data_cfg.vocab_size - 2)]
    chars = sorted({c for words, _ in sentences for w in words for c in w})
    tags = sorted({t for _, tags in sentences for t in tags})
    return words, chars, tags


def shared(name: str) -> Path:
    from seqapps.data import catalog

    root = catalog.data_dir()
    if root is None or not (root / name).is_dir():
        pytest.skip(f"{name} is not under $SEQAPPS_DATA")
    return root / name


# -- the protocol on the shared datasets ----------------------------------------------------------
@needs_data
@pytest.mark.parametrize("sets", [(), ("data.vocab_size=500", "data.min_count=2", "data.max_length=12")])
def test_vocabularies_are_the_in_memory_fit_on_ud_english_ewt_and_atis(cache, sets):
    from seqapps.core import registry
    from tasks.pos.conllu import read_conllu

    task = registry.get("pos")
    ewt, atis = shared("ud_english_ewt"), shared("ud_english_atis")
    whole = {"ud_english_ewt": read_conllu(ewt / "en_ewt-ud-dev.conllu")[:1801],
             "ud_english_atis": read_conllu(atis / "en_atis-ud-train.conllu")}
    for name, train in whole.items():
        cfg = config(name, *sets)
        splits = task.load_data(cfg)
        prep = task.fit_preprocessing(cfg, splits)
        assert (prep.words, prep.chars, prep.tags) == old_fit(train, cfg.data), name
        assert splits.info["tags"] == prep.tags
        counts = Counter(w.lower() for words, _ in train for w in words[:cfg.data.max_length])
        assert splits.info["fit"]["words"] == [[w, counts[w]] for w in prep.words]  # word dropout's counts


@needs_data
def test_splits_are_the_documented_protocol(cache):
    """ud_english_ewt: the dev file trains, its last 10% of sentences (200) validate, the test file
    tests; ud_english_atis: its three files. Each split holds, in order, the sentences it held when the
    files were read into lists (first and last of each checked by eye against the files too)."""
    from tasks.pos.conllu import read_conllu

    ewt, atis = shared("ud_english_ewt"), shared("ud_english_atis")
    dev, test = read_conllu(ewt / "en_ewt-ud-dev.conllu"), read_conllu(ewt / "en_ewt-ud-test.conllu")
    for sets in ((), ("data.fit_sample=300",)):  # a sampled pass still counts every sentence
        splits = load("ud_english_ewt", *sets)
        assert (len(splits.train), len(splits.val), len(splits.test)) == (1801, 200, 2077)
        cut = splits.train.settings.max_length
        assert splits.train.materialize() == [(w[:cut], t[:cut]) for w, t in dev[:1801]]
        assert splits.val.materialize() == dev[1801:] and splits.test.materialize() == test
    assert splits.info["fit"]["sampled"] and len(splits.info["tags"]) == 17
    train, val = splits.train.materialize(), splits.val.materialize()
    assert train[0][0][:4] == ["From", "the", "AP", "comes"] and train[-1][0][:4] == ["I", "wish", "I", "could"]
    assert val[0][0][:3] == ["Luckily", "I", "live"] and val[-1][0][:4] == ["Also", ",", "they", "have"]
    tests = splits.test.materialize()
    assert tests[0][0][:3] == ["What", "if", "Google"] and tests[-1][0][:3] == ["He", "listens", "and"]
    splits = load("ud_english_atis")
    assert (len(splits.train), len(splits.val), len(splits.test)) == (4274, 572, 586)
    for stream, name in ((splits.train, "train"), (splits.val, "dev"), (splits.test, "test")):
        assert stream.materialize() == read_conllu(atis / f"en_atis-ud-{name}.conllu")


def test_a_file_splits_in_order_the_same_however_it_is_read(tmp_path, cache):
    """A single file (CoNLL-U, word/TAG, two columns) gives up its last val/test fractions; a folder
    without a dev file its training file's last val fraction; the demo data as before."""
    from tasks.pos.conllu import read_tagged
    from tasks.pos.demo import sentences

    data = resampled(1234, seed=3)
    conllu = write_conllu(tmp_path / "one.conllu", data)
    slash = tmp_path / "one.txt"
    slash.write_text("".join(" ".join(f"{w}/{t}" for w, t in zip(*s)) + "\n" for s in data), encoding="utf-8")
    columns = tmp_path / "cols.tsv"
    columns.write_text("".join("".join(f"{w}\t{t}\n" for w, t in zip(*s)) + "\n" for s in data), encoding="utf-8")
    assert read_tagged(conllu) == read_tagged(slash) == read_tagged(columns) == data
    expected = split(data, 0.2, 0.05)
    for path in (conllu, slash, columns):
        splits = load(path, "data.val_fraction=0.2", "data.test_fraction=0.05")
        got = [s.materialize() if s is not None else None for s in (splits.train, splits.val, splits.test)]
        assert got == list(expected), path
        assert [len(s) for s in (splits.train, splits.val, splits.test)] == [len(e) for e in expected]
    folder = tmp_path / "folder"
    folder.mkdir()
    write_conllu(folder / "x-train.conllu", data)
    write_conllu(folder / "x-test.conllu", data[:50])
    splits = load(folder)
    assert splits.train.materialize() == data[:1111] and splits.val.materialize() == data[1111:]
    assert splits.test.materialize() == data[:50]
    demo = load("demo")
    assert [s.materialize() for s in (demo.train, demo.val, demo.test)] == list(split(sentences(), 0.1, 0.1))
    assert load(conllu, "data.test_fraction=0").test is None
    with pytest.raises(DataError, match="2 sentence\\(s\\) are too few to split off"):
        load(write_conllu(tmp_path / "two.conllu", data[:2]), "data.val_fraction=0.4", "data.test_fraction=0.4")


# -- the fitting pass -----------------------------------------------------------------------------
def test_the_fitting_pass_is_cached_until_the_file_changes(tmp_path, cache, monkeypatch):
    import time

    from tasks.pos import data

    calls = []
    fit = data.fit_tagged
    monkeypatch.setattr(data, "fit_tagged", lambda *a, **k: calls.append(1) or fit(*a, **k))
    path = write_conllu(tmp_path / "a.conllu", resampled(400))
    first, second = load(path), load(path)
    assert len(calls) == 1 and first.info["fit"] == second.info["fit"]
    assert len(first.train) + len(first.val) + len(first.test) == 400
    assert list(cache.glob("fits/*.json"))
    write_conllu(path, resampled(450, seed=1))
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))  # a new modification time, whatever the clock
    third = load(path)
    assert len(calls) == 2 and sum(third.info["fit"]["counts"].values()) == 450
    load(path, "data.max_length=5")
    assert len(calls) == 3  # the vocabularies are of sentences cut to data.max_length
    load(path, "data.vocab_size=10")
    assert len(calls) == 4
    load(path, "data.vocab_size=10")
    assert len(calls) == 4


def test_a_bad_row_deep_in_a_file_names_its_line_or_is_skipped_and_counted(tmp_path, cache, capsys):
    data = resampled(20_000, seed=2)
    path = write_conllu(tmp_path / "big.conllu", data)
    line, bad_sentence = break_a_word_line(path, 150_000)
    with pytest.raises(DataError, match=rf"big.conllu:{line}: expected 10 tab-separated CoNLL-U columns, found 4 "
                                        r"\(set data.skip_bad_rows=true"):
        load(path)
    splits = load(path, "data.skip_bad_rows=true")
    fit = splits.info["fit"]
    assert fit["bad_rows"] == 1 and f"big.conllu:{line}" in fit["first_bad"]
    assert "skipped 1 bad row" in capsys.readouterr().err
    assert sum(fit["counts"].values()) == 19_999  # the sentence holding it is left out
    for stream in (splits.train, splits.val, splits.test):  # reading again skips it too
        assert sum(1 for _ in stream.rows()) == len(stream)
    kept = data[:bad_sentence] + data[bad_sentence + 1:]
    assert splits.val.materialize() == split(kept, 0.1, 0.1)[1]
    slash = tmp_path / "bad.txt"
    slash.write_text("A/DET cat/NOUN\n" * 5000 + "a cat/NOUN\n" + "The/DET dog/NOUN\n" * 10, encoding="utf-8")
    with pytest.raises(DataError, match=r"bad.txt:5001: token 'a' is not word/TAG"):
        load(slash)


def test_lines_read_in_blocks_are_the_whole_texts_lines(tmp_path, monkeypatch):
    """Blocks cut anywhere (7 bytes here) give the lines str.splitlines gives the whole text (BOM,
    CRLF, a lone CR, multi-byte characters across a cut); an undecodable byte names its line."""
    from tasks.pos import conllu

    path = write_conllu(tmp_path / "a.conllu", resampled(50) + [(["Ünï", "😀"], ["X", "SYM"])])
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes().replace(b"\n", b"\r\n", 40).replace(b"# sent_id = 30\n", b"# a\r# b\n"))
    whole, lines = conllu.read_conllu(path), path.read_text(encoding="utf-8-sig").splitlines()
    monkeypatch.setattr(conllu.TextLines, "block", 7)
    assert conllu.read_conllu(path) == whole and [line for _, line in conllu.numbered_lines(path)] == lines
    assert len(whole) == 51 and whole[-1][0] == ["Ünï", "😀"] and "# b" in lines
    bad = tmp_path / "b.conllu"
    bad.write_bytes(path.read_bytes()[3:].replace("Ünï".encode(), b"\xff\xfe"))
    n = bad.read_bytes().split(b"\n").index(next(x for x in bad.read_bytes().split(b"\n") if b"\xff" in x)) + 1
    with pytest.raises(DataError, match=rf"b.conllu:{n}: not UTF-8 text"):
        conllu.read_conllu(bad)


# -- one preprocessing path ---------------------------------------------------------------------------
@pytest.mark.parametrize("vectors", [False, True])
def test_training_batches_are_the_exports_encoding(tmp_path, cache, vectors):
    """Every row of every validation batch is its raw sentence's tokens encoded as the export's
    signatures encode them (tasks.pos.serving.tagger_features over TaggerData.encode), padded to the
    batch's width, with the tags' ids; every training row encodes a training sentence (cut to
    data.max_length), an epoch is ceil(sentences / batch) batches; with word vectors too."""
    import tensorflow as tf

    from seqapps.core import registry
    from tasks.pos.data import pad_tokens
    from tasks.pos.serving import tagger_features

    task = registry.get("pos")
    data = resampled(600, seed=4)
    data[5] = (["A", "Very-very-long-hyphenated-word", "ünïcödé", "🙂", "."], ["DET", "ADJ", "NOUN", "SYM", "PUNCT"])
    path = write_conllu(tmp_path / "t.conllu", data)
    sets = ["data.val_fraction=0.3", "data.test_fraction=0.0", "train.batch_size=8", "data.max_length=9",
            "data.vocab_size=40", "model.word_dropout=0"]
    if vectors:
        from seqapps.data.vectors import write_vectors

        words = sorted({w.lower() for s, _ in data for w in s})[::2]
        write_vectors(tmp_path / "v.txt", words, np.random.default_rng(0).normal(size=(len(words), 4)))
        sets.append(f"model.word_vectors={tmp_path / 'v.txt'}")
    cfg = config(path, *sets)
    splits = task.load_data(cfg)
    prep = task.fit_preprocessing(cfg, splits)
    train, val = task.datasets(cfg, prep, splits)
    keys = {"words", "chars"} | ({"vectors"} if vectors else set())

    def export_encoding(sentences):
        longest = max(len(w) for w, _ in sentences)
        tokens = tf.constant([w + [""] * (longest - len(w)) for w, _ in sentences])
        _, _, feats, _ = tagger_features(prep.encode, pad_tokens(tokens), tf.constant([len(w) for w, _ in sentences]))
        assert set(feats) == keys
        ids = [prep.tag_ids([t])[0].tolist() for _, t in sentences]
        return {k: v.numpy() for k, v in feats.items()}, np.array([i + [0] * (longest - len(i)) for i in ids])

    def rows_of(ds):
        for x, y in ds:
            assert set(x) == keys and y.dtype == tf.int32 and x["chars"].shape[2] == prep.max_word_length
            width = int(y.shape[1])
            assert all(v.shape[1] == width for v in x.values())
            for r in range(len(y)):
                yield width, {k: v[r].numpy() for k, v in x.items()}, y[r].numpy()

    def same(expected, i, width, x, y):
        feats, tags = expected
        pad = max(0, width - tags.shape[1])
        return (all(np.array_equal(np.pad(feats[k][i], [(0, pad)] + [(0, 0)] * (feats[k].ndim - 2))[:width], x[k])
                    for k in x) and np.array_equal(np.pad(tags[i], (0, pad))[:width], y))

    val_sentences = splits.val.materialize()
    expected = export_encoding(val_sentences)
    remaining = list(range(len(val_sentences)))
    for width, x, y in rows_of(val):
        match = next((i for i in remaining if same(expected, i, width, x, y)), None)
        assert match is not None, "a validation row that no raw sentence encodes to"
        remaining.remove(match)
    assert not remaining
    train_sentences = splits.train.materialize()
    assert max(len(w) for w, _ in train_sentences) == 9 and max(len(w) for w, _ in val_sentences) > 9
    expected, batches = export_encoding(train_sentences), 0
    for x, y in train:
        batches += 1
    assert batches == -(-len(train_sentences) // 8) == int(train.cardinality())
    for width, x, y in rows_of(train.take(10)):
        assert any(same(expected, i, width, x, y) for i in range(len(train_sentences))), \
            "a training row that no raw sentence encodes to"


def test_rare_word_dropout_reads_the_passs_counts(tmp_path, cache):
    from seqapps.core import registry
    from tasks.pos.word_dropout import dropout_rates

    task = registry.get("pos")
    cfg = config(write_conllu(tmp_path / "w.conllu", resampled(300)))
    splits = task.load_data(cfg)
    prep = task.fit_preprocessing(cfg, splits)
    from_lists = dropout_rates([w for w, _ in splits.train.materialize()], prep.words, 0.25)
    from_pass = dropout_rates(None, prep.words, 0.25, counts=dict(map(tuple, splits.info["fit"]["words"])))
    np.testing.assert_allclose(from_pass.numpy(), from_lists.numpy())


# -- flat memory --------------------------------------------------------------------------------------
@pytest.mark.slow
def test_pos_trains_from_a_file_larger_than_its_in_memory_form_allows(tmp_path):
    """In a child process, a 200,000-sentence CoNLL-U file (the in-memory path held its sentences as
    lists and their character ids as one dense tensor: well over a GB) trains at about the peak memory
    of the demo data."""
    path = write_conllu(tmp_path / "big.conllu", resampled(200_000, seed=5))
    env = {**os.environ, "SEQAPPS_CACHE": str(tmp_path / "cache"), "TF_CPP_MIN_LOG_LEVEL": "2"}

    def peak(data):
        argv = [sys.executable, "-m", "seqapps", "train", "pos", "--data", str(data), "--epochs", "1",
                "--preset", "none", "--set", "train.steps_per_epoch=3", "--set", "train.validation_steps=2",
                "--set", "model.units=8", "--set", "model.embedding_dim=8", "--set", "model.char_dim=4",
                "--set", "model.char_features=8", "--no-eval", "--run-dir", str(tmp_path / "run"), "--overwrite"]
        return peak_memory_mb(argv, env)

    small, big = peak("demo"), peak(path)
    assert big < 1.3 * small, (small, big)

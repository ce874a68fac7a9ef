"""translation streams its data: the fitting pass's vocabularies are the ones TextVectorization.adapt
fits on the whole training split, a file splits by hash the same however it is read, a bad row deep in a
pairs file names its line, and the training batches are the export's encoding of their raw sources."""

from __future__ import annotations

import random

import numpy as np
import pytest

from conftest import needs_data, peak_memory_mb
from seqapps.core.errors import DataError
from seqapps.data.splits import split

WORDS = {"fr": "le chat chien mange dort voit la maison pomme rouge grand petit très vite aujourd'hui".split(),
         "en": "the cat dog eats sleeps sees house apple red big small very fast today it's".split()}


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SEQAPPS_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def config(source, *sets):
    from seqapps.core import registry
    from seqapps.training.fit import resolve_config

    return resolve_config(registry.get("translation"), source, overrides=list(sets), preset="none")


def random_pairs(n: int, seed: int = 0, longest: int = 12) -> list[tuple[str, str]]:
    """(French, English) pairs of random words, some punctuated, a few with an empty side."""
    rng = random.Random(seed)
    pairs = []
    for i in range(n):
        fr = " ".join(rng.choices(WORDS["fr"], k=rng.randint(1, longest))).capitalize()
        en = " ".join(rng.choices(WORDS["en"], k=rng.randint(1, longest))).capitalize()
        pairs.append((fr + rng.choice(["", " !", "."]), "" if i % 97 == 5 else en + rng.choice(["", "?", "."])))
    return pairs


def write_pairs(path, pairs, header="en\tfr\tnote\n", bad_line=None):
    """A pairs file (English first, an attribution column, blank lines here and there)."""
    with open(path, "w", encoding="utf-8") as f:
        f.write(header)
        line = header.count("\n")  # the lines written so far
        for i, (fr, en) in enumerate(pairs):
            line += 1
            if line == bad_line:
                f.write("a line without its tab\n")
                line += 1
            f.write(f"{en}\t{fr}\tCC-BY\n")
            if i % 50 == 7:
                f.write("\n")
                line += 1
    return path


def adapted(cfg, sources, targets):
    """The vocabularies as they were fitted before streaming: TextVectorization.adapt on the training
    split's lists (tasks.translation.data.ParallelVocab.fit before the fitting pass)."""
    from seqapps.data import text as textlib
    from tasks.translation.data import END, START, standardize, standardize_cased

    d = cfg.data
    src = textlib.fit_vocabulary(sources, d.source_vocab_size, standardize)
    tgt = textlib.fit_vocabulary(targets, max(d.target_vocab_size - 2, 3),
                                 standardize if d.lowercase_target else standardize_cased)
    return src, tgt[:2] + [START, END] + [t for t in tgt[2:] if t not in (START, END)]


@pytest.mark.parametrize("sets", [(), ("data.source_lang=en", "data.target_lang=fr", "data.lowercase_target=true"),
                                  ("data.source_vocab_size=20", "data.target_vocab_size=12")])
def test_fitted_vocabularies_are_adapts_on_the_demo_data(cache, sets):
    from seqapps.core import registry

    task = registry.get("translation")
    cfg = config("demo", *sets)
    splits = task.load_data(cfg)
    prep = task.fit_preprocessing(cfg, splits)
    sources, targets = splits.train.materialize()
    assert (prep.source_vocab, prep.target_vocab) == adapted(cfg, sources, targets)
    assert splits.train.n == len(sources) and splits.val.n == len(splits.val.materialize()[0]) > 0


@needs_data
@pytest.mark.slow
def test_fitted_vocabularies_are_adapts_on_anki(cache):
    from seqapps.core import registry
    from seqapps.data import catalog

    root = catalog.data_dir()
    if root is None or not (root / "anki_fra_eng" / "fra.txt").exists():
        pytest.skip("anki_fra_eng is not under $SEQAPPS_DATA")
    task = registry.get("translation")
    cfg = config("anki_fra_eng")
    splits = task.load_data(cfg)
    prep = task.fit_preprocessing(cfg, splits)
    sources, targets = splits.train.materialize()
    assert (prep.source_vocab, prep.target_vocab) == adapted(cfg, sources, targets)
    assert len(prep.source_vocab) == cfg.data.source_vocab_size and len(sources) == splits.train.n


def test_a_file_splits_by_hash_the_same_however_it_is_read(tmp_path, cache):
    """A pairs file streamed, the same pairs as aligned files, and the pass stopped early
    (data.fit_sample) all give the split the whole file gives when read into lists and split by the
    MD5 bucket of the English sentence."""
    from tasks.translation.data import load_parallel

    pairs = random_pairs(3000)
    path = write_pairs(tmp_path / "pairs.tsv", pairs)
    aligned = tmp_path / "aligned"
    aligned.mkdir()
    (aligned / "corpus.fr").write_text("".join(f"{fr}\n" for fr, _ in pairs), encoding="utf-8")
    (aligned / "corpus.en").write_text("".join(f"{en}\n" for _, en in pairs), encoding="utf-8")
    kept = [(fr, en) for fr, en in pairs if fr and en]
    whole = split(tuple(map(list, zip(*kept))), 0.1, 0.1, keys=[en for _, en in kept])
    crlf = tmp_path / "crlf.tsv"
    crlf.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    for source, sets in ((path, ()), (aligned, ()), (crlf, ()), (path, ("data.fit_sample=500",))):
        splits = load_parallel(config(str(source), *sets).data, "translation", verbose=False)
        for stream, expected in zip((splits.train, splits.val, splits.test), whole):
            assert stream.materialize() == tuple(expected) and list(stream.rows()) == list(zip(*expected))
            if not splits.info["fit"]["sampled"]:
                assert stream.n == len(expected[0])
    reverse = load_parallel(config(str(path), "data.source_lang=en", "data.target_lang=fr", "data.split_by=en").data,
                            "translation", verbose=False)  # the other direction: each split's pairs swapped
    assert reverse.val.materialize() == tuple(whole[1][::-1])


def test_the_fitting_pass_is_cached_until_the_file_changes(tmp_path, cache, monkeypatch):
    import os
    import time

    from tasks.translation import data

    calls = []
    fit = data.fit_parallel
    monkeypatch.setattr(data, "fit_parallel", lambda *a, **k: calls.append(1) or fit(*a, **k))
    path = write_pairs(tmp_path / "pairs.tsv", random_pairs(400))
    first = data.load_parallel(config(str(path)).data, "translation", verbose=False)
    second = data.load_parallel(config(str(path)).data, "translation", verbose=False)
    assert len(calls) == 1 and first.info["fit"] == second.info["fit"]
    write_pairs(path, random_pairs(450, seed=1))
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))  # a new modification time, whatever the clock
    third = data.load_parallel(config(str(path)).data, "translation", verbose=False)
    assert len(calls) == 2 and sum(third.info["fit"]["read"].values()) == 450
    data.load_parallel(config(str(path), "data.max_length=5").data, "translation", verbose=False)
    assert len(calls) == 3  # which pairs train depends on the length limits


def test_a_bad_row_deep_in_a_pairs_file_names_its_line_or_is_skipped_and_counted(tmp_path, cache, capsys):
    from tasks.translation.data import load_parallel

    path = write_pairs(tmp_path / "pairs.tsv", random_pairs(20_000), bad_line=12_345)
    with pytest.raises(DataError, match=r"pairs.tsv:12345: expected 2 tab-separated columns \(en, fr, note\), "
                                        r"found 1 .*data.skip_bad_rows=true"):
        load_parallel(config(str(path)).data, "translation", verbose=False)
    splits = load_parallel(config(str(path), "data.skip_bad_rows=true").data, "translation", verbose=False)
    fit = splits.info["fit"]
    assert fit["bad_rows"] == 1 and "pairs.tsv:12345" in fit["first_bad"]
    assert sum(fit["read"].values()) == 20_000 and "skipped 1 bad row" in capsys.readouterr().err
    assert sum(1 for _ in splits.train.rows()) == splits.train.n  # reading again skips it too


def test_training_batches_are_the_exports_encoding(tmp_path, cache):
    """Every row of every validation batch is its raw source encoded alone by the export's function
    (TextVectorization, then max_length), padded to the batch's width, with [START] + the target's
    ids and the target's ids + [END]; pairs too long for data.max_length or data.max_output_length
    are left out, as many as the fitting pass counted."""
    import tensorflow as tf

    from seqapps.core import registry
    from tasks.translation.data import token_counts

    task = registry.get("translation")
    path = write_pairs(tmp_path / "pairs.tsv", random_pairs(600, longest=16))
    cfg = config(str(path), "data.val_fraction=0.4", "data.test_fraction=0.0", "train.batch_size=8",
                 "data.max_length=12", "data.max_output_length=12", "data.source_vocab_size=30")
    splits = task.load_data(cfg)
    prep = task.fit_preprocessing(cfg, splits)
    train, val = task.datasets(cfg, prep, splits)
    sources, targets = splits.val.materialize()
    fit = (token_counts(sources) <= 12) & (token_counts(targets, prep.target_standardize) < 12)
    assert 0 < fit.sum() < len(sources) and fit.sum() == splits.info["fit"]["fits"]["val"]
    sources, targets = [s for s, f in zip(sources, fit) if f], [t for t, f in zip(targets, fit) if f]
    export_encode = task.encoder(cfg, prep)  # what the signatures run
    source_ids = export_encode(tf.constant(sources), width=40).numpy()
    target_ids = prep.target_ragged_ids()(tf.constant(targets))
    expected_in = [[prep.start_id, *row] for row in target_ids.to_list()]
    expected_out = [[*row, prep.end_id] for row in target_ids.to_list()]
    assert export_encode(tf.constant(sources[:3])).shape[1] <= 12  # the export reads max_length tokens

    def padded(rows, width):
        return np.array([row + [0] * (width - len(row)) for row in rows])

    # validation batches come bucketed by length: each row is found among the pairs by its source ids
    remaining = list(range(len(sources)))
    seen = 0
    for x, y, weight in val:
        width = int(x["source"].shape[1])
        assert x["target_in"].shape[1] == y.shape[1] == width
        np.testing.assert_array_equal(weight.numpy(), (y.numpy() != 0).astype("float32"))
        for row in range(len(y)):
            match = next(i for i in remaining
                         if np.array_equal(source_ids[i, :width], x["source"][row].numpy())
                         and np.array_equal(padded([expected_in[i]], width)[0], x["target_in"][row].numpy())
                         and np.array_equal(padded([expected_out[i]], width)[0], y[row].numpy()))
            remaining.remove(match)
            seen += 1
    assert seen == len(sources) and not remaining
    train_sources = [s for s, t in zip(*splits.train.materialize())
                     if token_counts([s])[0] <= 12 and token_counts([t], prep.target_standardize)[0] < 12]
    rows = set(map(tuple, export_encode(tf.constant(train_sources), width=40).numpy()))
    batches = 0
    for x, y, weight in train:
        assert set(x) == {"source", "target_in"} and weight.dtype == tf.float32 and len(y) <= 8
        for row in x["source"].numpy():
            assert tuple(row) + (0,) * (40 - len(row)) in rows, "a training row that no raw source encodes to"
        batches += 1
    assert batches == -(-len(train_sources) // 8) == int(train.cardinality())  # an epoch: ceil(pairs / batch)


@pytest.mark.slow
def test_translation_trains_from_a_file_larger_than_its_in_memory_form_allows(tmp_path):
    """In a child process, a 1,000,000-pair file trains at about the peak memory of the demo data (read
    whole, the same file held about 1.2 KB a pair: over 1 GB more)."""
    import os
    import sys

    rng = random.Random(1)
    base = random_pairs(5000, seed=3)
    path = tmp_path / "big.txt"
    with open(path, "w", encoding="utf-8") as f:
        for _ in range(200):
            f.writelines(f"{en}\t{fr}\n" for fr, en in rng.sample(base, len(base)) if en)
    env = {**os.environ, "SEQAPPS_CACHE": str(tmp_path / "cache"), "TF_CPP_MIN_LOG_LEVEL": "2"}

    def peak(data):
        argv = [sys.executable, "-m", "seqapps", "train", "translation", "--data", str(data), "--epochs", "1",
                "--preset", "none", "--set", "train.steps_per_epoch=3", "--set", "model.units=8",
                "--set", "model.embedding_dim=8", "--set", "model.attention_units=8", "--set", "train.batch_size=16",
                "--set", "train.validation_steps=2", "--no-eval", "--run-dir", str(tmp_path / "run"), "--overwrite"]
        return peak_memory_mb(argv, env)

    small, big = peak("demo"), peak(path)
    assert big < 1.3 * small, (small, big)

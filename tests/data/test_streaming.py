"""Data of any size: the streaming readers, the cached fitting pass, bad rows deep in a file, and
the same model inputs in training as in the export."""

from __future__ import annotations

import os
import random
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import peak_memory_mb

from seqapps.core.errors import DataError
from seqapps.data.streaming import TokenCounter, hash_role
from seqapps.data.splits import md5_bucket

ROOT = Path(__file__).resolve().parents[2]
WORDS = "good bad film plot slow warm dull bright cast scene long short funny sad".split()


def write_tsv(path: Path, rows: int, seed: int = 0, bad_line: int | None = None) -> Path:
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as f:
        f.write("sentence\tlabel\n")
        for i in range(rows):
            if bad_line is not None and i + 2 == bad_line:
                f.write("a row\twith\tthree fields\n")
                continue
            words = rng.choices(WORDS, k=rng.randint(1, 12))
            f.write(f"{' '.join(words)}\t{int('good' in words)}\n")
    return path


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SEQAPPS_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def sentiment_cfg(source, *sets):
    from seqapps.core import registry
    from seqapps.training.fit import resolve_config

    return resolve_config(registry.get("sentiment"), source, overrides=list(sets), preset="none")


def test_token_ranking_is_text_vectorizations(tmp_path):
    """The streaming counter ranks tokens as TextVectorization.adapt does (count, then token, descending)."""
    import tensorflow as tf

    from seqapps.data import text as textlib

    rng = random.Random(3)
    texts = [" ".join(rng.choices(WORDS + ["Émile", "naïve", "it's"], k=rng.randint(0, 9))) for _ in range(500)]
    counter = TokenCounter(cap=10_000)
    for start in range(0, len(texts), 64):
        tokens, n = np.unique(textlib.words(tf.constant(texts[start:start + 64])).flat_values.numpy(),
                              return_counts=True)
        counter.add(tokens.tolist(), n.tolist())
    ranked = ["", "[UNK]", *(t.decode() for t in counter.ranked())][:12]
    assert ranked == textlib.fit_vocabulary(texts, 12)


def test_token_counter_keeps_the_frequent_tokens_past_its_cap():
    counter = TokenCounter(cap=100)
    for i in range(5000):
        counter.add([b"common", b"also", f"rare{i}".encode()])
    assert counter.ranked(2) == [b"common", b"also"] and len(counter.counts) <= 100 and counter.dropped > 4000


def test_a_file_splits_by_the_hash_of_each_text(tmp_path, cache):
    from tasks.sentiment.data import load_labelled_stream

    path = write_tsv(tmp_path / "reviews.tsv", 600)
    splits = load_labelled_stream(sentiment_cfg(str(path)).data, "sentiment", verbose=False)
    for role, stream in (("train", splits.train), ("val", splits.val), ("test", splits.test)):
        texts, _ = stream.materialize()
        assert texts and len(texts) == stream.n
        assert all(hash_role(t, 0.1, 0.1) == role for t in texts)
    assert all(md5_bucket(t) < 10 for t in splits.test.materialize()[0])


def test_the_fitting_pass_is_cached_until_the_file_changes(tmp_path, cache, monkeypatch):
    from tasks.sentiment import data

    calls = []
    fit = data._fit
    monkeypatch.setattr(data, "_fit", lambda *a, **k: calls.append(1) or fit(*a, **k))
    path = write_tsv(tmp_path / "reviews.tsv", 300)
    cfg = sentiment_cfg(str(path))
    first = data.load_labelled_stream(cfg.data, "sentiment", verbose=False)
    second = data.load_labelled_stream(cfg.data, "sentiment", verbose=False)
    assert len(calls) == 1 and first.info["fit"] == second.info["fit"]
    write_tsv(path, 310, seed=1)
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))  # a new modification time, whatever the clock
    third = data.load_labelled_stream(cfg.data, "sentiment", verbose=False)
    assert len(calls) == 2 and sum(third.info["fit"]["counts"].values()) == 310
    data.load_labelled_stream(sentiment_cfg(str(path), "data.vocab_size=50").data, "sentiment", verbose=False)
    assert len(calls) == 3  # the vocabulary's bound is part of what the pass depends on


def test_a_bad_row_deep_in_a_file_names_its_line_or_is_skipped_and_counted(tmp_path, cache, capsys):
    from tasks.sentiment.data import load_labelled_stream

    path = write_tsv(tmp_path / "reviews.tsv", 20_000, bad_line=12_345)
    with pytest.raises(DataError, match=rf"reviews.tsv:12345: expected 2 fields as in the header, got 3 .*"
                                        r"data.skip_bad_rows=true"):
        load_labelled_stream(sentiment_cfg(str(path)).data, "sentiment", verbose=False)
    splits = load_labelled_stream(sentiment_cfg(str(path), "data.skip_bad_rows=true").data, "sentiment",
                                  verbose=False)
    assert splits.info["fit"]["bad_rows"] == 1 and sum(splits.info["fit"]["counts"].values()) == 19_999
    assert "skipped 1 bad row" in capsys.readouterr().err


def test_fit_sample_fits_on_the_first_rows_and_estimates_the_sizes(tmp_path, cache):
    from tasks.sentiment.data import load_labelled_stream

    path = write_tsv(tmp_path / "reviews.tsv", 20_000)
    splits = load_labelled_stream(sentiment_cfg(str(path), "data.fit_sample=1000").data, "sentiment", verbose=False)
    fit = splits.info["fit"]
    assert fit["sampled"] and 15_000 < fit["counts"]["train"] < 17_000  # 80% of 20,000, estimated


def test_training_batches_are_the_exports_inputs(tmp_path, cache):
    """The features the model trains on are what the export's encoding makes of the raw texts:
    every row of every validation batch equals its text encoded alone by the export's function
    (TextVectorization and in-graph n-gram hashing), padded to the batch's width."""
    import tensorflow as tf

    from seqapps.core import registry
    from seqapps.core.testing import random_texts

    task = registry.get("sentiment")
    rng = np.random.default_rng(0)
    texts = [" ".join(t.split()) for t in random_texts(rng, 300, vocabulary=WORDS)]
    path = tmp_path / "reviews.tsv"
    path.write_text("sentence\tlabel\n" + "".join(f"{t}\t{i % 2}\n" for i, t in enumerate(texts)), encoding="utf-8")
    cfg = sentiment_cfg(str(path), "data.val_fraction=0.4", "data.test_fraction=0.0", "train.batch_size=8",
                        "model.subword_buckets=1000")
    splits = task.load_data(cfg)
    prep = task.fit_preprocessing(cfg, splits)
    train, val = task.datasets(cfg, prep, splits)
    export_encode = task.encoder(cfg, prep)  # what the signatures run
    val_texts = splits.val.materialize()[0]
    widest = export_encode(tf.constant(val_texts), width=64)[0]  # every text, padded wider than any batch
    widest = {k: v.numpy() for k, v in widest.items()}
    rows = 0
    for features, labels in val:
        width = int(features["tokens"].shape[1])
        for row in range(int(labels.shape[0])):
            assert any(all(np.array_equal(widest[k][i, :width], features[k][row].numpy()) for k in features)
                       for i in range(len(val_texts))), "a training row that no raw text encodes to"
            rows += 1
    assert rows == len(val_texts) == splits.val.n
    batch = next(iter(train))[0]
    assert set(batch) == {"tokens", "subwords"} and batch["subwords"].shape[2] == 40  # fixed n-gram width


@pytest.mark.slow
def test_sentiment_trains_from_a_file_larger_than_its_in_memory_form_allows(tmp_path):
    """In a child process, a 300,000-row file (the in-memory path held about 14 KB an example: over
    4 GB) trains at about the peak memory of the demo data."""
    path = write_tsv(tmp_path / "big.tsv", 300_000)
    env = {**os.environ, "SEQAPPS_CACHE": str(tmp_path / "cache"), "TF_CPP_MIN_LOG_LEVEL": "2"}

    def peak(data):
        argv = [sys.executable, "-m", "seqapps", "train", "sentiment", "--data", str(data), "--epochs", "1",
                "--preset", "none", "--set", "train.steps_per_epoch=3", "--set", "model.units=8",
                "--set", "model.embedding_dim=8", "--set", "model.subword_buckets=500", "--no-eval",
                "--run-dir", str(tmp_path / "run"), "--overwrite"]
        return peak_memory_mb(argv, env)

    small, big = peak("demo"), peak(path)
    assert big < 1.3 * small, (small, big)

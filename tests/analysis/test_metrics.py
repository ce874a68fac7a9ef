"""Shared pieces the task modules declare with: scoring helpers, predictor batching, word dropout."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from seqapps.analysis import metrics
from tasks.pos.word_dropout import rare_word_dropout
from seqapps.inference.predictor import length_batches, pad_strings


def test_translation_scores_overall_and_by_source_length():
    sources = ["a b", "a b c d e f g", "one two three four five six seven eight nine ten eleven"]
    refs = ["the cat sat on the mat", "a dog ran in the park today", "it is cold here in winter time"]
    assert metrics.length_buckets(sources) == {"1-5": [0], "6-10": [1], "11-15": [2]}
    perfect = metrics.score_translations(sources, refs, refs)
    assert perfect["bleu"] == pytest.approx(100.0) and perfect["examples"] == 3
    assert list(perfect["by_source_length"]) == ["1-5", "6-10", "11-15"]
    wrong = metrics.score_translations(sources, ["x y z"] * 3, refs)
    assert wrong["bleu"] < 5 and wrong["by_source_length"]["1-5"]["examples"] == 1
    assert "BLEU 100.00" in metrics.format_translation(perfect)


def test_forecast_report_scores_every_method_in_order():
    y = np.array([[1.0], [2.0], [3.0]])
    report = metrics.forecast_report(y, {"model": y, "naive": y + 1}, 2.0, split="test", windows=3, horizon=1,
                                     season=1, target="t")
    assert list(report)[-2:] == ["model", "naive"]
    assert report["model"]["mae"] == 0 and report["naive"] == {"mae": 1.0, "rmse": 1.0, "mase": 0.5}
    assert metrics.format_forecast(report).splitlines()[3].split() == ["naive", "1.0000", "1.0000", "0.5000"]


def test_predictor_batches_by_length_and_pads_strings():
    inputs = ["aaaa", "a", "aaa", "aa", "aaaaa"]
    assert length_batches(range(5), inputs, 2) == [[1, 3], [2, 0], [4]]
    assert length_batches([], inputs, 2) == []
    padded = pad_strings([["x"], ["y", "z"], []])
    assert padded.shape == (3, 2) and padded.dtype == object and padded.tolist() == [["x", ""], ["y", "z"], ["", ""]]
    assert pad_strings([[]]).shape == (1, 1)


def test_rare_word_dropout_drops_rare_words_and_keeps_padding():
    sentences = [["the", "cat"], ["the", "dog"]] * 50 + [["zebra"]]
    vocabulary = ["the", "cat", "dog", "zebra"]
    ids = tf.constant([[2, 3, 5, 0]] * 400, tf.int64)
    ds = tf.data.Dataset.from_tensors(({"words": ids}, tf.zeros([400])))
    tf.random.set_seed(0)
    out = next(iter(rare_word_dropout(ds, sentences, vocabulary, alpha=1.0)))[0]["words"].numpy()
    assert (out[:, 3] == 0).all()  # padding stays padding
    assert set(np.unique(out[:, :3])) <= {1, 2, 3, 5}
    dropped = (out[:, :3] == 1).mean(axis=0)  # the: seen 100 times, cat 50, zebra once
    assert dropped[0] < 0.05 and dropped[1] < 0.08 and 0.35 < dropped[2] < 0.65
    kept = next(iter(rare_word_dropout(ds, sentences, vocabulary, alpha=0.0)))[0]["words"].numpy()
    assert (kept == ids.numpy()).all()

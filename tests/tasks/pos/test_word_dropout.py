"""pos's rare-word dropout: rare words are replaced by the unknown id more often; padding stays."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tasks.pos.word_dropout import rare_word_dropout


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

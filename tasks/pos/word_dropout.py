"""Frequency-aware word dropout for training batches (Kiperwasser & Goldberg, 2016).

A training word seen ``c`` times reads as unknown with probability ``alpha / (alpha + c)``:
rare words are dropped most often, because they are the ones that look like words
never seen in training, so the model learns to tag those from their other features.
"""

from __future__ import annotations

from collections import Counter

import tensorflow as tf

#: ids 0 and 1 of a word vocabulary: padding and unknown (never dropped; unknown is what a drop gives)
PAD, UNKNOWN = 0, 1


def dropout_rates(sentences, vocabulary, alpha: float, counts: dict | None = None) -> tf.Tensor:
    """Per word id, its drop probability: ``sentences`` are token lists (counted lower-cased), or
    ``counts`` gives each lower-cased word's count (the fitting pass's); ``vocabulary`` the words of
    ids ``2..``."""
    if counts is None:
        counts = Counter(w.lower() for words in sentences for w in words)
    return tf.constant([0.0, 0.0] + [alpha / (alpha + counts.get(w, 0) + 1e-9) for w in vocabulary], tf.float32)


def rare_word_dropout(ds: tf.data.Dataset, sentences, vocabulary, alpha: float, key: str = "words",
                      counts: dict | None = None) -> tf.data.Dataset:
    """``ds`` of ``(features, targets)`` with ``features[key]`` word ids replaced by the unknown id
    at the rates of :func:`dropout_rates`."""
    rates = dropout_rates(sentences, vocabulary, alpha, counts)

    def drop(x, y):
        words = x[key]
        hit = tf.random.uniform(tf.shape(words)) < tf.gather(rates, words)
        return {**x, key: tf.where(hit, tf.fill(tf.shape(words), tf.cast(UNKNOWN, words.dtype)), words)}, y
    return ds.map(drop)

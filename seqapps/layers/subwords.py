"""Word vectors from hashed character n-grams (fastText-style subword features).

Words never seen in training still get a vector from their spelling, which matters
when most test sentences hold an unseen word.

The hashing is preprocessing (TF string ops, in tf.data and in the exported graph):
:func:`char_ngram_ids` turns words into integer ids, so the model itself takes only
numbers and runs on any Keras backend and under any distribution strategy.
:class:`SubwordEmbedding` is the model side, in ``keras.ops``.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops


def char_ngram_ids(words, buckets: int, min_n: int = 3, max_n: int = 5, max_grams: int = 40):
    """``[batch, time]`` word strings (dense or ragged) -> ragged ``[batch, time, (grams)]`` ids.

    Each id is the n-gram's hash bucket + 1 (``1..buckets``), so ``0`` is free for padding.
    N-grams are taken of ``<word>`` for ``min_n <= n <= max_n`` and a word keeps its first
    ``max_grams`` (all of them for words up to ``(max_grams + 3) // 3`` characters with
    3..5-grams). Padding words (``""``) have none."""
    if min_n < 3 or max_n < min_n:
        raise ValueError(f"char n-grams need 3 <= min_n <= max_n, got {min_n}..{max_n}")
    chars = tf.strings.unicode_split(tf.strings.join(["<", words, ">"]), "UTF-8", errors="replace")
    grams = tf.concat([tf.strings.ngrams(chars, n, separator="") for n in range(min_n, max_n + 1)], axis=-1)
    ids = tf.strings.to_hash_bucket_fast(grams, buckets) + 1
    return ids[..., :max_grams]


def dense_char_ngram_ids(words, buckets: int, min_n: int = 3, max_n: int = 5, max_grams: int = 40):
    """:func:`char_ngram_ids` of dense ``[batch, time]`` words, as a dense int64 tensor
    ``[batch, time, grams]`` padded with 0 (``grams`` >= 1 even for an empty batch)."""
    ids = char_ngram_ids(words, buckets, min_n, max_n, max_grams)
    shape = tf.shape(words, out_type=tf.int64)
    width = tf.maximum(tf.cast(ids.bounding_shape(axis=2), tf.int64), 1)
    return ids.to_tensor(0, shape=tf.concat([shape, [width]], 0))


@keras.saving.register_keras_serializable(package="seqapps")
class SubwordEmbedding(keras.layers.Layer):
    """``[batch, time, grams]`` n-gram ids (0 = padding) -> ``[batch, time, dim]``: the mean
    of the ids' embeddings. A word with no n-grams (padding) gives zeros.

    ``output_dim`` > 0 keeps the n-gram table narrow (``dim`` wide) and maps the mean to
    ``output_dim`` with one linear layer: the table's gradient and optimizer update, most
    of a training step's cost, shrink by ``output_dim / dim``."""

    def __init__(self, dim: int, buckets: int = 30000, output_dim: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.dim, self.buckets, self.output_dim = dim, buckets, output_dim

    def build(self, input_shape):
        self.embeddings = self.add_weight(shape=(self.buckets + 1, self.dim), name="embeddings",
                                          initializer=keras.initializers.RandomUniform(-0.05, 0.05))
        if self.output_dim:
            self.projection = self.add_weight(shape=(self.dim, self.output_dim), name="projection",
                                              initializer="glorot_uniform")

    def call(self, ids):
        ids = ops.cast(ids, "int32")
        present = ops.cast(ops.expand_dims(ops.greater(ids, 0), -1), self.compute_dtype)
        vectors = ops.take(self.embeddings, ids, axis=0) * present
        count = ops.sum(present, axis=2)
        mean = ops.sum(vectors, axis=2) / ops.maximum(count, 1.0)
        return ops.matmul(mean, ops.cast(self.projection, self.compute_dtype)) if self.output_dim else mean

    def compute_output_shape(self, shape):
        return (*shape[:2], self.output_dim or self.dim)

    def get_config(self):
        return {**super().get_config(), "dim": self.dim, "buckets": self.buckets, "output_dim": self.output_dim}

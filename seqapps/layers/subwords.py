"""Word vectors from hashed character n-grams (fastText-style subword features).

Words never seen in training still get a vector from their spelling, which matters
when most test sentences hold an unseen word.
"""

from __future__ import annotations

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="seqapps")
class HashedCharNgrams(keras.layers.Layer):
    """``[batch, time]`` word strings -> ``[batch, time, dim]``: the mean embedding of the
    word's character n-grams (``min_n``..``max_n``, with ``<`` and ``>`` marking its
    edges), each hashed into one of ``buckets`` rows. Padding (``""``, whose ``<>`` has no
    n-grams when ``min_n >= 3``) gives zeros."""

    def __init__(self, dim: int, buckets: int = 30000, min_n: int = 3, max_n: int = 5, **kwargs):
        super().__init__(**kwargs)
        if min_n < 3 or max_n < min_n:
            raise ValueError(f"HashedCharNgrams needs 3 <= min_n <= max_n, got {min_n}..{max_n}")
        self.dim, self.buckets, self.min_n, self.max_n = dim, buckets, min_n, max_n

    def build(self, input_shape):
        self.embeddings = self.add_weight(shape=(self.buckets, self.dim), name="embeddings",
                                          initializer=keras.initializers.RandomUniform(-0.05, 0.05))

    def call(self, words):
        chars = tf.strings.unicode_split(tf.strings.join(["<", words, ">"]), "UTF-8", errors="replace")
        grams = tf.concat([tf.strings.ngrams(chars, n, separator="") for n in range(self.min_n, self.max_n + 1)],
                          axis=-1)
        ids = tf.strings.to_hash_bucket_fast(grams, self.buckets)
        vectors = tf.ragged.map_flat_values(tf.gather, tf.convert_to_tensor(self.embeddings), ids)
        shape = tf.shape(words, out_type=tf.int64)  # keep [batch, time] even for an empty batch
        total = _dense(tf.reduce_sum(vectors, axis=2), tf.concat([shape, [self.dim]], 0))
        count = tf.cast(tf.expand_dims(_dense(ids.row_lengths(axis=2), shape), -1), total.dtype)
        return tf.math.divide_no_nan(total, count)

    def compute_output_shape(self, shape):
        return (*shape, self.dim)

    def get_config(self):
        return {**super().get_config(), "dim": self.dim, "buckets": self.buckets, "min_n": self.min_n,
                "max_n": self.max_n}



def _dense(t, shape):
    return t.to_tensor(shape=shape) if isinstance(t, tf.RaggedTensor) else t

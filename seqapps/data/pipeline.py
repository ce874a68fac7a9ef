"""tf.data pipelines: shuffle, batch by similar length, pad, prefetch."""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf


def split_indices(n: int, val_fraction: float, test_fraction: float, seed: int = 0):
    """Deterministic shuffled index split into (train, val, test)."""
    order = np.random.default_rng(seed).permutation(n)
    n_test = int(round(n * test_fraction)) if test_fraction else 0
    n_val = int(round(n * val_fraction)) if val_fraction else 0
    if n - n_test - n_val < 1:
        raise ValueError("too few examples to split")
    return order[n_test + n_val:], order[n_test:n_test + n_val], order[:n_test]


def default_boundaries(max_length: int) -> list[int]:
    """Bucket edges 4, 8, 12, 16, 24, 32, 48, 64, ... up to ``max_length``."""
    edges, edge = [], 4
    while edge < max_length:
        edges.append(edge)
        edge = edge + 4 if edge < 16 else int(edge * 1.5) if edge < 64 else edge * 2
    return edges


def bucketed_batches(features, targets, lengths, batch_size: int, *, shuffle: bool, seed: int = 0,
                     boundaries: list[int] | None = None, padding_value=0):
    """Batches of examples of similar length, padded to the longest in the batch.

    ``features`` is a ragged [n, None] tensor (or a dict of them); ``targets`` a dense
    or ragged tensor; ``lengths`` a numpy int array. The batch count is exact, so
    progress bars show a total.
    """
    lengths = np.asarray(lengths)
    boundaries = boundaries or default_boundaries(int(lengths.max()) + 1 if len(lengths) else 2)
    bucket = np.searchsorted(boundaries, lengths, side="right")
    n_batches = sum(math.ceil(c / batch_size) for c in np.bincount(bucket) if c)
    ds = tf.data.Dataset.from_tensor_slices((features, targets, lengths.astype(np.int32)))
    ds = ds.map(lambda x, y, n: (_dense(x), _dense(y), n))
    if shuffle:
        ds = ds.shuffle(len(lengths), seed=seed, reshuffle_each_iteration=True)
    ds = ds.bucket_by_sequence_length(
        element_length_func=lambda x, y, n: n,
        bucket_boundaries=boundaries,
        bucket_batch_sizes=[batch_size] * (len(boundaries) + 1),
        padding_values=None if padding_value == 0 else padding_value)
    ds = ds.map(lambda x, y, n: (x, y), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.apply(tf.data.experimental.assert_cardinality(n_batches)).prefetch(tf.data.AUTOTUNE)


def _dense(tree):
    """Rows sliced from a ragged tensor arrive as ragged_rank-0 ragged values; make them plain."""
    return tf.nest.map_structure(
        lambda t: t.to_tensor() if isinstance(t, tf.RaggedTensor) else tf.convert_to_tensor(t), tree)

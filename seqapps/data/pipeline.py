"""tf.data pipelines: shuffle, batch by similar length, pad, prefetch."""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf


def default_boundaries(max_length: int) -> list[int]:
    """Bucket edges 4, 8, 12, 16, 24, 32, 48, 64, ... up to ``max_length``."""
    edges, edge = [], 4
    while edge < max_length:
        edges.append(edge)
        edge = edge + 4 if edge < 16 else int(edge * 1.5) if edge < 64 else edge * 2
    return edges


def bucketed_batches(features, targets, lengths, batch_size: int, *, shuffle: bool, seed: int = 0,
                     boundaries: list[int] | None = None, padding_value=0):
    """Batches of examples of similar length, padded to their bucket's upper edge.

    ``features`` is a ragged [n, None, ...] tensor (or a dict of them); ``targets`` a dense
    or ragged tensor; ``lengths`` a numpy int array. Every batch of a bucket has the same
    time width (the longest length the bucket admits) and inner ragged dimensions (a word's
    characters, its n-grams) are padded to their maximum over the whole data, so a compiling
    backend (XLA) sees a handful of shapes, not one per batch. The batch count is exact, so
    progress bars show a total.
    """
    lengths = np.asarray(lengths)
    longest = int(lengths.max()) if len(lengths) else 1
    if boundaries is None:
        boundaries = default_boundaries(longest + 1) + [longest + 1]
    elif boundaries[-1] <= longest:
        boundaries = [*boundaries, longest + 1]
    bucket = np.searchsorted(boundaries, lengths, side="right")
    n_batches = sum(math.ceil(c / batch_size) for c in np.bincount(bucket) if c)
    leaves = [t if isinstance(t, tf.RaggedTensor) else tf.convert_to_tensor(t)
              for t in tf.nest.flatten((features, targets), expand_composites=False)]
    inner = [_inner_shape(t) for t in leaves]
    # Only (index, length) pairs flow through shuffling and bucketing; each batch then gathers its rows
    # at once. The batches are the ones bucketing the examples themselves gives (shuffling draws the same
    # permutation whatever the elements are), without densifying every example one by one.
    ds = tf.data.Dataset.from_tensor_slices((np.arange(len(lengths), dtype=np.int64), lengths.astype(np.int32)))
    if shuffle:
        ds = ds.shuffle(len(lengths), seed=seed, reshuffle_each_iteration=True)
    ds = ds.bucket_by_sequence_length(
        element_length_func=lambda i, n: n,
        bucket_boundaries=boundaries,
        bucket_batch_sizes=[batch_size] * (len(boundaries) + 1))
    edges = tf.constant(boundaries, tf.int32) - 1

    def gather(index, length):
        edge = edges[tf.reduce_sum(tf.cast(edges < tf.reduce_max(length), tf.int32))]
        rows = [_rows(t, index, edge, dims, padding_value) for t, dims in zip(leaves, inner)]
        return tf.nest.pack_sequence_as((features, targets), rows)

    ds = ds.map(gather, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.apply(tf.data.experimental.assert_cardinality(n_batches)).prefetch(tf.data.AUTOTUNE)


def _inner_shape(t):
    """The dimensions after [n, time] of a ragged or dense tensor, as their maximum over all rows."""
    if isinstance(t, tf.RaggedTensor):
        return [int(d) for d in t.bounding_shape()[2:].numpy()] if t.shape.rank > 2 else []
    shape = tuple(np.shape(t))
    return list(shape[2:])


def _rows(t, index, edge, inner, padding_value):
    """Rows ``index`` of ``t``, dense: the time dimension padded to ``edge`` with ``padding_value``,
    inner ragged dimensions (a word's characters, its n-grams) to ``inner`` with 0."""
    rows = tf.gather(t, index)
    if not isinstance(rows, tf.RaggedTensor):
        return rows
    if isinstance(rows.values, tf.RaggedTensor):
        rows = rows.with_values(rows.values.to_tensor(0, shape=[None, *inner]))
    shape = tf.stack([tf.shape(index)[0], edge, *inner])
    dense = rows.to_tensor(tf.cast(padding_value, rows.dtype), shape=shape)
    return tf.ensure_shape(dense, [None, None, *inner])

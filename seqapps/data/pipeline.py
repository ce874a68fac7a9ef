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
    inner = [_inner_shape(t) for t in tf.nest.flatten((features, targets), expand_composites=False)]
    ds = tf.data.Dataset.from_tensor_slices((features, targets, lengths.astype(np.int32)))
    ds = ds.map(lambda x, y, n: (*_dense((x, y), inner), n))
    if shuffle:
        ds = ds.shuffle(len(lengths), seed=seed, reshuffle_each_iteration=True)
    ds = ds.bucket_by_sequence_length(
        element_length_func=lambda x, y, n: n,
        bucket_boundaries=boundaries,
        bucket_batch_sizes=[batch_size] * (len(boundaries) + 1),
        padding_values=None if padding_value == 0 else padding_value,
        pad_to_bucket_boundary=True)
    ds = ds.map(lambda x, y, n: (x, y), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.apply(tf.data.experimental.assert_cardinality(n_batches)).prefetch(tf.data.AUTOTUNE)


def _inner_shape(t):
    """The dimensions after [n, time] of a ragged or dense tensor, as their maximum over all rows."""
    if isinstance(t, tf.RaggedTensor):
        return [int(d) for d in t.bounding_shape()[2:].numpy()] if t.shape.rank > 2 else []
    shape = tuple(np.shape(t))
    return list(shape[2:])


def _dense(tree, inner):
    """Rows sliced from a ragged tensor arrive as ragged values; make them plain, their inner
    dimensions padded to ``inner`` (one list per leaf; the time dimension is padded per bucket)."""
    def dense(t, dims):
        if isinstance(t, tf.RaggedTensor):
            return t.to_tensor(shape=[None, *dims] if t.shape.rank > 1 else None)
        return tf.convert_to_tensor(t)
    leaves = tf.nest.flatten(tree)
    return tf.nest.pack_sequence_as(tree, [dense(t, dims) for t, dims in zip(leaves, inner)])

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
                     boundaries: list[int] | None = None, padding_value=0, full: bool = False):
    """Batches of examples of similar length, padded to their bucket's upper edge.

    ``features`` is a ragged [n, None, ...] tensor (or a dict of them); ``targets`` a dense
    or ragged tensor; ``lengths`` a numpy int array. Every batch of a bucket has the same
    time width (the longest length the bucket admits) and inner ragged dimensions (a word's
    characters, its n-grams) are padded to their maximum over the whole data, so a compiling
    backend (XLA) sees a handful of shapes, not one per batch. The batch count is exact, so
    progress bars show a total.

    ``full``: no odd-sized batch either, so a compiling backend meets one shape per bucket instead of
    two (see :func:`full_buckets`): each bucket's last partial batch moves up into the next longer
    bucket, padded to its edge; when shuffling (training), the longest bucket's remainder is topped
    up with examples drawn at random from the whole set (the only examples an epoch sees twice).
    Without shuffling (validation) nothing is repeated and only the longest bucket may end short.
    """
    lengths = np.asarray(lengths)
    longest = int(lengths.max()) if len(lengths) else 1
    if boundaries is None:
        boundaries = default_boundaries(longest + 1) + [longest + 1]
    elif boundaries[-1] <= longest:
        boundaries = [*boundaries, longest + 1]
    index, keys = np.arange(len(lengths), dtype=np.int64), lengths
    if full and len(lengths):
        index, keys = full_buckets(lengths, boundaries, batch_size, top_up=shuffle, seed=seed)
    bucket = np.searchsorted(boundaries, keys, side="right")
    n_batches = sum(math.ceil(c / batch_size) for c in np.bincount(bucket) if c)
    leaves = [t if isinstance(t, tf.RaggedTensor) else tf.convert_to_tensor(t)
              for t in tf.nest.flatten((features, targets), expand_composites=False)]
    inner = [_inner_shape(t) for t in leaves]
    # Only (index, length) pairs flow through shuffling and bucketing; each batch then gathers its rows
    # at once. The batches are the ones bucketing the examples themselves gives (shuffling draws the same
    # permutation whatever the elements are), without densifying every example one by one.
    ds = tf.data.Dataset.from_tensor_slices((index, keys.astype(np.int32)))
    if shuffle:
        ds = ds.shuffle(len(index), seed=seed, reshuffle_each_iteration=True)
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


def full_buckets(lengths, boundaries: list[int], batch_size: int, *, top_up: bool, seed: int = 0):
    """``(index, keys)``: the examples (by index) and the length each is bucketed by, such that every
    bucket but the longest holds a multiple of ``batch_size`` examples, and, with ``top_up``, the
    longest too. From the shortest bucket up, the remainder of a bucket (drawn at random under
    ``seed``, the same every epoch) is keyed to the next bucket's lower edge: it is padded further,
    never cut. With ``top_up``, the longest bucket's last batch is filled with examples drawn at
    random from all of them (they fit its padding); without, it may end short."""
    lengths = np.asarray(lengths)
    rng = np.random.default_rng(seed)
    keys = lengths.astype(np.int64).copy()
    bucket = np.searchsorted(boundaries, keys, side="right")
    last = int(bucket.max())
    for k in range(last):
        members = np.flatnonzero(bucket == k)
        extra = len(members) % batch_size
        if extra:
            moved = rng.choice(members, extra, replace=False)
            bucket[moved], keys[moved] = k + 1, boundaries[k]  # the lower edge of bucket k + 1
    index = np.arange(len(lengths), dtype=np.int64)
    missing = -int(np.count_nonzero(bucket == last)) % batch_size
    if top_up and missing:
        added = rng.choice(len(lengths), missing, replace=missing > len(lengths))
        index = np.concatenate([index, added.astype(np.int64)])
        keys = np.concatenate([keys, np.full(missing, lengths.max(), dtype=np.int64)])
    return index, keys


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

"""Truncated backpropagation through time over one long token sequence (a text read as ids).

``stream_windows`` / ``stateful_dataset``: the sequence cut into ``batch_size`` contiguous
streams, batch ``k`` holding window ``k`` of every stream, so a stateful recurrent model
carries each row's state into the next batch; :class:`seqapps.training.callbacks.ResetStates` zeroes that state
when an epoch or a validation pass starts. ``random_window_dataset``: windows at random
offsets, each read from a zero state.

The datasets read their windows batch by batch from an ids source (anything with ``len()`` and
``windows(starts, length)``: :class:`tasks.char_lm.data.CharIds` over the ids file, or ids in
memory), so a text of any size trains without being loaded; a plain array is read in memory.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from seqapps.core.errors import DataError

#: up to this many windows, random windows are shuffled by ``tf.data``'s full-size shuffle (the
#: batches of earlier versions, seed for seed); its buffer costs about 200 bytes a window, so past
#: it a keyed permutation computed batch by batch (:func:`permuted`) draws them in flat memory
EXACT_SHUFFLE_WINDOWS = 1 << 20


def stream_windows(ids: np.ndarray, batch_size: int, bptt: int, what: str = "text"):
    """(inputs, targets) ``[n_batches, batch_size, bptt]``: row ``r`` of batch ``k`` is window ``k``
    of stream ``r``, so consecutive batches continue each row's text (stateful TBPTT)."""
    per_stream, windows = _streams(len(ids), batch_size, bptt, what)
    used = windows * bptt
    x = ids[:batch_size * per_stream].reshape(batch_size, per_stream)[:, :used]
    y = ids[1:batch_size * per_stream + 1].reshape(batch_size, per_stream)[:, :used]
    shape = (batch_size, windows, bptt)
    return x.reshape(shape).transpose(1, 0, 2), y.reshape(shape).transpose(1, 0, 2)


def _streams(n: int, batch_size: int, bptt: int, what: str) -> tuple[int, int]:
    per_stream = (n - 1) // batch_size
    windows = per_stream // bptt
    if windows < 1:
        raise DataError(f"the {what} ({n} characters) is too short for {batch_size} streams of at least "
                        f"{bptt + 1} characters; lower train.batch_size or train.bptt")
    return per_stream, windows


def _source(ids):
    if hasattr(ids, "windows"):
        return ids
    from tasks.char_lm.data import ArrayIds

    return ArrayIds(ids)


def _pairs(read, args, rows: int | None, bptt: int):
    """``(x, y)`` int32 ``[rows, bptt]`` from ``read(*args)`` -> ``[rows, bptt + 1]`` windows."""
    def split(*values):
        w = read(*values)
        return w[:, :-1], w[:, 1:]

    x, y = tf.numpy_function(split, list(args), (tf.int32, tf.int32), stateful=False)
    x.set_shape([rows, bptt])
    y.set_shape([rows, bptt])
    return x, y


def stateful_dataset(ids, batch_size: int, bptt: int, what: str):
    """The batches of :func:`stream_windows`, each read from ``ids`` when it is needed."""
    ids = _source(ids)
    per_stream, windows = _streams(len(ids), batch_size, bptt, what)
    rows = np.arange(batch_size, dtype=np.int64) * per_stream

    def read(k):
        return ids.windows(rows + int(k) * bptt, bptt + 1)

    ds = tf.data.Dataset.range(windows).map(lambda k: _pairs(read, [k], batch_size, bptt),
                                            num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def window_dataset(ids, batch_size: int, bptt: int):
    """The consecutive windows of ``bptt`` characters from the start of ``ids`` (``stream_windows``
    with one stream), in batches of ``batch_size`` (the last one smaller): validation."""
    ids = _source(ids)
    _, windows = _streams(len(ids), 1, bptt, "validation text")

    def read(ks):
        return ids.windows(np.asarray(ks, np.int64) * bptt, bptt + 1)

    ds = tf.data.Dataset.range(windows).batch(batch_size)
    return ds.map(lambda ks: _pairs(read, [ks], None, bptt), num_parallel_calls=tf.data.AUTOTUNE).prefetch(
        tf.data.AUTOTUNE)


def random_window_dataset(ids, batch_size: int, bptt: int, seed: int):
    """Windows of ``bptt`` characters at random offsets: each epoch every window start ``i * bptt``
    once, in a random order, moved by a random jitter below ``bptt``."""
    ids = _source(ids)
    n = len(ids)
    n_windows = (n - 1) // bptt
    if n_windows < batch_size:
        raise DataError(f"the training text ({n} characters) holds fewer than {batch_size} windows of "
                        f"{bptt} characters; lower train.batch_size or train.bptt")
    last_start = n - bptt - 1

    def read(i, r):
        starts = np.asarray(i, np.int64) * bptt + np.asarray(r, np.int64) % bptt
        return ids.windows(np.minimum(starts, last_start), bptt + 1)

    if n_windows <= EXACT_SHUFFLE_WINDOWS:
        starts = tf.data.Dataset.range(n_windows).shuffle(n_windows, seed=seed, reshuffle_each_iteration=True)
        jitter = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
        ds = tf.data.Dataset.zip(starts, jitter).batch(batch_size, drop_remainder=True)
        ds = ds.map(lambda i, r: _pairs(read, [i, r], batch_size, bptt), num_parallel_calls=tf.data.AUTOTUNE)
        return ds.prefetch(tf.data.AUTOTUNE)

    n_batches = n_windows // batch_size

    def read_permuted(b, key):
        position = int(b) * batch_size + np.arange(batch_size, dtype=np.uint64)
        i = permuted(position, n_windows, int(key))
        return read(i.astype(np.int64), _mix(i ^ np.uint64(int(key) & MASK64), 7).view(np.int64) & 0x7FFFFFFF)

    keys = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).take(1)  # one key an epoch
    ds = keys.flat_map(lambda key: tf.data.Dataset.range(n_batches).map(lambda b: (b, key)))
    ds = ds.map(lambda b, key: _pairs(read_permuted, [b, key], batch_size, bptt),
                num_parallel_calls=tf.data.AUTOTUNE)
    return ds.apply(tf.data.experimental.assert_cardinality(n_batches)).prefetch(tf.data.AUTOTUNE)


# -- a keyed permutation of 0..n-1, computed for any positions without storing it -----------------
MASK64 = (1 << 64) - 1


def _mix(z, salt: int):
    """SplitMix64's finalizer of ``z + salt * golden`` (uint64, wrapping)."""
    with np.errstate(over="ignore"):
        z = np.asarray(z, np.uint64) + np.uint64((salt * 0x9E3779B97F4A7C15) & MASK64)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def permuted(positions, n: int, key: int, rounds: int = 4) -> np.ndarray:
    """Where ``positions`` (< ``n``) go under the permutation of ``0..n-1`` that ``key`` picks: a
    balanced Feistel network on the smallest even number of bits covering ``n``, cycle-walked back
    into ``0..n-1`` (a bijection; under 4 steps on average)."""
    bits = max(2, int(n - 1).bit_length())
    half = (bits + 1) // 2
    mask = np.uint64((1 << half) - 1)
    salts = [int(_mix(np.uint64(key & MASK64), r + 1)) for r in range(rounds)]

    def feistel(v):
        left, right = v >> np.uint64(half), v & mask
        for salt in salts:
            left, right = right, left ^ (_mix(right, salt & 0xFFFF) ^ np.uint64(salt)) & mask
        return (left << np.uint64(half)) | right

    out = feistel(np.asarray(positions, np.uint64))
    outside = out >= np.uint64(n)
    while outside.any():
        out[outside] = feistel(out[outside])
        outside = out >= np.uint64(n)
    return out

"""Truncated backpropagation through time over one long token sequence (a text read as ids).

``stream_windows`` / ``stateful_dataset``: the sequence cut into ``batch_size`` contiguous
streams, batch ``k`` holding window ``k`` of every stream, so a stateful recurrent model
carries each row's state into the next batch; :class:`seqapps.training.callbacks.ResetStates` zeroes that state
when an epoch or a validation pass starts. ``random_window_dataset``: windows at random
offsets, each read from a zero state.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from seqapps.core.errors import DataError


def stream_windows(ids: np.ndarray, batch_size: int, bptt: int, what: str = "text"):
    """(inputs, targets) ``[n_batches, batch_size, bptt]``: row ``r`` of batch ``k`` is window ``k``
    of stream ``r``, so consecutive batches continue each row's text (stateful TBPTT)."""
    per_stream = (len(ids) - 1) // batch_size
    windows = per_stream // bptt
    if windows < 1:
        raise DataError(f"the {what} ({len(ids)} characters) is too short for {batch_size} streams of at least "
                        f"{bptt + 1} characters; lower train.batch_size or train.bptt")
    used = windows * bptt
    x = ids[:batch_size * per_stream].reshape(batch_size, per_stream)[:, :used]
    y = ids[1:batch_size * per_stream + 1].reshape(batch_size, per_stream)[:, :used]
    shape = (batch_size, windows, bptt)
    return x.reshape(shape).transpose(1, 0, 2), y.reshape(shape).transpose(1, 0, 2)


def stateful_dataset(ids, batch_size: int, bptt: int, what: str):
    x, y = stream_windows(ids, batch_size, bptt, what)
    return tf.data.Dataset.from_tensor_slices((x, y)).prefetch(tf.data.AUTOTUNE)


def random_window_dataset(ids, batch_size: int, bptt: int, seed: int):
    """Windows of ``bptt`` characters at random offsets (about one pass over the text per epoch)."""
    n_windows = (len(ids) - 1) // bptt
    if n_windows < batch_size:
        raise DataError(f"the training text ({len(ids)} characters) holds fewer than {batch_size} windows of "
                        f"{bptt} characters; lower train.batch_size or train.bptt")
    text = tf.constant(ids)
    last_start = len(ids) - bptt - 1

    def window(i, r):
        start = tf.minimum(tf.cast(i, tf.int32) * bptt + tf.cast(r % bptt, tf.int32), last_start)
        return text[start:start + bptt], text[start + 1:start + bptt + 1]

    starts = tf.data.Dataset.range(n_windows).shuffle(n_windows, seed=seed, reshuffle_each_iteration=True)
    jitter = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
    ds = tf.data.Dataset.zip(starts, jitter).map(window, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)

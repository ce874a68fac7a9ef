"""Run a signature's work over a call's rows a few at a time, inside the graph.

What some models hold while they answer grows with rows x something large (sentiment's n-gram
vectors ``[rows, words, grams, dim]``, translation's decoding state and scores per hypothesis and
step); a call at the row bound would raise a server's memory by a gigabyte. :func:`in_chunks` cuts
the call into consecutive slices of at most ``rows`` rows, runs them one after the other
(``tf.while_loop`` with ``parallel_iterations=1``, so one slice's tensors are freed before the next
starts) and joins the answers, so a call costs one slice's memory whatever its size and nothing is
refused. Answers are those of one call over all rows: every model here answers each row alone
(batch-independent answers), and axes that grow with the slice's inputs are padded to the longest
slice, then cut to the width one call would have given.
"""

from __future__ import annotations

import tensorflow as tf


def in_chunks(fn, inputs, rows, outputs: dict):
    """``fn(*inputs)`` over slices of at most ``rows`` rows of ``inputs`` (tensors sharing axis 0),
    joined along axis 0.

    ``outputs`` names each output of ``fn``'s dict: ``(dtype, widths)``, with ``widths`` one entry
    per axis after the first: ``None`` for an axis of fixed size, or the largest size an axis that
    grows with the inputs may take (slices are padded to it, with ``0``, ``""`` or ``False``, and the
    joined answer is cut to the largest width a slice had). A call of 0 rows runs ``fn`` once."""
    inputs = [tf.convert_to_tensor(x) for x in inputs]
    outputs = {k: (tf.as_dtype(dtype), tuple(widths)) for k, (dtype, widths) in outputs.items()}
    padded = {k for k, (_, w) in outputs.items() if any(m is not None for m in w)}  # outputs with growing axes
    n = tf.shape(inputs[0])[0]
    rows = tf.maximum(tf.cast(rows, tf.int32), 1)
    count = tf.maximum((n + rows - 1) // rows, 1)
    arrays = {k: tf.TensorArray(dtype, size=count, infer_shape=False, element_shape=[None] * (1 + len(w)))
              for k, (dtype, w) in outputs.items()}
    widths = {k: tf.zeros([len(w)], tf.int32) for k, (_, w) in outputs.items()}
    static = {}  # each output's static shape after the batch axis, as fn gives it (kept for the fixed axes)

    def body(i, arrays, widths):
        out = fn(*[x[i * rows:(i + 1) * rows] for x in inputs])
        arrays, grown = dict(arrays), dict(widths)
        for k, (dtype, most) in outputs.items():
            value = tf.convert_to_tensor(out[k])
            value = value if value.dtype == dtype else tf.cast(value, dtype)
            static[k] = value.shape[1:]
            shape = tf.shape(value)[1:]
            if k in padded:
                grown[k] = tf.maximum(widths[k], shape)
                pads = [[0, 0]] + [[0, 0] if m is None else [0, m - shape[a]] for a, m in enumerate(most)]
                value = tf.pad(value, pads, constant_values=_fill(dtype))
            arrays[k] = arrays[k].write(i, value)
        return i + 1, arrays, grown

    _, arrays, widths = tf.while_loop(lambda i, *_: i < count, body, (tf.constant(0), arrays, widths),
                                      parallel_iterations=1)
    joined = {}
    for k, (_, most) in outputs.items():
        value = arrays[k].concat()
        if k in padded:
            value = value[(slice(None), *[slice(None) if m is None else slice(0, widths[k][a])
                                         for a, m in enumerate(most)])]
        # a fixed axis keeps its static size (a serving signature's output shape says [-1, classes])
        value.set_shape([None, *[static[k][a] if m is None else None for a, m in enumerate(most)]])
        joined[k] = value
    return joined


def _fill(dtype):
    return "" if dtype == tf.string else (False if dtype == tf.bool else tf.constant(0, dtype))

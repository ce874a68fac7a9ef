"""In-graph checks of a signature's inputs, and the one error they raise.

An exported signature never answers an invalid argument with a silently different
answer: a scalar argument out of its documented range (a NaN temperature, a beam width
of 0) or an input of the wrong shape stops the call with ``InvalidArgumentError``
whose message starts with :data:`PREFIX`; per-item problems that should not fail the
rest of the batch (an undecodable image) are answered with a ``valid`` flag instead.
:func:`message` finds the readable line in such an error, so the Python helpers and
the CLI report it as one line.
"""

from __future__ import annotations

import re

import tensorflow as tf

PREFIX = "invalid input: "


def require(value, ok, text):
    """``value``, once ``ok`` (a scalar bool tensor) holds; otherwise the call fails with ``text``: a
    string, or a list of strings and scalar tensors (numbers the graph computes) joined into one line."""
    parts = [text] if isinstance(text, str) else text
    line = tf.strings.join([tf.constant(PREFIX)] + [p if isinstance(p, str) else tf.strings.as_string(p)
                                                    for p in parts])
    check = tf.debugging.Assert(ok, [line])
    with tf.control_dependencies([check]):
        return tf.nest.map_structure(tf.identity, value)


def finite(x):
    return tf.reduce_all(tf.math.is_finite(tf.cast(x, tf.float32)))


def in_range(x, name: str, low=None, high=None, low_open: bool = False, what: str = "a finite number"):
    """Scalar ``x`` checked finite and within ``[low, high]`` (``(low, high]`` when ``low_open``).
    A Python number (a default fixed at export time) is returned as it is."""
    if not tf.is_tensor(x):
        return x
    ok = finite(x) if x.dtype.is_floating else tf.constant(True)
    bounds = []
    if low is not None:
        ok = tf.logical_and(ok, x > low if low_open else x >= low)
        bounds.append(f"{'>' if low_open else '>='} {low}")
    if high is not None:
        ok = tf.logical_and(ok, x <= high)
        bounds.append(f"<= {high}")
    return require(x, ok, f"{name} must be {what}{' ' + ' and '.join(bounds) if bounds else ''}")


def shaped(x, name: str, dims: list):
    """``x`` checked to have ``len(dims)`` axes, each equal to its entry of ``dims`` (``None``: any size)."""
    shape = tf.shape(x)
    ok = tf.equal(tf.size(shape), len(dims))
    fixed = [(i, d) for i, d in enumerate(dims) if d is not None]
    if fixed:
        sizes = tf.gather(tf.pad(shape, [[0, len(dims)]]), [i for i, _ in fixed])
        ok = tf.logical_and(ok, tf.reduce_all(tf.equal(sizes, [d for _, d in fixed])))
    wanted = ", ".join("any" if d is None else str(d) for d in dims)
    return require(x, ok, f"{name} must have shape [{wanted}]")


def message(error) -> str | None:
    """The readable line of an error raised by :func:`require`, or None if it is not one."""
    found = re.search(re.escape(PREFIX) + r"([^\n]*)", str(getattr(error, "message", error)))
    if not found:
        return None
    text = found.group(1).strip()
    while text.endswith("]") and text.count("]") > text.count("["):  # the brackets Assert prints around it
        text = text[:-1]
    return text.strip()


def reason(error) -> str:
    """One readable line for a failed graph call: ``invalid input: ...`` from :func:`require`, else the
    op's own message (TensorFlow's first line, "Graph execution error:", says nothing; the message sits
    below the trace of where the op was defined, before the ``[[node ...]]`` line)."""
    found = message(error)
    if found is not None:
        return PREFIX + found
    lines = [line.strip() for line in str(getattr(error, "message", error)).splitlines()]
    kept = [line for line in lines if line and not line.startswith(("[[", "Graph execution error", "Detected at node",
                                                                    "File ", "{{node"))]
    return (kept[-1] if kept else type(error).__name__)[:500]


# -- the bounds of seqapps.core.bounds, checked on every signature's inputs ---------------------------
def _bytes_of_rows(x):
    """A string input's UTF-8 bytes per row (``[batch]`` or ``[batch, time]``)."""
    lengths = tf.strings.length(x)
    return tf.cast(lengths if x.shape.rank == 1 else tf.reduce_sum(lengths, axis=1), tf.int64)


def bounded_text(x, name: str, words: bool):
    """Text input ``x`` checked against the text bounds; with ``words``, each word is cut to its first
    ``WORD_CHARS`` characters (a run of non-space characters; a token of ``[batch, time]`` tokens)."""
    from seqapps.core import bounds as b

    rows, per_row = tf.shape(x, out_type=tf.int64)[0], _bytes_of_rows(x)
    longest, total = tf.reduce_max(tf.concat([per_row, [0]], 0)), tf.reduce_sum(per_row)
    x = require(x, rows <= b.ROWS, f"{name} has more than {b.ROWS} rows; send at most {b.ROWS} in one call")
    x = require(x, longest <= b.TEXT_BYTES, f"a {name} item is over {b.TEXT_BYTES} bytes (UTF-8); "
                                            "split it, or send less")
    x = require(x, total <= b.CALL_TEXT_BYTES, f"the {name} items together are over {b.CALL_TEXT_BYTES} bytes; "
                                               "send them in several calls")
    x = require(x, rows * longest <= b.PADDED_TEXT_BYTES,
                f"rows x the longest {name} item is over {b.PADDED_TEXT_BYTES} bytes; "
                "send long texts in calls of their own")
    if words:
        if x.shape.rank == 1:
            x = tf.strings.regex_replace(x, r"(\S{%d})\S+" % b.WORD_CHARS, r"\1")
        else:
            x = tf.strings.substr(x, 0, b.WORD_CHARS, unit="UTF8_CHAR")
    return x


def bounded_images(x, name: str):
    """Encoded images ``x`` checked against the call's image bounds (each image's decoded size is
    checked where it is decoded, :mod:`seqapps.encoders.images`)."""
    from seqapps.core import bounds as b

    shape = tf.shape(x, out_type=tf.int64)
    total = tf.reduce_sum(tf.cast(tf.strings.length(x), tf.int64))
    x = require(x, shape[0] <= b.IMAGE_ROWS, f"{name} has more than {b.IMAGE_ROWS} rows; "
                                             f"send at most {b.IMAGE_ROWS} in one call")
    return require(x, total <= b.IMAGE_CALL_BYTES, f"the {name} items together are over {b.IMAGE_CALL_BYTES} bytes; "
                                                   "send them in several calls")


def bounded_rows(x, name: str):
    from seqapps.core import bounds as b

    return require(x, tf.shape(x, out_type=tf.int64)[0] <= b.ROWS,
                   f"{name} has more than {b.ROWS} rows; send at most {b.ROWS} in one call")


def bounded_endpoints(endpoints: dict, task: str) -> dict:
    """``endpoints`` (name -> :class:`seqapps.core.task.Endpoint`) with each input checked against
    :mod:`seqapps.core.bounds` before the endpoint's own work: encoded images (``image``, ``frames``,
    ``video``), text (every other string input) and the rows of anything batched."""
    import dataclasses

    from seqapps.core import bounds as b

    def check(spec, x):
        if spec.dtype == tf.string and spec.name in b.IMAGE_INPUTS:
            return bounded_images(x, spec.name)
        if spec.dtype == tf.string:
            return bounded_text(x, spec.name, task in b.WORD_TASKS)
        return bounded_rows(x, spec.name) if spec.shape.rank else x

    def wrap(endpoint):
        specs, fn = endpoint.input_signature, endpoint.fn

        def bounded(*args):
            return fn(*[check(spec, x) for spec, x in zip(specs, args)])
        return dataclasses.replace(endpoint, fn=bounded)

    return {name: wrap(e) for name, e in endpoints.items()}

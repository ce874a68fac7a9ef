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
MAX_BEAM = 64  # widest beam a signature accepts (each step keeps batch x width hypotheses)


def require(value, ok, text: str):
    """``value``, once ``ok`` (a scalar bool tensor) holds; otherwise the call fails with ``text``."""
    check = tf.debugging.Assert(ok, [tf.constant(PREFIX + text)])
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

"""The reasons a failed graph call gives: what the server answers and the predictor raises."""

from __future__ import annotations

import pytest
import tensorflow as tf

from seqapps.inference import checks


def failing(fn, *args):
    """The error of a graph call of ``fn`` on ``args`` (shapes unknown when traced, as a signature's)."""
    signature = [tf.TensorSpec([None] * a.shape.rank, a.dtype) for a in args]
    with pytest.raises(tf.errors.InvalidArgumentError) as info:
        tf.function(fn, input_signature=signature)(*args)
    return info.value


def test_a_checked_argument_gives_its_own_line():
    error = failing(lambda width: checks.in_range(width, "beam_width", low=1) + 1, tf.constant(0))
    assert not str(error.message).startswith("invalid input")  # the reason sits inside TensorFlow's message
    assert checks.reason(error) == "invalid input: beam_width must be a finite number >= 1"


def test_another_ops_error_gives_the_ops_message_not_the_trace():
    error = failing(lambda x, i: tf.gather(x, i), tf.zeros([4]), tf.constant([10]))
    text = checks.reason(error)
    assert "indices[0] = 10 is not in [0, 4)" in text and "[[" not in text and "Graph execution" not in text, text

"""A call answered in slices (seqapps.inference.chunks) answers as one call over all its rows."""

import numpy as np
import pytest
import tensorflow as tf

from seqapps.inference.chunks import in_chunks

OUTPUTS = {"words": (tf.string, (8,)), "n": (tf.int32, ()), "vec": (tf.float32, (None,))}


def answer(text):
    """Per-row answers whose second axis grows with the longest text of the call."""
    words = tf.strings.split(text).to_tensor("")
    n = tf.reduce_sum(tf.cast(words != "", tf.int32), axis=1)
    vec = tf.stack([tf.cast(n, tf.float32), tf.cast(tf.strings.length(text), tf.float32)], axis=1)
    return {"words": words, "n": n, "vec": vec}


TEXTS = ["a b c", "", "d", "e f g h i j", "k l", "m"]


@pytest.mark.parametrize("rows", [1, 2, 4, 6, 100, 0])
def test_slices_answer_as_one_call(rows):
    whole = answer(tf.constant(TEXTS))
    sliced = tf.function(lambda t: in_chunks(answer, [t], rows, OUTPUTS))(tf.constant(TEXTS))
    for k in OUTPUTS:
        np.testing.assert_array_equal(sliced[k].numpy(), whole[k].numpy())


def test_width_is_the_longest_slice_not_the_padding():
    out = in_chunks(answer, [tf.constant(["a", "b c", "d"])], 1, OUTPUTS)
    assert out["words"].shape == (3, 2)
    assert out["words"].numpy()[0].tolist() == [b"a", b""]


def test_no_rows_runs_once():
    out = in_chunks(answer, [tf.constant([], tf.string)], 2, OUTPUTS)
    assert out["words"].shape[0] == 0 and out["vec"].shape == (0, 2)


def test_the_body_is_built_once():
    calls = []

    def fn(x):
        calls.append(1)  # traced once: the loop's body
        return {"y": x * 2}

    out = tf.function(lambda x: in_chunks(fn, [x], 3, {"y": (tf.int32, ())}))(tf.range(10))
    assert out.get("y").numpy().tolist() == [2 * i for i in range(10)] and len(calls) == 1


def test_fixed_axes_keep_their_static_size():
    """A serving signature's outputs say their sizes ([-1, 2]): the server batches on them."""
    fn = tf.function(lambda t: in_chunks(answer, [t], 2, OUTPUTS))
    out = fn.get_concrete_function(tf.TensorSpec([None], tf.string)).structured_outputs
    assert out["vec"].shape.as_list() == [None, 2] and out["n"].shape.as_list() == [None]
    assert out["words"].shape.as_list() == [None, None]

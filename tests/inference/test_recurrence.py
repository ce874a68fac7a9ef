"""Masked recurrent layers traced for ONNX (:mod:`seqapps.inference.recurrence`): unmasked inside
``by_lengths()``, with Keras' masked answers, and converted to ONNX's fused operators."""

from __future__ import annotations

import collections
import itertools

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # traces 48 small models and converts one to ONNX


def _ids():
    rng = np.random.default_rng(0)
    ids = rng.integers(1, 50, (6, 9))
    for row, length in enumerate([9, 4, 1, 0, 6, 8]):  # full, short, one step, empty
        ids[row, length:] = 0
    return ids


def _model(kind, bidirectional, sequences, state, zero_output):
    import keras

    inputs = keras.Input((None,), dtype="int64")
    x = keras.layers.Embedding(50, 6, mask_zero=True)(inputs)
    layer = getattr(keras.layers, kind)(7, return_sequences=sequences, return_state=state,
                                        zero_output_for_mask=zero_output)
    if bidirectional:
        layer = keras.layers.Bidirectional(layer)
    y = layer(x)
    if state:  # the output and every state, side by side
        y = keras.layers.Concatenate()([y[0] if not sequences else y[0][:, -1], *y[1:]])
    return keras.Model(inputs, y)


def test_unmasked_layers_answer_as_the_masked_ones():
    import tensorflow as tf

    from seqapps.inference.recurrence import by_lengths

    import keras

    original = keras.layers.RNN.call
    ids = _ids()
    checked = 0
    for kind, bidirectional, sequences, state, zero_output in itertools.product(
            ("LSTM", "GRU", "SimpleRNN"), (False, True), (True, False), (False, True), (False, True)):
        model = _model(kind, bidirectional, sequences, state, zero_output)
        expected = np.asarray(model(ids))
        traced = tf.function(lambda t, m=model: m(t), input_signature=[tf.TensorSpec([None, None], tf.int64)])
        with by_lengths():
            got = traced(tf.constant(ids)).numpy()
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, atol=1e-5,
                                   err_msg=f"{kind} bidirectional={bidirectional} sequences={sequences} "
                                           f"state={state} zero_output_for_mask={zero_output}")
        checked += 1
    assert checked == 48
    # outside the context the layers are Keras' own again, and a row's padding changes an unmasked answer
    import keras

    assert keras.layers.RNN.call is original
    model = _model("GRU", False, False, False, False)
    padded_read = np.asarray(model.layers[-1](np.asarray(model.layers[1](ids))))  # a plain array: no mask
    assert not np.allclose(padded_read[1], np.asarray(model(ids))[1], atol=1e-4)

def test_a_masked_bidirectional_lstm_converts_to_fused_operators(tmp_path):
    import onnx
    import onnxruntime as ort
    import tensorflow as tf
    import tf2onnx

    from seqapps.inference.recurrence import by_lengths

    ids = _ids()
    model = _model("LSTM", True, True, False, False)
    spec = [tf.TensorSpec([None, None], tf.int64)]
    with by_lengths():
        tf2onnx.convert.from_function(tf.function(lambda t: model(t), input_signature=spec), input_signature=spec,
                                      output_path=str(tmp_path / "m.onnx"))
    ops = collections.Counter(node.op_type for node in onnx.load(str(tmp_path / "m.onnx")).graph.node)
    assert ops["LSTM"] == 2 and ops["Loop"] == 0, ops
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {session.get_inputs()[0].name: ids})
    np.testing.assert_allclose(got, np.asarray(model(ids)), atol=1e-5)

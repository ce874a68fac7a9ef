"""The shared layers: the recurrent factory and stack, masked pooling, subword vectors."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from seqapps.core import registry
from seqapps.core.errors import ConfigError
from seqapps.layers import MaskedPooling, recurrent_layer, recurrent_stack


def test_recurrent_factory_keeps_cudnn_eligible_defaults():
    cfg = registry.get("sentiment").default_config().model
    for cell, cls in [("lstm", keras.layers.LSTM), ("gru", keras.layers.GRU), ("rnn", keras.layers.SimpleRNN)]:
        cfg.cell, cfg.bidirectional = cell, True
        layer = recurrent_layer(cfg, return_sequences=True)
        assert isinstance(layer, keras.layers.Bidirectional) and isinstance(layer.forward_layer, cls)
        inner = layer.forward_layer
        assert inner.cell.recurrent_dropout == 0 and not inner.unroll and inner.cell.use_bias
        if cell in ("lstm", "gru"):
            assert inner.cell.activation is keras.activations.tanh
            assert inner.cell.recurrent_activation is keras.activations.sigmoid
        if cell == "gru":
            assert inner.cell.reset_after
    cfg.cell = "transformer"
    with pytest.raises(ConfigError, match="model.cell must be one of rnn, lstm, gru"):
        recurrent_layer(cfg)


def test_recurrent_stack_masks_padding():
    cfg = registry.get("sentiment").default_config().model
    cfg.units, cfg.layers, cfg.bidirectional = 8, 2, True
    inputs = keras.Input((None,), dtype="int32")
    x = keras.layers.Embedding(10, 4, mask_zero=True)(inputs)
    model = keras.Model(inputs, recurrent_stack(x, cfg))
    short = model(np.array([[3, 4, 5]])).numpy()
    padded = model(np.array([[3, 4, 5, 0, 0, 0]])).numpy()
    np.testing.assert_allclose(short, padded, atol=1e-6)


def test_masked_pooling_ignores_padding_and_serializes():
    x = np.array([[[1.0, -2.0], [5.0, 7.0], [100.0, 100.0]]], dtype="float32")
    mask = np.array([[True, True, False]])
    layer = MaskedPooling("max_mean")
    out = layer(x, mask=mask).numpy()
    np.testing.assert_allclose(out, [[5.0, 7.0, 3.0, 2.5]])
    np.testing.assert_allclose(layer(x, mask=np.zeros((1, 3), bool)).numpy(), [[0, 0, 0, 0]])
    again = MaskedPooling.from_config(layer.get_config())
    assert again.mode == "max_mean"


def test_subword_vectors_give_unseen_words_a_vector_and_padding_zeros():
    from seqapps.layers.subwords import SubwordEmbedding, dense_char_ngram_ids

    ids = dense_char_ngram_ids(tf.constant([["unwatchable", "", "a"], ["unwatchably", "film", ""]]), 500)
    assert ids.dtype == tf.int64 and ids.shape[:2] == (2, 3)
    assert np.all(ids[0, 1] == 0) and np.all(ids[1, 2] == 0) and np.all(ids[0, 2, :1] > 0)
    assert int(tf.reduce_max(ids)) <= 500  # ids are 1..buckets; 0 is padding
    layer = SubwordEmbedding(6, buckets=500)
    out = keras.ops.convert_to_numpy(layer(ids))
    assert out.shape == (2, 3, 6)
    assert np.all(out[0, 1] == 0) and np.all(out[1, 2] == 0) and np.any(out[0, 2] != 0)
    # words sharing most n-grams get close vectors; an unrelated word does not
    near, far = np.linalg.norm(out[0, 0] - out[1, 0]), np.linalg.norm(out[0, 0] - out[1, 1])
    assert near < far
    # the padding of the n-gram axis does not change a word's vector
    wider = tf.pad(ids, [[0, 0], [0, 0], [0, 7]])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(wider)), out, atol=1e-6)
    again = SubwordEmbedding.from_config(layer.get_config())
    assert (again.dim, again.buckets, again.output_dim) == (6, 500, 0)
    # a narrow table projected to the model's width: same padding rules, one more weight
    narrow = SubwordEmbedding(3, buckets=500, output_dim=6)
    projected = keras.ops.convert_to_numpy(narrow(ids))
    assert projected.shape == (2, 3, 6) and np.all(projected[0, 1] == 0) and np.any(projected[0, 2] != 0)
    assert [tuple(w.shape) for w in narrow.weights] == [(501, 3), (3, 6)]
    assert SubwordEmbedding.from_config(narrow.get_config()).output_dim == 6
    empty = dense_char_ngram_ids(tf.zeros([0, 4], tf.string), 500)
    assert empty.shape[0] == 0 and empty.shape[1] == 4

"""Models that step: ``initial_state`` + ``step`` reproduce the teacher-forced training pass."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from seqapps.inference import decoding
from tasks.char_lm.model import CharLanguageModel
from tasks.captioning.model import ImageCaptioner
from tasks.translation.model import Seq2Seq
from tasks.translation.transformer import TransformerSeq2Seq


def stepped_logits(model, state, tokens):
    """Logits ``[batch, time, vocab]`` from feeding ``tokens`` through ``model.step`` one at a time."""
    out = []
    for t in range(tokens.shape[1]):
        logits, state, _ = model.step(tf.constant(tokens[:, t]), state)
        out.append(np.asarray(logits))
    return np.stack(out, axis=1)


def round_trip(model, tmp_path):
    import keras

    model.save(tmp_path / "m.keras")
    return keras.saving.load_model(tmp_path / "m.keras")


@pytest.mark.parametrize("cell,attention,bidirectional,layers", [
    ("gru", "additive", True, 2), ("lstm", "multiplicative", False, 1), ("rnn", "none", True, 1)])
def test_seq2seq_steps_reproduce_teacher_forcing(cell, attention, bidirectional, layers, tmp_path):
    model = Seq2Seq(30, 20, cell=cell, units=8, layers=layers, bidirectional=bidirectional, embedding_dim=6,
                    attention=attention, attention_units=5, dropout=0.1)
    source = np.array([[3, 4, 5, 0, 0], [6, 7, 8, 9, 10], [11, 0, 0, 0, 0]])
    target = np.array([[2, 5, 6, 7], [2, 8, 0, 0], [2, 9, 9, 0]])
    out = model({"source": source, "target_in": target})
    assert getattr(out, "_keras_mask", None) is None  # padding is weighted by the sample weights alone
    full = np.asarray(out)
    assert full.shape == (3, 4, 20)
    stepped = stepped_logits(model, model.initial_state(source), target)
    real = target != 0
    np.testing.assert_allclose(stepped[real], full[real], atol=1e-5)
    # padding in the source changes nothing: the third row alone gives the same logits
    alone = np.asarray(model({"source": source[2:, :1], "target_in": target[2:]}))
    np.testing.assert_allclose(alone[0], full[2], atol=1e-5)
    _, _, extras = model.step(tf.constant([2, 2, 2]), model.initial_state(source))
    if attention == "none":
        assert extras == {}
    else:
        weights = np.asarray(extras["attention"])
        np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-5)
        assert (weights[0, 3:] == 0).all() and (weights[2, 1:] == 0).all()  # padded steps get no weight
    reloaded = round_trip(model, tmp_path)
    np.testing.assert_allclose(np.asarray(reloaded({"source": source, "target_in": target})), full, atol=1e-6)


def test_transformer_seq2seq_cached_steps_reproduce_teacher_forcing(tmp_path):
    model = TransformerSeq2Seq(30, 20, units=8, layers=2, heads=2, ff_units=12, dropout=0.1, max_target_length=6)
    source = np.array([[3, 4, 5, 0, 0], [6, 7, 8, 9, 10], [11, 0, 0, 0, 0]])
    target = np.array([[2, 5, 6, 7], [2, 8, 0, 0], [2, 9, 9, 0]])
    full = np.asarray(model({"source": source, "target_in": target}))
    assert full.shape == (3, 4, 20)
    stepped = stepped_logits(model, model.initial_state(source), target)
    real = target != 0
    np.testing.assert_allclose(stepped[real], full[real], atol=1e-5)
    alone = np.asarray(model({"source": source[2:, :1], "target_in": target[2:]}))  # source padding changes nothing
    np.testing.assert_allclose(alone[0], full[2], atol=1e-5)
    _, state, extras = model.step(tf.constant([2, 2, 2]), model.initial_state(source))
    weights = np.asarray(extras["attention"])
    np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-5)
    assert (weights[0, 3:] == 0).all() and (weights[2, 1:] == 0).all()  # padded steps get no weight
    assert list(np.asarray(state["position"])) == [1, 1, 1] and state["cache_0"]["key"].shape == (3, 6, 8)
    reloaded = round_trip(model, tmp_path)
    np.testing.assert_allclose(np.asarray(reloaded({"source": source, "target_in": target})), full, atol=1e-6)


@pytest.mark.parametrize("cell,layers", [("lstm", 2), ("gru", 1), ("rnn", 1)])
def test_char_lm_steps_reproduce_the_fused_layers(cell, layers, tmp_path):
    model = CharLanguageModel(12, cell=cell, units=8, layers=layers, embedding_dim=4)
    ids = np.random.default_rng(0).integers(1, 12, (3, 7))
    full = np.asarray(model(ids))
    state = model.initial_state(3)
    assert set(state) == ({"h", "c"} if cell == "lstm" else {"h"}) and state["h"].shape == (3, layers, 8)
    np.testing.assert_allclose(stepped_logits(model, state, ids), full, atol=1e-5)
    # decoding.read records the same logits and the state after every character
    read = decoding.read(model.step, model.initial_state(3), ids, record=True)
    np.testing.assert_allclose(read["all_logits"].numpy(), full, atol=1e-5)
    assert read["all_states"]["h"].shape == (3, 7, layers, 8)
    # the stateful variant (training with carried state) has the same weights and maths
    stateful = CharLanguageModel(12, cell=cell, units=8, layers=layers, embedding_dim=4, batch_size=3)
    stateful.set_weights(model.get_weights())
    np.testing.assert_allclose(np.asarray(stateful(ids)), full, atol=1e-5)
    carried = np.asarray(stateful(ids))  # the second window starts from the first one's state
    assert np.abs(carried - full).max() > 1e-4
    stateful.reset_states()
    np.testing.assert_allclose(np.asarray(stateful(ids)), full, atol=1e-5)
    reloaded = round_trip(stateful, tmp_path)
    assert all(layer.stateful for layer in reloaded.rnns)
    reloaded.reset_states()
    np.testing.assert_allclose(np.asarray(reloaded(ids)), full, atol=1e-5)


@pytest.mark.parametrize("attention", ["additive", "none"])
def test_captioner_steps_reproduce_teacher_forcing(attention, tmp_path):
    model = ImageCaptioner(20, encoder="small_cnn", image_size=32, units=16, embedding_dim=8, feature_units=12,
                           attention=attention, attention_units=8, cell="lstm", dropout=0.3)
    pixels = tf.random.stateless_uniform([2, 32, 32, 3], seed=(1, 2), maxval=255.0)
    tokens = np.array([[2, 5, 6, 7, 3], [2, 9, 3, 0, 0]])
    full = np.asarray(model({"image": pixels, "tokens": tokens}))
    features = model.image_features(pixels)
    np.testing.assert_allclose(np.asarray(model({"features": features, "tokens": tokens})), full, atol=1e-5)
    stepped = stepped_logits(model, model.initial_state(features), tokens)
    np.testing.assert_allclose(stepped, full, atol=1e-5)
    reloaded = round_trip(model, tmp_path)
    np.testing.assert_allclose(np.asarray(reloaded({"features": features, "tokens": tokens})), full, atol=1e-5)

"""Attention layers: shapes, masking, serialization."""

import keras
import numpy as np
import pytest

from seqapps.core.errors import ConfigError
from seqapps.layers.attention import AdditiveAttention, MultiplicativeAttention, make_attention

RNG = np.random.default_rng(0)


def inputs(batch=3, time=5, units=6, dim=4):
    q = RNG.normal(size=(batch, units)).astype("float32")
    v = RNG.normal(size=(batch, time, dim)).astype("float32")
    mask = np.ones((batch, time), bool)
    mask[1, 3:] = False     # two padded steps
    mask[2, :] = False      # nothing real at all
    return q, v, mask


@pytest.mark.parametrize("kind", ["additive", "multiplicative"])
def test_shapes_and_masking(kind):
    layer = make_attention(kind, 8)
    q, v, mask = inputs()
    context, weights = layer(q, v, mask=mask)
    assert context.shape == (3, 4) and weights.shape == (3, 5)
    w = keras.ops.convert_to_numpy(weights)
    np.testing.assert_allclose(w[:2].sum(-1), 1.0, rtol=1e-5)
    assert (w[1, 3:] == 0).all() and (w[2] == 0).all()
    np.testing.assert_allclose(keras.ops.convert_to_numpy(context)[2], 0.0)
    # what sits in padded steps changes nothing
    v2 = v.copy()
    v2[1, 3:] = 100.0
    c2, w2 = layer(q, v2, mask=mask)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(c2)[1], keras.ops.convert_to_numpy(context)[1], rtol=1e-5)
    # a 3-D query attends at every step at once, each step as the 2-D call would
    q3 = np.stack([q, q * 0.5], axis=1)
    c3, w3 = layer(q3, v, mask=mask)
    assert c3.shape == (3, 2, 4) and w3.shape == (3, 2, 5)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(c3)[:, 0], keras.ops.convert_to_numpy(context),
                               rtol=1e-5, atol=1e-6)
    # no mask: every step counts
    _, w_all = layer(q, v)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(w_all).sum(-1), 1.0, rtol=1e-5)


def test_additive_precomputed_keys_match():
    layer = AdditiveAttention(8)
    q, v, mask = inputs()
    c1, w1 = layer(q, v, mask=mask)
    c2, w2 = layer(q, v, mask=mask, keys=layer.project_values(v))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(w1), keras.ops.convert_to_numpy(w2), rtol=1e-5)


@pytest.mark.parametrize("cls", [AdditiveAttention, MultiplicativeAttention])
def test_serializable_in_a_saved_model(cls, tmp_path):
    q_in = keras.Input((6,), name="q")
    v_in = keras.Input((None, 4), name="v")
    m_in = keras.Input((None,), dtype="bool", name="m")
    context, weights = cls(8, name="att")(q_in, v_in, mask=m_in)
    model = keras.Model([q_in, v_in, m_in], [context, weights])
    q, v, mask = inputs()
    before = model.predict([q, v, mask], verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    after = loaded.predict([q, v, mask], verbose=0)
    for a, b in zip(before, after):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    assert type(loaded.get_layer("att")) is cls


def test_factory():
    assert make_attention("none", 8) is None
    assert isinstance(make_attention("additive", 8), AdditiveAttention)
    with pytest.raises(ConfigError, match="model.attention"):
        make_attention("dot-product", 8)

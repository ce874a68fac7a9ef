"""Self-attention layers: masks against a NumPy computation, cached decoding against the full prefix."""

import keras
import numpy as np
import pytest

from seqapps.core.errors import ConfigError
from seqapps.layers.transformer import MultiHeadAttention, SinusoidalPositions, TransformerBlock, check_heads


def numpy_attention(layer, query, context, allowed):
    """The textbook computation, head by head, from the layer's own weights."""
    def dense(d, x):
        kernel, bias = (w.numpy() for w in d.weights)
        return x @ kernel + bias

    q, k, v = dense(layer.query, query), dense(layer.key, context), dense(layer.value, context)
    b, tq, _ = q.shape
    dh = layer.head_dim
    out = np.zeros((b, tq, layer.width), dtype=np.float64)
    for h in range(layer.heads):
        sl = slice(h * dh, (h + 1) * dh)
        scores = q[:, :, sl] @ k[:, :, sl].transpose(0, 2, 1) / np.sqrt(dh)
        scores = np.where(allowed, scores, -np.inf)
        with np.errstate(invalid="ignore"):
            w = np.exp(scores - scores.max(-1, keepdims=True))
            w = np.nan_to_num(w / w.sum(-1, keepdims=True))
        out[:, :, sl] = w @ v[:, :, sl]
    return dense(layer.output_dense, out)


@pytest.mark.parametrize("causal", [False, True])
def test_attention_matches_numpy_with_padding_and_causal_masks(causal):
    rng = np.random.default_rng(0)
    layer = MultiHeadAttention(heads=2, width=6)
    x = rng.normal(size=(3, 5, 4)).astype("float32")
    mask = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]], dtype=bool)
    got = keras.ops.convert_to_numpy(layer(x, key_mask=mask, causal=causal))
    allowed = np.broadcast_to(mask[:, None, :], (3, 5, 5))
    if causal:
        allowed = allowed & np.tril(np.ones((5, 5), dtype=bool))
    np.testing.assert_allclose(got, numpy_attention(layer, x, x, allowed), rtol=1e-4, atol=1e-5)


def test_padding_is_never_attended_to_and_the_future_never_seen():
    rng = np.random.default_rng(1)
    block = TransformerBlock(width=8, heads=2, ff_units=16, causal=True)
    x = rng.normal(size=(2, 6, 8)).astype("float32")
    mask = np.array([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]], dtype=bool)
    base = keras.ops.convert_to_numpy(block(x, x_mask=mask))
    changed = x.copy()
    changed[0, 4:] = 100.0  # padding of row 0
    changed[1, 3:] = -50.0  # the future of row 1's first three positions
    after = keras.ops.convert_to_numpy(block(changed, x_mask=mask))
    np.testing.assert_allclose(after[0, :4], base[0, :4], atol=1e-5)
    np.testing.assert_allclose(after[1, :3], base[1, :3], atol=1e-5)
    assert not np.allclose(after[1, 3:], base[1, 3:], atol=1e-3)  # the change is seen where it may be


def test_without_the_causal_mask_the_future_is_seen():
    rng = np.random.default_rng(2)
    block = TransformerBlock(width=8, heads=2, ff_units=16, causal=False)
    x = rng.normal(size=(1, 4, 8)).astype("float32")
    changed = x.copy()
    changed[0, 3] = rng.normal(size=8) * 3  # (a constant shift would vanish in the LayerNorm)
    assert not np.allclose(keras.ops.convert_to_numpy(block(x))[0, 0],
                           keras.ops.convert_to_numpy(block(changed))[0, 0], atol=1e-4)


@pytest.mark.parametrize("cross", [False, True])
def test_cached_steps_give_the_full_prefix_outputs(cross):
    """A causal stack run one position at a time with its key/value caches gives the same outputs
    as the whole sequence at once; rows start at different positions (a ragged prime)."""
    rng = np.random.default_rng(3)
    blocks = [TransformerBlock(width=8, heads=4, ff_units=12, causal=True, cross=cross) for _ in range(2)]
    positions = SinusoidalPositions()
    x = rng.normal(size=(2, 7, 8)).astype("float32")
    context = rng.normal(size=(2, 3, 8)).astype("float32")
    context_mask = np.array([[1, 1, 1], [1, 1, 0]], dtype=bool)

    h = positions(x)
    for block in blocks:
        h = block(h, context=context if cross else None, context_mask=context_mask if cross else None)
    full = keras.ops.convert_to_numpy(h)

    caches = [b.empty_cache(2, 7) for b in blocks]
    keys = [b.context_keys(context) if cross else None for b in blocks]
    for t in range(7):
        pos = np.array([t, t], dtype="int32")
        h = positions(x[:, t:t + 1], positions=pos[:, None])
        for i, block in enumerate(blocks):
            h, caches[i], _ = block.step(h, caches[i], pos, keys[i], context_mask if cross else None)
        np.testing.assert_allclose(keras.ops.convert_to_numpy(h)[:, 0], full[:, t], rtol=1e-4, atol=1e-4)


def test_blocks_serialize_and_reload(tmp_path):
    inputs = keras.Input((None, 8))
    x = TransformerBlock(width=8, heads=2, ff_units=16, causal=True, name="block")(SinusoidalPositions()(inputs))
    model = keras.Model(inputs, x)
    data = np.random.default_rng(4).normal(size=(2, 5, 8)).astype("float32")
    model.save(tmp_path / "m.keras")
    again = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(again.predict(data, verbose=0), model.predict(data, verbose=0), atol=1e-6)
    assert again.get_layer("block").causal is True


def test_heads_must_divide_the_width():
    with pytest.raises(ConfigError, match=r"model.heads \(3\) must divide model.units \(8\)"):
        check_heads(8, 3)
    with pytest.raises(ConfigError, match="model.heads must be >= 1"):
        check_heads(8, 0)


def test_alibi_scores_fall_with_distance_as_numpy_says():
    rng = np.random.default_rng(5)
    layer = MultiHeadAttention(heads=2, width=4, alibi=True)
    x = rng.normal(size=(1, 4, 4)).astype("float32")
    _, weights = layer(x, causal=True, return_weights=True)
    q = x @ layer.query.weights[0].numpy() + layer.query.weights[1].numpy()
    k = x @ layer.key.weights[0].numpy() + layer.key.weights[1].numpy()
    for h, slope in enumerate(2.0 ** (-8.0 * np.arange(1, 3) / 2)):
        scores = q[0, :, 2 * h:2 * h + 2] @ k[0, :, 2 * h:2 * h + 2].T / np.sqrt(2)
        scores -= slope * (np.arange(4)[:, None] - np.arange(4)[None, :])
        scores = np.where(np.tril(np.ones((4, 4), bool)), scores, -np.inf)
        expected = np.exp(scores - scores.max(-1, keepdims=True))
        np.testing.assert_allclose(np.asarray(weights)[0, h], expected / expected.sum(-1, keepdims=True),
                                   rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("layers", [1, 2])
def test_a_ring_cache_slides_a_window_of_relative_positions(layers):
    """With ALiBi and a cache of W slots, each position's output is the prefix's while it fits; past
    that, one block gives exactly the last W inputs read alone (a sliding window). Deeper stacks see
    further back through the earlier blocks' cached outputs, as sliding-window attention does."""
    rng = np.random.default_rng(6)
    blocks = [TransformerBlock(width=8, heads=2, ff_units=8, causal=True, alibi=True) for _ in range(layers)]
    x = rng.normal(size=(1, 9, 8)).astype("float32")
    W = 4

    def last_output(window):
        h = window
        for block in blocks:
            h = block(h)
        return keras.ops.convert_to_numpy(h)[:, -1]

    caches = [b.empty_cache(1, W) for b in blocks]
    for t in range(9):
        h, pos = x[:, t:t + 1], np.array([t], dtype="int32")
        for i, block in enumerate(blocks):
            h, caches[i], _ = block.step(h, caches[i], pos)
        if t < W or layers == 1:
            np.testing.assert_allclose(keras.ops.convert_to_numpy(h)[:, 0],
                                       last_output(x[:, max(0, t - W + 1):t + 1]), rtol=1e-4, atol=1e-4)
    assert sorted(np.asarray(caches[0]["positions"])[0].tolist()) == [5, 6, 7, 8]

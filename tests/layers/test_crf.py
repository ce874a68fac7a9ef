"""The CRF layer against brute-force enumeration of every tag path on tiny cases."""

from __future__ import annotations

import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf

from seqapps.layers.crf import CRF, CRFLoss, crf_log_likelihood, crf_log_partition, viterbi_decode


def _path_score(emissions, transitions, start, end, path):
    score = start[path[0]] + emissions[0, path[0]] + end[path[-1]]
    for t in range(1, len(path)):
        score += transitions[path[t - 1], path[t]] + emissions[t, path[t]]
    return score


def _brute_force(emissions, transitions, start, end, length):
    """(log Z, best path, best score, {path: score}) over every path of ``length`` steps."""
    k = emissions.shape[-1]
    scores = {p: _path_score(emissions[:length], transitions, start, end, p)
              for p in itertools.product(range(k), repeat=length)}
    values = np.array(list(scores.values()), dtype=np.float64)
    log_z = values.max() + np.log(np.exp(values - values.max()).sum())
    best = max(scores, key=scores.get)
    return log_z, list(best), scores[best], scores


def _random_crf(k, seed):
    layer = CRF(k)
    layer.build((None, None, k))
    rng = np.random.default_rng(seed)
    layer.transitions.assign(rng.normal(size=(k, k)).astype("float32"))
    layer.start.assign(rng.normal(size=k).astype("float32"))
    layer.end.assign(rng.normal(size=k).astype("float32"))
    return layer


@pytest.mark.parametrize("k,lengths,seed", [(3, [1, 2, 3, 4], 0), (2, [4, 1, 3], 1), (4, [3, 3, 1], 2),
                                            (1, [2, 1], 3)])
def test_matches_brute_force_on_padded_batches(k, lengths, seed):
    layer = _random_crf(k, seed)
    rng = np.random.default_rng(seed + 10)
    width = max(lengths) + 1  # always at least one padded step
    emissions = rng.normal(size=(len(lengths), width, k)).astype("float32")
    mask = np.arange(width)[None] < np.array(lengths)[:, None]
    # garbage in the padded steps must not matter
    emissions[~mask] = 1e3
    potentials = layer(emissions, mask=mask)
    log_z = crf_log_partition(potentials, mask).numpy()
    paths, best_scores = (x.numpy() for x in viterbi_decode(potentials, mask))
    tr, st, en = layer.transitions.numpy(), layer.start.numpy(), layer.end.numpy()
    for b, n in enumerate(lengths):
        bf_log_z, bf_best, bf_score, scores = _brute_force(emissions[b].astype(np.float64), tr, st, en, n)
        assert log_z[b] == pytest.approx(bf_log_z, abs=1e-4)
        assert paths[b, :n].tolist() == bf_best
        assert (paths[b, n:] == -1).all()
        assert best_scores[b] == pytest.approx(bf_score, abs=1e-4)
        # log-likelihood of a few gold paths, padded with junk tags
        for path in list(scores)[:5]:
            tags = np.zeros((len(lengths), width), dtype="int32")
            tags[b, :n] = path
            tags[b, n:] = k - 1
            ll = crf_log_likelihood(potentials, tags, mask).numpy()[b]
            assert ll == pytest.approx(scores[path] - bf_log_z, abs=1e-4)


def test_probabilities_sum_to_one():
    layer = _random_crf(3, 5)
    emissions = np.random.default_rng(0).normal(size=(1, 3, 3)).astype("float32")
    potentials = layer(emissions)
    total = sum(np.exp(crf_log_likelihood(potentials, np.array([p]), None).numpy()[0])
                for p in itertools.product(range(3), repeat=3))
    assert total == pytest.approx(1.0, abs=1e-5)


def test_length_zero_rows_and_loss_ignore_padding():
    layer = _random_crf(3, 7)
    emissions = np.random.default_rng(1).normal(size=(2, 3, 3)).astype("float32")
    mask = np.array([[True, True, False], [False, False, False]])
    potentials = layer(emissions, mask=mask)
    assert crf_log_partition(potentials, mask).numpy()[1] == 0.0
    paths, _ = viterbi_decode(potentials, mask)
    assert paths.numpy()[1].tolist() == [-1, -1, -1]
    # CRFLoss: targets 1..K, 0 = padding; an empty row costs nothing
    loss = CRFLoss(reduction=None)
    y = np.array([[1, 3, 0], [0, 0, 0]])
    values = loss(y, potentials).numpy()
    expected = -crf_log_likelihood(potentials, np.array([[0, 2, 0], [0, 0, 0]]), mask).numpy()
    np.testing.assert_allclose(values, expected, atol=1e-5)
    assert values[1] == 0.0


def test_inside_tf_function_with_dynamic_shapes():
    layer = _random_crf(3, 9)

    @tf.function(input_signature=[tf.TensorSpec([None, None, 3], tf.float32), tf.TensorSpec([None, None], tf.bool)])
    def decode(emissions, mask):
        return viterbi_decode(layer(emissions, mask=mask), mask)[0]

    emissions = np.random.default_rng(2).normal(size=(2, 4, 3)).astype("float32")
    mask = np.array([[True] * 4, [True, False, False, False]])
    eager = viterbi_decode(layer(emissions, mask=mask), mask)[0].numpy()
    np.testing.assert_array_equal(decode(emissions, mask).numpy(), eager)
    assert decode(emissions[:, :1], mask[:, :1]).numpy().shape == (2, 1)


@pytest.mark.slow
def test_serializes_and_learns_transitions(tmp_path):
    # Tags cycle 1 -> 2 -> 3 -> 1; the input shows the tag (1..3) or hides it (4). Per-step
    # emissions cannot tell a hidden tag, so only the learned transitions get those right.
    rng = np.random.default_rng(0)
    y = (rng.integers(0, 3, size=(64, 1)) + np.arange(6)[None]) % 3 + 1
    x = np.where(rng.random((64, 6)) < 0.5, 4, y)
    x[:, 0] = y[:, 0]
    lengths = rng.integers(1, 7, size=64)
    for i, n in enumerate(lengths):
        x[i, n:], y[i, n:] = 0, 0
    inputs = keras.Input((None,), dtype="int32")
    h = keras.layers.Embedding(5, 8, mask_zero=True)(inputs)
    outputs = CRF(3, name="crf")(keras.layers.Dense(3)(h))
    model = keras.Model(inputs, outputs)
    model.compile(keras.optimizers.Adam(0.05), loss=CRFLoss())
    first = model.evaluate(x, y, verbose=0)
    model.fit(x, y, epochs=150, batch_size=64, verbose=0)
    assert model.evaluate(x, y, verbose=0) < first * 0.2
    mask = x > 0
    decoded = viterbi_decode(model(x), mask)[0].numpy()
    np.testing.assert_array_equal(decoded[mask] + 1, y[mask])
    path = tmp_path / "crf.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(loaded(x).numpy(), model(x).numpy(), atol=1e-6)
    np.testing.assert_array_equal(viterbi_decode(loaded(x), mask)[0].numpy(), decoded)
    assert CRF.from_config(loaded.get_layer("crf").get_config()).num_tags == 3

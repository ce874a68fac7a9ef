"""``ranking.top_k``, the beam searches' ranking outside the graph: a full stable sort's first k."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from seqapps.inference.ranking import top_k


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 5), st.integers(1, 60), st.integers(0, 70), st.integers(0, 2 ** 32 - 1), st.booleans())
def test_top_k_is_the_stable_sorts_first_k(rows, n, k, seed, ties):
    rng = np.random.default_rng(seed)
    values = rng.integers(-3, 3, (rows, n)).astype(np.float32) if ties else rng.normal(size=(rows, n)).astype(np.float32)
    values[rng.random((rows, n)) < 0.2] = np.float32(-1e9)  # finished beams' candidates
    expected = np.argsort(-values, axis=-1, kind="stable")[:, :max(k, 0)]
    got = top_k(values, k)
    assert got.shape == (rows, min(k, n))
    np.testing.assert_array_equal(got, expected)


def test_many_ties_at_the_kth_value_sort_the_row():
    values = np.zeros((2, 1000), np.float32)
    values[1, 700] = 1.0
    np.testing.assert_array_equal(top_k(values, 3), [[0, 1, 2], [700, 0, 1]])

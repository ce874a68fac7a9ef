"""Ranking in NumPy for the exports answered outside TensorFlow (ONNX, LiteRT): beam search's candidates
(:func:`seqapps.inference.onnx_runtime.beam_search`) and word_vectors' neighbours."""

from __future__ import annotations

import numpy as np


def top_k(values: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest of each row of ``values`` ``[rows, n]``, the largest first, ties to the lower
    index: ``np.argsort(-values, kind="stable")[:, :k]`` (``tf.math.top_k``'s order), without sorting whole rows
    (a beam step ranks beams x vocabulary candidates; the full sort took most of a step). Each row sorts only the
    values at or above its k-th largest; a row with more ties there than ``8 k`` sorts whole."""
    rows, n = values.shape
    if k <= 0:
        return np.zeros((rows, 0), np.int64)
    if k >= n:
        return np.argsort(-values, axis=-1, kind="stable")[:, :k]
    kth = -np.partition(-values, k - 1, axis=-1)[:, k - 1:k]
    out = np.empty((rows, k), np.int64)
    for row in range(rows):
        candidates = np.flatnonzero(values[row] >= kth[row])  # in index order: a stable sort keeps ties there
        if len(candidates) > 8 * k:
            out[row] = np.argsort(-values[row], kind="stable")[:k]
        else:
            out[row] = candidates[np.argsort(-values[row, candidates], kind="stable")[:k]]
    return out

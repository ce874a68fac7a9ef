"""The predictor's batching by length and padding of strings."""

from __future__ import annotations

from seqapps.inference.predictor import length_batches, pad_strings


def test_predictor_batches_by_length_and_pads_strings():
    inputs = ["aaaa", "a", "aaa", "aa", "aaaaa"]
    assert length_batches(range(5), inputs, 2) == [[1, 3], [2, 0], [4]]
    assert length_batches([], inputs, 2) == []
    padded = pad_strings([["x"], ["y", "z"], []])
    assert padded.shape == (3, 2) and padded.dtype == object and padded.tolist() == [["x", ""], ["y", "z"], ["", ""]]
    assert pad_strings([[]]).shape == (1, 1)

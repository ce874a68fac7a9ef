"""Word vectors: the text-format reader's errors, and count vectors that group words by context."""

from __future__ import annotations

import numpy as np
import pytest

from seqapps.data.vectors import count_vectors, read_vectors, write_vectors
from seqapps.core.errors import DataError


def test_read_vectors_skips_the_header_lowercases_and_keeps_the_first(tmp_path):
    path = tmp_path / "v.txt"
    path.write_text("3 2\nThe 0.5 1\ncat -1 2.5\nthe 9 9\n\n", encoding="utf-8")
    words, matrix = read_vectors(path)
    assert words == ["the", "cat"] and matrix.dtype == np.float32
    assert matrix.tolist() == [[0.5, 1.0], [-1.0, 2.5]]
    assert read_vectors(path, limit=1)[0] == ["the"]


@pytest.mark.parametrize("text, message", [
    ("a 1 2\nb 1\n", r"v.txt:2: 1 numbers where the first line had 2"),
    ("a 1 2\nb 1 x\n", r"v.txt:2: expected numbers after the word 'b'"),
    ("a 1 2\nlonely\n", r"v.txt:2: expected a word and its numbers"),
    ("\n", r"v.txt: no word vectors in the file"),
])
def test_read_vectors_errors_name_file_and_line(tmp_path, text, message):
    path = tmp_path / "v.txt"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataError, match=message):
        read_vectors(path)
    with pytest.raises(DataError, match="no such word-vectors file"):
        read_vectors(tmp_path / "missing.txt")


def test_count_vectors_put_words_of_the_same_contexts_together(tmp_path):
    rng = np.random.default_rng(0)
    nouns, verbs = ["cat", "dog", "bird", "horse"], ["runs", "sleeps", "eats", "sings"]
    sentences = [["the", rng.choice(nouns), rng.choice(verbs), "."] for _ in range(400)]
    sentences += [["a", rng.choice(nouns), "and", "a", rng.choice(nouns), rng.choice(verbs)] for _ in range(200)]
    words, matrix = count_vectors(sentences, dim=4, window=1, min_count=1)
    vec = {w: matrix[i] for i, w in enumerate(words)}
    noun_noun = np.mean([vec[a] @ vec[b] for a in nouns for b in nouns if a != b])
    noun_verb = np.mean([vec[a] @ vec[b] for a in nouns for b in verbs])
    assert noun_noun > noun_verb + 0.3
    assert np.allclose(np.linalg.norm(matrix, axis=1), 1, atol=1e-5)
    write_vectors(tmp_path / "out.txt", words, matrix)
    again_words, again = read_vectors(tmp_path / "out.txt")
    assert again_words == words and np.allclose(again, matrix, atol=1e-4)
    with pytest.raises(DataError, match="too few"):
        count_vectors([["a", "b"]], dim=4)

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


# -- both file formats, streamed for a vocabulary -------------------------------------------------------
WORDS = ["the", "cat", "Dog", "sat"]


def _matrix():
    return np.random.default_rng(3).normal(size=(len(WORDS), 6)).astype(np.float32)


@pytest.mark.parametrize("name, binary", [("v.txt", False), ("v.bin", True), ("vectors", True)])
def test_text_and_binary_files_read_the_same_vectors(tmp_path, name, binary):
    from seqapps.data.vectors import is_binary

    matrix = _matrix()
    write_vectors(tmp_path / name, WORDS, matrix, binary=binary)
    assert is_binary(tmp_path / name) == binary  # "vectors" (no suffix) is recognised as binary by its bytes
    words, read = read_vectors(tmp_path / name, lowercase=False)
    assert words == WORDS and np.allclose(read, matrix, atol=1e-5 if not binary else 0)


def test_vocabulary_vectors_keep_the_vocabularys_rows_and_print_the_coverage(tmp_path, capsys):
    from seqapps.data.vectors import vocabulary_vectors

    matrix = _matrix()
    write_vectors(tmp_path / "v.bin", WORDS, matrix, binary=True)
    write_vectors(tmp_path / "v.txt", WORDS, matrix)
    vocab = ["", "[UNK]", "sat", "dog", "missing", "The"]
    got = {}
    for name in ("v.bin", "v.txt"):
        got[name], found = vocabulary_vectors(tmp_path / name, vocab, skip=2, seed=0)
        assert found.tolist() == [False, False, True, True, False, True]
        assert f"word vectors: 3 of 4 vocabulary words (75.0%) from {tmp_path / name}" in capsys.readouterr().err
    assert np.allclose(got["v.bin"], got["v.txt"], atol=1e-5)
    v = got["v.bin"]
    assert np.allclose(v[2], matrix[3]) and np.allclose(v[5], matrix[0])
    assert np.allclose(v[3], matrix[2])            # "dog" takes "Dog"'s row (no row spelled "dog")
    assert not v[:2].any() and v[4].std() > 0      # padding and unknown zero; the missing word drawn at random


def test_a_run_directory_names_its_vectors_file(tmp_path):
    from seqapps.data.vectors import vectors_path

    write_vectors(tmp_path / "run" / "vectors.txt", WORDS, _matrix())
    assert vectors_path(tmp_path / "run") == tmp_path / "run" / "vectors.txt"
    with pytest.raises(DataError, match="a folder without vectors.txt"):
        vectors_path(tmp_path)


@pytest.mark.parametrize("text, message", [
    ("2 3\nthe 1 2 3\ncat 1 2\n", r"v.txt:3: 2 numbers where the header gives 3"),
    ("the 1 2 3\ncat 1 x 3\n", r"v.txt:2: expected numbers after the word 'cat'"),
    ("the 1 2 3\ncat\n", r"v.txt:2: expected a word and its numbers"),
])
def test_a_bad_line_for_the_vocabulary_names_file_and_line(tmp_path, text, message):
    from seqapps.data.vectors import vocabulary_vectors

    (tmp_path / "v.txt").write_text(text, encoding="utf-8")
    with pytest.raises(DataError, match=message):
        vocabulary_vectors(tmp_path / "v.txt", ["", "[UNK]", "the", "cat"], skip=2)


def test_a_cut_binary_file_names_the_vector(tmp_path):
    write_vectors(tmp_path / "v.bin", WORDS, _matrix(), binary=True)
    data = (tmp_path / "v.bin").read_bytes()
    (tmp_path / "cut.bin").write_bytes(data[:-10])
    with pytest.raises(DataError, match=r"cut.bin: vector 4 \(byte [0-9,]+\): the file ends where its numbers"):
        read_vectors(tmp_path / "cut.bin")
    with pytest.raises(DataError, match="cannot hold the word"):
        write_vectors(tmp_path / "w.bin", ["two words"], _matrix()[:1], binary=True)

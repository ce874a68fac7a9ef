"""Word vectors: read and write the plain-text format of word2vec, GloVe and fastText,
and build small vectors from unlabeled text when no pretrained file is at hand.

Text format: one word per line followed by its numbers, separated by spaces; an optional
first line ``COUNT DIM`` (word2vec's header) is skipped.

:func:`count_vectors` builds vectors from tokenized sentences with no download: a
co-occurrence count in a symmetric window, positive pointwise mutual information, and a
truncated SVD (the classical count-based method, Levy & Goldberg 2014). On a few million
tokens it takes a minute and captures the syntactic neighbourhoods that tagging needs.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from seqapps.errors import DataError


def read_vectors(path, lowercase: bool = True, limit: int = 0) -> tuple[list[str], np.ndarray]:
    """``(words, matrix [len(words), dim] float32)``; the first occurrence of a word wins.
    ``limit`` > 0 keeps the first ``limit`` words (files are usually sorted by frequency)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no such word-vectors file {str(path)!r}")
    words, rows, seen, dim = [], [], set(), None
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, 1):
            parts = line.rstrip("\n").rstrip(" ").split(" ")
            if number == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
                continue  # word2vec header: COUNT DIM
            if len(parts) < 2:
                if not line.strip():
                    continue
                raise DataError(f"{path}:{number}: expected a word and its numbers")
            try:
                values = [float(x) for x in parts[1:]]
            except ValueError:
                raise DataError(f"{path}:{number}: expected numbers after the word {parts[0]!r}") from None
            if dim is None:
                dim = len(values)
            elif len(values) != dim:
                raise DataError(f"{path}:{number}: {len(values)} numbers where the first line had {dim}")
            word = parts[0].lower() if lowercase else parts[0]
            if word in seen:
                continue
            seen.add(word)
            words.append(word)
            rows.append(values)
            if limit and len(words) >= limit:
                break
    if not words:
        raise DataError(f"{path}: no word vectors in the file")
    return words, np.asarray(rows, dtype=np.float32)


def write_vectors(path, words, matrix) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(f"{len(words)} {matrix.shape[1]}\n")
        for word, row in zip(words, matrix):
            f.write(word + " " + " ".join(f"{v:.5f}" for v in row) + "\n")


def count_vectors(sentences, dim: int = 100, window: int = 2, min_count: int = 2, max_words: int = 50000,
                  seed: int = 0) -> tuple[list[str], np.ndarray]:
    """PPMI + truncated SVD vectors from ``sentences`` (lists of tokens, compared lower-cased).

    Returns ``(words, matrix)`` with rows scaled to unit length. Words seen fewer than
    ``min_count`` times are left out; contexts are the same vocabulary.
    """
    from scipy import sparse
    from sklearn.utils.extmath import randomized_svd

    sentences = [[w.lower() for w in s] for s in sentences]
    counts = Counter(w for s in sentences for w in s)
    words = [w for w, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if c >= min_count][:max_words]
    if len(words) <= dim:
        raise DataError(f"{len(words)} words seen at least {min_count} times are too few for {dim}-dimensional vectors")
    index = {w: i for i, w in enumerate(words)}
    rows, cols = [], []
    for s in sentences:
        ids = [index.get(w, -1) for w in s]
        for i, a in enumerate(ids):
            if a < 0:
                continue
            for j in range(max(0, i - window), min(len(ids), i + window + 1)):
                if j != i and ids[j] >= 0:
                    rows.append(a)
                    cols.append(ids[j])
    n = len(words)
    cooc = sparse.coo_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(n, n)).tocsr()
    total = cooc.sum()
    row_sum = np.asarray(cooc.sum(axis=1)).ravel()
    col_sum = np.asarray(cooc.sum(axis=0)).ravel() ** 0.75  # context smoothing
    col_sum = col_sum / col_sum.sum() * total
    cooc = cooc.tocoo()
    pmi = np.log(cooc.data * total / (row_sum[cooc.row] * col_sum[cooc.col]))
    keep = pmi > 0
    ppmi = sparse.csr_matrix((pmi[keep], (cooc.row[keep], cooc.col[keep])), shape=(n, n))
    u, s, _ = randomized_svd(ppmi, dim, random_state=seed)
    matrix = u * np.sqrt(s)
    matrix /= np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-9)
    return words, matrix.astype(np.float32)

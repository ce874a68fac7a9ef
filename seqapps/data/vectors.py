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

from seqapps.data import cache_folder
from seqapps.core.errors import DataError


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


# -- count vectors from the offline datasets' unlabeled English text, built once and cached ---------------
COUNT_PREFIX = "count:"
#: dataset -> its unlabeled English text, one string per line (no labels are read)
UNLABELED = {
    "sst2": lambda paths: _table_column(paths["train"], "sentence"),
    "anki_fra_eng": lambda paths: [line.split("\t", 1)[0] for line in _lines(paths["all"])],
    "tinyshakespeare": lambda paths: _lines(paths["all"]),
}


def resolve_vectors(spec: str, tokenize, dim: int = 100) -> Path:
    """The vectors file ``spec`` names: a path, or ``count:NAME+NAME...`` for count vectors
    built from those named datasets' unlabeled English text, split into words by ``tokenize``
    (strings -> ragged words, the model's own tokenizer). Built once, then read from the cache
    folder ($SEQAPPS_CACHE, else ~/.cache/seqapps)."""
    if not spec.startswith(COUNT_PREFIX):
        return Path(spec)
    names = [n for n in spec[len(COUNT_PREFIX):].split("+") if n]
    unknown = [n for n in names if n not in UNLABELED]
    if not names or unknown:
        raise DataError(f"{spec!r}: count vectors read the text of {', '.join(UNLABELED)}, joined with +; "
                        f"got {', '.join(unknown) or 'none'}")
    path = cache_folder() / f"count-{'+'.join(names)}-{dim}d.txt"
    if not path.exists():
        _build_count_vectors(path, names, tokenize, dim)
    return path


def _build_count_vectors(path: Path, names, tokenize, dim: int) -> None:
    import sys
    import time

    started = time.time()
    print(f"building count vectors from {', '.join(names)} (once; cached in {path.parent})", file=sys.stderr)
    texts = [line for name in names for line in read_unlabeled(name)]
    sentences = []
    for i in range(0, len(texts), 20000):
        sentences += [[w.decode("utf-8") for w in row] for row in tokenize(texts[i:i + 20000]).to_list()]
    words, matrix = count_vectors(sentences, dim=dim, window=2, min_count=2)
    tmp = path.with_name(path.name + ".tmp")
    write_vectors(tmp, words, matrix)
    tmp.replace(path)  # whole or absent: a killed build leaves no half-written vectors
    print(f"count vectors: {len(words)} words x {dim} from {sum(map(len, sentences))} tokens in "
          f"{time.time() - started:.0f} s", file=sys.stderr)


def read_unlabeled(name: str) -> list[str]:
    """The unlabeled English lines of the named dataset ``name`` (a key of :data:`UNLABELED`)."""
    from seqapps.data import catalog

    return UNLABELED[name](catalog.named(name)[1])


def _lines(path) -> list[str]:
    from seqapps.data.readers import read_text_file

    return [x for x in read_text_file(path).splitlines() if x.strip()]


def _table_column(path, column) -> list[str]:
    from seqapps.data.readers import read_table

    return read_table(path, [column])[column].astype(str).tolist()

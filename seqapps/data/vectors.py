"""Word vectors: read word2vec, GloVe and fastText files (text, and word2vec's binary format),
write them, and build small vectors from unlabeled text when no pretrained file is at hand.

Text format: one word per line followed by its numbers, separated by spaces; an optional
first line ``COUNT DIM`` (word2vec's header) is skipped. A word holding spaces (GloVe 840B's
``". . ."``) is read when the width is known from the header or the first line.
Binary format (word2vec's ``-binary 1``): the header line ``COUNT DIM``, then per word its
UTF-8 bytes, a space and ``DIM`` little-endian float32 (a newline before the next word is allowed).
Files ending in ``.bin`` are binary; others are read as text unless their first record is not.

Files are read as a stream: :func:`vocabulary_vectors` keeps only the rows a vocabulary needs (and
parses only their numbers), so a vectors file larger than memory is fine.
``model.word_vectors`` of every text task names a file, a ``word_vectors`` run directory (its
``vectors.txt``), or ``count:NAME+...`` (:func:`resolve_vectors`).

:func:`count_vectors` builds vectors from tokenized sentences with no download: a
co-occurrence count in a symmetric window, positive pointwise mutual information, and a
truncated SVD (the classical count-based method, Levy & Goldberg 2014). On a few million
tokens it takes a minute and captures the syntactic neighbourhoods that tagging needs.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import Iterator

import numpy as np

from seqapps.data import cache_folder
from seqapps.core.errors import DataError

#: the file a ``word_vectors`` run writes; a run directory given as a vectors file means this file in it
RUN_VECTORS = "vectors.txt"
_BLOCK = 1 << 20


def vectors_path(spec) -> Path:
    """The vectors file ``spec`` names: a file, or a folder holding :data:`RUN_VECTORS` (a run of the
    ``word_vectors`` task)."""
    path = Path(spec).expanduser()
    if path.is_dir():
        if (path / RUN_VECTORS).is_file():
            return path / RUN_VECTORS
        if all((path / name).is_file() for name in ("run.json", "words.txt", "best.keras")):
            import importlib
            import json

            if json.loads((path / "run.json").read_text()).get("task") == "word_vectors":
                # a run trained from a prepared folder: its vectors, written from its best checkpoint now
                return importlib.import_module("tasks.word_vectors.task").write_run_vectors(path)
        raise DataError(f"{path} is a folder without {RUN_VECTORS}; expected a word-vectors file or a "
                        "word_vectors run directory")
    if not path.is_file():
        raise DataError(f"no such word-vectors file {str(path)!r}")
    return path


def is_binary(path) -> bool:
    """Whether ``path`` is in word2vec's binary format: named ``*.bin``, or a ``COUNT DIM`` header whose
    first record is not a line of ``DIM`` numbers."""
    path = Path(path)
    if path.suffix.lower() == ".bin":
        return True
    with open(path, "rb") as f:
        head = f.read(_BLOCK)
    first, _, rest = head.partition(b"\n")
    parts = first.split()
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        return False
    record = rest.partition(b"\n")[0]
    try:
        fields = record.decode("utf-8").rstrip().split(" ")
        [float(x) for x in fields[-int(parts[1]):]]
    except (UnicodeDecodeError, ValueError):
        return True
    return len(fields) < int(parts[1]) + 1


def records(path) -> Iterator[tuple[str, str, object]]:
    """``(where, word, numbers)`` for every vector of the file at ``path`` (text or binary, see
    :func:`is_binary`), read as a stream; ``where`` is ``FILE:LINE`` (binary: ``FILE: vector N``) and
    ``numbers()`` parses the row into float32 ``[dim]`` (only the rows asked for are parsed).
    A malformed row, a row of another width, a file that ends inside a vector: one DataError line
    naming the file and the line."""
    path = Path(path)
    try:
        binary = is_binary(path)
    except OSError as e:
        raise DataError(f"{path}: cannot read the word-vectors file ({e.strerror})") from None
    return _binary_records(path) if binary else _text_records(path)


def _text_records(path: Path):
    dim, header = None, False
    try:
        f = open(path, "rb")
    except OSError as e:
        raise DataError(f"{path}: cannot read the word-vectors file ({e.strerror})") from None
    with f:
        for number, raw in enumerate(f, 1):
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n").rstrip(" ")
            if number == 1 and line.startswith("\ufeff"):
                line = line[1:]
            parts = line.split(" ")
            if number == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
                dim, header = int(parts[1]), True  # word2vec header: COUNT DIM
                continue
            if len(parts) < 2:
                if not line.strip():
                    continue
                raise DataError(f"{path}:{number}: expected a word and its numbers")
            if dim is None:
                dim = len(parts) - 1
            elif len(parts) > dim + 1:  # a word holding spaces
                parts = [" ".join(parts[:len(parts) - dim]), *parts[len(parts) - dim:]]
            where = f"{path}:{number}"
            if len(parts) - 1 != dim:
                raise DataError(f"{where}: {len(parts) - 1} numbers where "
                                f"{'the header gives' if header else 'the first line had'} {dim}")
            yield where, parts[0], _text_numbers(where, parts)


def _text_numbers(where, parts):
    def numbers():
        try:
            return np.asarray(parts[1:], dtype=np.float32)
        except ValueError:
            raise DataError(f"{where}: expected numbers after the word {parts[0]!r}") from None
    return numbers


def _binary_records(path: Path):
    with open(path, "rb") as f:
        header = f.readline()
        parts = header.split()
        if len(parts) != 2 or not all(p.isdigit() for p in parts):
            raise DataError(f"{path}:1: expected the binary header COUNT DIM, got {header[:40]!r}")
        count, dim = int(parts[0]), int(parts[1])
        if dim < 1:
            raise DataError(f"{path}:1: the header gives {dim} numbers per word")
        size, buf, pos, offset = 4 * dim, b"", 0, len(header)
        for index in range(1, count + 1):
            where = f"{path}: vector {index:,} (byte {offset + pos:,})"
            while True:  # the word: bytes up to a space (a newline before it belongs to the previous vector)
                while pos < len(buf) and buf[pos:pos + 1] in (b"\n", b"\r"):
                    pos += 1
                space = buf.find(b" ", pos)
                if space >= 0 and len(buf) - space - 1 >= size:
                    break
                more = f.read(_BLOCK)
                if not more:
                    what = "a word and its vector" if space < 0 else "its numbers"
                    raise DataError(f"{where}: the file ends where {what} should be (the header says {count:,} "
                                    f"words of {dim} numbers)")
                offset += pos
                buf, pos = buf[pos:] + more, 0
            if space - pos > 1000:
                raise DataError(f"{where}: no word of up to 1000 bytes followed by a space; is it a vectors file?")
            word = buf[pos:space].decode("utf-8", errors="replace")
            row = buf[space + 1:space + 1 + size]
            pos = space + 1 + size
            yield where, word, (lambda row=row: np.frombuffer(row, dtype="<f4").astype(np.float32))


def read_vectors(path, lowercase: bool = True, limit: int = 0) -> tuple[list[str], np.ndarray]:
    """Every vector of the file at ``path``: ``(words, matrix [len(words), dim] float32)``; the first
    occurrence of a word wins. ``limit`` > 0 keeps the first ``limit`` words (files are usually
    sorted by frequency)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no such word-vectors file {str(path)!r}")
    words, rows, seen = [], [], set()
    for _, word, numbers in records(path):
        word = word.lower() if lowercase else word
        if word in seen:
            continue
        seen.add(word)
        words.append(word)
        rows.append(numbers())
        if limit and len(words) >= limit:
            break
    if not words:
        raise DataError(f"{path}: no word vectors in the file")
    return words, np.stack(rows)


def vocabulary_vectors(path, vocabulary, skip: int = 0, seed: int = 0, verbose: bool = True
                       ) -> tuple[np.ndarray, np.ndarray]:
    """The rows of ``vocabulary`` (a list of words; its first ``skip`` entries, padding and unknown, are
    left out) from the vectors file at ``path``, read as a stream: ``(matrix [len(vocabulary), dim]
    float32, found bool [len(vocabulary)])``. A word takes its own row, else (no row of that spelling)
    the first row whose word lower-cased is its lower-cased form. Rows not found are drawn from a normal
    distribution of the found vectors' spread (``seed``); skipped ones are zero. With ``verbose``,
    prints the coverage: ``word vectors: 8,123 of 10,000 vocabulary words (81.2%) from FILE``."""
    path = vectors_path(path)
    index: dict[str, list[tuple[int, int]]] = {}
    for i, word in enumerate(vocabulary):
        if i < skip:
            continue
        index.setdefault(word, []).append((i, 2))             # the same spelling
        if word.lower() != word:
            index.setdefault(word.lower(), []).append((i, 1))  # a lower-cased file word
    n = len(vocabulary)
    quality = np.zeros(n, np.int8)  # 0 not found, 1 found case-insensitively, 2 found as spelled
    rows: dict[int, np.ndarray] = {}
    wanted, exact, dim = n - skip, 0, None
    for _, word, numbers in records(path):
        hits = index.get(word, [])
        lower = word.lower()
        if lower != word:
            hits = hits + [(i, 1) for i, q in index.get(lower, []) if q == 2]
        elif dim is not None and not hits:
            continue
        row = None
        for i, q in hits:
            if q > quality[i]:
                row = numbers() if row is None else row
                exact += q == 2
                quality[i], rows[i] = q, row
        if dim is None:
            dim = len(row if row is not None else numbers())
        if exact == wanted:
            break
    if dim is None:
        raise DataError(f"{path}: no word vectors in the file")
    found = quality > 0
    matrix = np.zeros((n, dim), np.float32)
    if rows:
        ids = np.fromiter(rows, dtype=np.int64, count=len(rows))
        matrix[ids] = np.stack([rows[i] for i in ids.tolist()])
    spread = float(matrix[found].std()) if found.any() else 0.1
    missing = ~found
    missing[:skip] = False
    matrix[missing] = np.random.default_rng(seed).normal(0.0, spread or 0.1, (int(missing.sum()), dim))
    if verbose:
        print(f"word vectors: {int(found.sum()):,} of {wanted:,} vocabulary words ({100 * found.sum() / max(wanted, 1):.1f}%) "
              f"from {path} ({dim} numbers each)", file=sys.stderr)
    return matrix, found


def write_vectors(path, words, matrix, binary: bool = False) -> None:
    """``words`` and their rows of ``matrix`` in word2vec's text format (``binary``: its binary format),
    written whole or not at all (a temporary file renamed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    matrix = np.asarray(matrix, dtype=np.float32)
    if binary:
        with open(tmp, "wb") as f:
            f.write(f"{len(words)} {matrix.shape[1]}\n".encode())
            for word, row in zip(words, matrix):
                if " " in word or not word:
                    raise DataError(f"{path}: the binary format cannot hold the word {word!r} (spaces end a word)")
                f.write(word.encode("utf-8") + b" " + row.astype("<f4").tobytes() + b"\n")
    else:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(f"{len(words)} {matrix.shape[1]}\n")
            for word, row in zip(words, matrix):
                f.write(word + " " + " ".join(f"{v:.6g}" for v in row) + "\n")
    tmp.replace(path)


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
    """The vectors file ``spec`` names: a path (a file, or a ``word_vectors`` run directory), or ``count:NAME+NAME...`` for count vectors
    built from those named datasets' unlabeled English text, split into words by ``tokenize``
    (strings -> ragged words, the model's own tokenizer). Built once, then read from the cache
    folder ($SEQAPPS_CACHE, else ~/.cache/seqapps)."""
    if not spec.startswith(COUNT_PREFIX):
        return vectors_path(spec)
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
    import time

    started = time.time()
    print(f"building count vectors from {', '.join(names)} (once; cached in {path.parent})", file=sys.stderr)
    texts = [line for name in names for line in read_unlabeled(name)]
    sentences = []
    for i in range(0, len(texts), 20000):
        sentences += [[w.decode("utf-8") for w in row] for row in tokenize(texts[i:i + 20000]).to_list()]
    words, matrix = count_vectors(sentences, dim=dim, window=2, min_count=2)
    write_vectors(path, words, matrix)  # whole or absent: a killed build leaves no half-written vectors
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

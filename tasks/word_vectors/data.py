"""Unlabeled text for word vectors, read as a stream, and the fitted vocabulary.

Sources (``data.source``), joined with ``+``: ``demo`` (:mod:`tasks.word_vectors.demo`); a named dataset
whose English text this task reads (:data:`TEXT_OF`: the training split of a labelled set, never
its test split); a text file (one sentence or paragraph a line); a folder of ``*.txt`` files. Lines
are assigned to validation by the MD5 bucket of the line (``data.val_fraction``); there is no test
split. Words are split off as the text tasks' vectorizer splits them (lower-cased, punctuation apart:
:func:`seqapps.data.text.standardize`).

A file of analogy questions (word2vec's ``questions-words.txt`` format: ``: section`` lines, then
``a b c d`` lines) given as the source is read as :class:`Analogies`, what ``evaluate`` scores.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import numpy as np

from seqapps.core.errors import DataError
from seqapps.core.task import Splits
from seqapps.data.preprocessing import Preprocessing, save_json, save_vocab
from seqapps.data.streaming import BadRows, ByteLines, fitting_pass, hash_role, pick_column, table_header, table_rows

FIT_BATCH = 16384


def _table_lines(path: Path, candidates):
    column = pick_column(table_header(path), "", candidates, "text", path)
    for _, (text,) in table_rows(path, [column], BadRows(False)):
        yield text


def _first_column(path: Path):
    for line in ByteLines(path):
        yield line.split("\t", 1)[0]


#: named dataset -> (its file, how its English lines are read); training text only
TEXT_OF = {
    "sst2": ("train", lambda p: _table_lines(p, ["sentence"])),
    "tinyshakespeare": ("all", lambda p: (line.rstrip("\n") for line in ByteLines(p))),
    "anki_fra_eng": ("all", _first_column),
}


@dataclasses.dataclass(frozen=True)
class Piece:
    """One source of lines: a named dataset, a file, or the demo text."""

    name: str
    path: Path | None = None
    read: object = None

    def lines(self):
        if self.path is None:
            from tasks.word_vectors import demo

            yield from demo.lines()
        else:
            for line in (self.read(self.path) if self.read else (x.rstrip("\n") for x in ByteLines(self.path))):
                if line.strip():
                    yield line


def pieces_of(source: str, data_dir=None) -> list[Piece]:
    from seqapps.data import catalog

    pieces = []
    for name in [n for n in source.split("+") if n]:
        path = Path(name).expanduser()
        if name == "demo":
            pieces.append(Piece("demo"))
        elif name in TEXT_OF:
            split, read = TEXT_OF[name]
            pieces.append(Piece(name, catalog.named(name, data_dir)[1][split], read))
        elif path.is_dir():
            files = sorted(path.rglob("*.txt"))
            if not files:
                raise DataError(f"{path}: no *.txt files in the folder")
            pieces += [Piece(str(f), f) for f in files]
        elif path.is_file():
            pieces.append(Piece(name, path))
        else:
            raise DataError(f"unknown text source {name!r}; expected demo, a text file, a folder of .txt files "
                            f"or one of: {', '.join(TEXT_OF)} (joined with +)")
    if not pieces:
        raise DataError("data.source names no text; expected demo, a text file, a folder or a named dataset")
    return pieces


class TextLines:
    """One split of the text: ``rows()`` yields its lines; ``n`` is their number (from the fitting pass)."""

    def __init__(self, pieces, role: str, val_fraction: float, n: int = 0):
        self.pieces, self.role, self.val_fraction, self.n = pieces, role, val_fraction, n

    def rows(self):
        for piece in self.pieces:
            for line in piece.lines():
                if hash_role(line, self.val_fraction, 0.0) == self.role:
                    yield line

    __iter__ = rows

    def materialize(self) -> list[str]:
        return list(self.rows())

    def __len__(self):
        return self.n


@dataclasses.dataclass
class Analogies:
    """Analogy questions ``a : b :: c : d`` by section, from a ``questions-words.txt`` file."""

    sections: list[str]
    questions: list[tuple[int, str, str, str, str]]   # (section index, a, b, c, d), lower-cased

    @classmethod
    def read(cls, path) -> "Analogies":
        sections, questions = [], []
        for number, line in enumerate(ByteLines(Path(path)), 1):
            line = line.strip()
            if not line:
                continue
            if line.startswith(":"):
                sections.append(line[1:].strip() or f"section {len(sections) + 1}")
                continue
            words = line.lower().split()
            if len(words) != 4:
                raise DataError(f"{path}:{number}: expected four words 'a b c d' (a is to b as c is to d) "
                                f"or a ': section' line, got {len(words)} word(s)")
            if not sections:
                sections.append("analogies")
            questions.append((len(sections) - 1, *words))
        if not questions:
            raise DataError(f"{path}: no analogy questions (lines 'a b c d' under ': section' lines)")
        return cls(sections, questions)


def is_analogy_file(source: str) -> bool:
    path = Path(source).expanduser()
    if not path.is_file():
        return False
    with open(path, "rb") as f:
        for raw in f:
            if raw.strip():
                return raw.lstrip().startswith(b":")
    return False


def load_text(data_cfg, data_dir=None, verbose: bool = True) -> Splits:
    """Streamed ``train`` and ``val`` splits of ``data_cfg.source`` and, in ``info["fit"]``, the
    training split's word counts (ranked) and each split's number of lines and words."""
    if is_analogy_file(data_cfg.source):
        questions = Analogies.read(Path(data_cfg.source).expanduser())
        return Splits(None, questions, questions, {"analogies": True})
    pieces = pieces_of(data_cfg.source, data_dir)
    val = data_cfg.val_fraction
    if not 0 <= val < 1:
        raise DataError(f"data.val_fraction must be in [0, 1), got {val}")
    files = [p.path for p in pieces if p.path is not None]
    key = {"task": "word_vectors", "source": data_cfg.source, "val_fraction": val, "reader": 1}
    fit = fitting_pass(f"word_vectors on {data_cfg.source}", files, key,
                       lambda progress: _fit(pieces, val, progress), cache=bool(files), verbose=verbose)
    if fit["lines"]["train"] == 0:
        raise DataError(f"{data_cfg.source}: no training text")
    return Splits(TextLines(pieces, "train", val, fit["lines"]["train"]), TextLines(pieces, "val", val,
                  fit["lines"]["val"]), None, {"fit": fit})


def _fit(pieces, val_fraction, progress) -> dict:
    import tensorflow as tf

    from seqapps.data import text as textlib

    counts, lines, words, batch = {}, {"train": 0, "val": 0}, {"train": 0, "val": 0}, []

    def flush():
        if batch:
            tokens, _, n = tf.unique_with_counts(textlib.words(tf.constant(batch)).flat_values)
            for t, c in zip(tokens.numpy().tolist(), n.numpy().tolist()):
                counts[t] = counts.get(t, 0) + c
            words["train"] += int(n.numpy().sum())
            batch.clear()

    for piece in pieces:
        for line in piece.lines():
            role = hash_role(line, val_fraction, 0.0)
            lines[role] += 1
            if role == "train":
                batch.append(line)
                if len(batch) >= FIT_BATCH:
                    flush()
                    progress(sum(lines.values()), 0)
    flush()
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return {"lines": lines, "words": words, "counts": [[t.decode("utf-8", "replace"), c] for t, c in ranked]}


class WordVocab(Preprocessing):
    """The words that get vectors, most frequent first, and their training counts (``words.txt``,
    ``counts.json``). Ids: 0 = a word without a vector (unknown), ``1..len(words)`` = ``words``."""

    task = "word_vectors"

    def __init__(self, words, counts, run_dir=None):
        self.words, self.counts = list(words), np.asarray(counts, dtype=np.int64)
        self.run_dir = run_dir

    @classmethod
    def fit(cls, cfg, splits) -> "WordVocab":
        d = cfg.data
        if splits.train is None:
            raise DataError(f"{d.source} is a file of analogy questions: evaluate scores with it "
                            "(python -m seqapps evaluate RUN_DIR --data FILE); train on text")
        kept = [(w, c) for w, c in splits.info["fit"]["counts"] if c >= d.min_count and w][:d.vocab_size]
        if len(kept) < 2:
            raise DataError(f"{d.source}: {len(kept)} word(s) seen at least data.min_count={d.min_count} times; "
                            "need at least 2 for word vectors")
        return cls([w for w, _ in kept], [c for _, c in kept])

    def save(self, run_dir) -> None:
        save_vocab(run_dir, "words.txt", self.words)
        save_json(run_dir, "counts.json", self.counts.tolist())
        self.run_dir = Path(run_dir)

    @classmethod
    def load(cls, run_dir, cfg=None) -> "WordVocab":
        return cls(cls.read_vocab(run_dir, "words.txt"), cls.read_json(run_dir, "counts.json"), Path(run_dir))

    @functools.cached_property
    def lookup(self):
        """The export's StringLookup: ``0`` for a word without a vector, ``1..len(words)`` for ``words``."""
        import keras

        layer = keras.layers.StringLookup(vocabulary=self.words, num_oov_indices=1, mask_token=None,
                                          name="word_lookup")
        layer.build(None)
        return layer

    def keep_probabilities(self, threshold: float) -> np.ndarray:
        """word2vec's subsampling: a word of frequency ``f`` is kept with ``(sqrt(f / t) + 1) t / f``
        (``t`` = ``threshold``, 0 keeps all); index 0 (unknown) is never kept."""
        freq = self.counts / max(self.counts.sum(), 1)
        keep = np.ones_like(freq) if threshold <= 0 else np.minimum(
            1.0, (np.sqrt(freq / threshold) + 1) * threshold / np.maximum(freq, 1e-12))
        return np.concatenate([[0.0], keep]).astype(np.float32)

    def negative_table(self, size: int = 1_000_000) -> np.ndarray:
        """word2vec's table for negative samples: ids ``1..len(words)`` in proportion to count^0.75."""
        p = self.counts.astype(np.float64) ** 0.75
        size = int(min(size, max(100 * len(self.words), 1000)))
        return np.repeat(np.arange(1, len(self.words) + 1), np.maximum(1, np.round(p / p.sum() * size)).astype(np.int64))

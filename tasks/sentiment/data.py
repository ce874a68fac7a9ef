"""Labelled texts (text -> class) from any source, read as a stream, and their vocabularies.

Sources: ``demo``, a named dataset, a CSV/TSV file, a folder holding ``train.*``,
``dev.*``/``val*.*`` and ``test.*`` tables, or ``tfds:NAME``. Files are never read whole:
each split is a :class:`LabelledStream` that reads its rows when asked, and what must be fitted
(the labels, the token counts of the vocabulary, the split sizes, the longest text) comes from
one streaming pass over the files, cached by their sizes and modification times
(:func:`seqapps.data.streaming.fitting_pass`).

Splits: a source in one piece (``demo``, one file) is split by the MD5 bucket of each text
(``data.test_fraction`` of the buckets test, ``data.val_fraction`` validate, the rest train), so
the same text always lands in the same split however the file is read; a source with split
files keeps them, a missing validation split is carved from the training file the same way.
Empty training texts are left out.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
from pathlib import Path

import numpy as np

from seqapps.core.errors import DataError
from seqapps.core.task import Splits
from seqapps.data import text as textlib
from seqapps.data.preprocessing import Preprocessing, save_vocab
from seqapps.data import sources
from seqapps.data.splits import find_split_files
from seqapps.data.streaming import (BadRows, ByteLines, StreamedSplit, TokenCounter, fitting_pass, hash_role,
                                    pick_column, table_rows)

TEXT_COLUMNS = ["sentence", "text", "review", "content", "document"]
LABEL_COLUMNS = ["label", "sentiment", "class", "polarity", "target"]
TABLE_SUFFIXES = (".csv", ".tsv", ".txt", ".tab")
MAX_LABELS = 10_000   # more distinct labels than this is a wrong column, not a classification
FIT_BATCH = 16384     # texts tokenized at once in the fitting pass


# -- one piece of a source, and the role of each of its rows -----------------------------------------
@dataclasses.dataclass(frozen=True)
class Piece:
    """A file (or, for demo and tfds sources, rows in memory) and how its rows get a split:
    ``role`` for all of them, or, with ``fractions``, by the MD5 bucket of the text
    (``(val_fraction, test_fraction)``, the rest training)."""

    path: Path | None = None
    rows: tuple = ()
    role: str = "train"
    fractions: tuple | None = None

    def role_of(self, text: str) -> str:
        return hash_role(text, *self.fractions) if self.fractions else self.role

    def roles(self) -> set:
        if not self.fractions:
            return {self.role}
        return {"train", *(["val"] if self.fractions[0] > 0 else []), *(["test"] if self.fractions[1] > 0 else [])}


@dataclasses.dataclass
class Settings:
    """What reading a labelled-text source depends on (part of the fitting pass's cache key)."""

    text_column: str = ""
    label_column: str = ""
    label_names: tuple = ()
    skip_bad_rows: bool = False


class LabelledStream(StreamedSplit):
    """One split of a labelled-text source (:class:`~seqapps.data.streaming.StreamedSplit`): ``rows()``
    yields ``(text, label)`` pairs, ``materialize()`` returns ``(texts, labels)``; empty training texts
    are left out."""

    def keep(self, piece, bad):
        for text, label in piece_rows(piece, self.settings, bad):
            if piece.role_of(text) == self.role and (self.role != "train" or text.strip()):
                yield text, label


def piece_rows(piece: Piece, settings: Settings, bad: BadRows, lines: ByteLines | None = None):
    """``(text, label)`` of every row of ``piece``; labels stripped, ids named by ``data.label_names``."""
    names = settings.label_names
    if piece.path is None:
        source = piece.rows
    else:
        source = _file_rows(piece.path, settings, bad, lines)
    for item in source:
        if piece.path is None:
            text, label = item
            where = "the data"
        else:
            where, (text, label) = f"{piece.path}:{item[0]}", item[1]
        label = label.strip()
        if names:
            if not (label.lstrip("-").isdigit() and 0 <= int(label) < len(names)):
                bad.bad(where, f"label {label!r} is not an id 0..{len(names) - 1} of data.label_names "
                               f"({', '.join(names)}); give one name per id from 0, or leave data.label_names "
                               "empty to use the labels as they are")
                continue
            label = names[int(label)]
        yield text, label


def _file_rows(path: Path, settings: Settings, bad: BadRows, lines: ByteLines | None):
    from seqapps.data.streaming import table_header

    header = table_header(path)
    text = pick_column(header, settings.text_column, TEXT_COLUMNS, "text", path)
    label = pick_column(header, settings.label_column, LABEL_COLUMNS, "label", path)
    return table_rows(path, [text, label], bad, lines)


# -- the source -------------------------------------------------------------------------------------
def pieces_of(data_cfg, task: str, data_dir=None) -> tuple[list[Piece], Settings, object]:
    """The pieces of ``data_cfg.source`` and the settings that read them."""
    source = sources.resolve(data_cfg.source, task, data_dir)
    opts = source.options
    settings = Settings(data_cfg.text_column or opts.get("text_column", ""),
                        data_cfg.label_column or opts.get("label_column", ""),
                        tuple(data_cfg.label_names or opts.get("label_names") or ()),
                        bool(getattr(data_cfg, "skip_bad_rows", False)))
    fractions = (opts.get("val_fraction", data_cfg.val_fraction), opts.get("test_fraction", data_cfg.test_fraction))
    _check_fractions(*fractions)
    if source.kind == "demo":
        rows = tuple(importlib.import_module(f"tasks.{task}.demo").examples())
        return [Piece(rows=rows, fractions=fractions)], settings, source
    if source.kind == "tfds":
        parts = sources.read_tfds(source.tfds_name, lambda ex, split: tuple(_from_tfds(ex, source.tfds_name, data_cfg)),
                          0.0, lambda data, v, t: (data, None, None))
        return _split_pieces({k: Piece(rows=v, role=k) for k, v in parts.items() if v}, fractions), settings, source
    files = dict(source.paths)
    if "path" in files:
        path = files.pop("path")
        files = find_split_files(path, TABLE_SUFFIXES) if path.is_dir() else {"all": path}
    if "all" in files:
        return [Piece(path=files["all"], fractions=fractions)], settings, source
    return _split_pieces({k: Piece(path=p, role=k) for k, p in files.items()}, fractions), settings, source


def _split_pieces(pieces: dict, fractions) -> list[Piece]:
    """Split pieces as given; without a validation piece, the training piece's texts are split by
    hash into training and validation (``data.val_fraction``)."""
    if "val" not in pieces:
        train = pieces["train"]
        pieces["train"] = dataclasses.replace(train, fractions=(fractions[0] or 0.1, 0.0))
    return list(pieces.values())


def _check_fractions(val_fraction, test_fraction):
    for fraction, name in ((val_fraction, "data.val_fraction"), (test_fraction, "data.test_fraction")):
        if not 0 <= fraction < 1:
            raise DataError(f"{name} must be in [0, 1), got {fraction}")
    if val_fraction + test_fraction >= 1:
        raise DataError(f"data.val_fraction={val_fraction} and data.test_fraction={test_fraction} leave no "
                        "training data")


def load_labelled_stream(data_cfg, task: str, data_dir=None, vocab_cap: int = 0, verbose: bool = True) -> Splits:
    """Streamed splits of ``data_cfg.source`` and, in ``info``, what the fitting pass found:
    ``labels``, ``tokens`` (ranked by count, as TextVectorization ranks them), ``counts`` per
    split, ``longest`` text per split (in words, at most ``data.max_length``) and ``bad_rows``."""
    pieces, settings, source = pieces_of(data_cfg, task, data_dir)
    cap = vocab_cap or max(50 * data_cfg.vocab_size, 500_000)
    fit_sample = int(getattr(data_cfg, "fit_sample", 0) or 0)
    files = [p.path for p in pieces if p.path is not None]
    key = {"task": task, "settings": dataclasses.asdict(settings), "fractions": [p.fractions for p in pieces],
           "roles": [p.role for p in pieces], "cap": cap, "fit_sample": fit_sample,
           "max_length": data_cfg.max_length}
    fit = fitting_pass(f"{task} on {data_cfg.source}", files, key,
                       lambda progress: _fit(pieces, settings, cap, fit_sample, data_cfg.max_length, progress,
                                             data_cfg.source),
                       cache=bool(files) and source.kind != "tfds", verbose=verbose)
    if fit["bad_rows"]:
        import sys

        print(f"skipped {fit['bad_rows']:,} bad row(s) (data.skip_bad_rows); the first: {fit['first_bad']}",
              file=sys.stderr)
    labels = fit["labels"]
    streams = {role: LabelledStream(pieces, role, settings, fit["counts"].get(role, 0), data_cfg.source)
               for role in ("train", "val", "test")}
    has = {role for p in pieces for role in p.roles()}
    return Splits(streams["train"], streams["val"], streams["test"] if "test" in has else None,
                  {"labels": labels, "fit": fit})


def _fit(pieces, settings, cap, fit_sample, max_length, progress, what) -> dict:
    """The fitting pass: one read of every piece."""
    import tensorflow as tf

    counter = TokenCounter(cap)
    counts, longest, labels_of = {"train": 0, "val": 0, "test": 0}, {"train": 1, "val": 1, "test": 1}, {}
    bad = BadRows(settings.skip_bad_rows)
    done_bytes, batch = 0, {"train": [], "val": [], "test": []}
    sampled, read_bytes, total_bytes = False, 0, sum(p.path.stat().st_size for p in pieces if p.path is not None)

    def flush(role):
        texts = batch[role]
        if not texts:
            return
        words = textlib.words(tf.constant(texts))
        lengths = words.row_lengths().numpy()
        longest[role] = max(longest[role], min(int(lengths.max()), max_length))
        if role == "train":
            tokens, _, n = tf.unique_with_counts(words.flat_values)
            counter.add(tokens.numpy().tolist(), n.numpy().tolist())
        batch[role] = []

    for piece in pieces:
        lines = ByteLines(piece.path) if piece.path is not None else None
        for text, label in piece_rows(piece, settings, bad, lines):
            role = piece.role_of(text)
            if role == "train" and not text.strip():
                continue
            counts[role] += 1
            seen = labels_of.setdefault(role, {})
            if label not in seen:
                if len(seen) >= MAX_LABELS:
                    raise DataError(f"{what}: more than {MAX_LABELS:,} distinct labels in the {role} split; "
                                    "is data.label_column the label column?")
                seen[label] = None
            batch[role].append(text)
            if len(batch[role]) >= FIT_BATCH:
                flush(role)
            if counts["train"] % 1000 == 0:
                progress(sum(counts.values()), done_bytes + (lines.bytes if lines else 0))
            if fit_sample and counts["train"] >= fit_sample:
                sampled = True
                read_bytes = done_bytes + (lines.bytes if lines else 0)
                break
        if lines is not None:
            done_bytes += lines.bytes
        if sampled:
            break
    for role in batch:
        flush(role)
    progress(sum(counts.values()), done_bytes)
    if sampled and read_bytes:  # the sizes of the splits, estimated from the share of bytes read
        scale = total_bytes / read_bytes
        counts = {k: int(round(v * scale)) for k, v in counts.items()}
    return {"counts": counts, "longest": longest, "labels": sorted(labels_of.get("train", {}), key=_label_key),
            "labels_of": {k: list(v) for k, v in labels_of.items()},
            "tokens": [t.decode("utf-8", "replace") for t in counter.ranked()], "tokens_dropped": counter.dropped,
            "bad_rows": bad.count, "first_bad": bad.first, "sampled": sampled}


def check_trainable(fit: dict, source: str) -> None:
    """What training needs of the splits (scoring a model needs none of it): training texts, two labels or
    more, and no validation or test label the training split lacks."""
    labels = fit["labels"]
    if fit["counts"].get("train", 0) == 0:
        raise DataError(f"{source}: no non-empty training texts")
    if len(labels) < 2:
        raise DataError(f"{source}: the training data has {len(labels)} distinct label(s); need at least 2")
    for role in ("val", "test"):
        unknown = sorted(set(fit["labels_of"].get(role, [])) - set(labels), key=_label_key)
        if unknown:
            raise DataError(f"{source}: the {role} split has labels {unknown[:5]} that the training "
                            f"split has not (its labels: {', '.join(labels[:10])})")


def load_labelled_texts(data_cfg, task: str, data_dir=None) -> Splits:
    """The splits as ``(texts, labels)`` lists (for peers and tools that need them whole)."""
    splits = load_labelled_stream(data_cfg, task, data_dir, verbose=False)
    return Splits(splits.train.materialize(), splits.val.materialize(),
                  splits.test.materialize() if splits.test is not None else None, {"labels": splits.info["labels"]})


def _from_tfds(examples, name, data_cfg):
    for ex in examples:
        text_key = data_cfg.text_column or next((k for k in TEXT_COLUMNS if k in ex), None)
        label_key = data_cfg.label_column or next((k for k in LABEL_COLUMNS if k in ex), None)
        if text_key is None or label_key is None:
            raise DataError(f"tfds:{name}: cannot find text and label features in {sorted(ex)}; "
                            "set data.text_column and data.label_column")
        label = str(int(ex[label_key])) if np.ndim(ex[label_key]) == 0 else str(ex[label_key])
        yield ex[text_key].decode("utf-8", "replace"), label


def _label_key(label: str):
    return (0, int(label), "") if label.lstrip("-").isdigit() else (1, 0, label)


class TextClassificationData(Preprocessing):
    """Vocabulary and label names of a text classifier; files ``vocab.txt``, ``labels.txt``."""

    def __init__(self, vocabulary: list[str], labels: list[str], max_length: int, vectors=None):
        self.vocabulary, self.labels, self.max_length = list(vocabulary), list(labels), max_length
        self.vectors = vectors  # the vocabulary's pretrained vectors [len(vocabulary), dim], held while training

    @classmethod
    def fit(cls, cfg, splits) -> "TextClassificationData":
        """The ``data.vocab_size`` most frequent training tokens (with the padding and unknown
        entries, as ``TextVectorization.get_vocabulary`` lists them) and the labels."""
        check_trainable(splits.info["fit"], cfg.data.source)
        tokens = splits.info["fit"]["tokens"][:max(cfg.data.vocab_size - 2, 0)]
        prep = cls([textlib.PAD, textlib.UNK, *tokens], splits.info["labels"], cfg.data.max_length)
        prep.word_vectors(getattr(cfg.model, "word_vectors", ""), cfg.train.seed)  # a bad file fails before a run
        return prep

    def word_vectors(self, spec: str, seed: int = 0):
        """The vocabulary's rows of the vectors ``spec`` names (``model.word_vectors``: a file, a
        ``word_vectors`` run directory or ``count:DATASETS``; see :mod:`seqapps.data.vectors`), read
        once; None without ``spec``. The padding and unknown rows are zero."""
        if not spec:
            return None
        if self.vectors is None:
            import tensorflow as tf

            from seqapps.data.vectors import resolve_vectors, vocabulary_vectors

            path = resolve_vectors(spec, lambda texts: textlib.words(tf.constant(texts)))
            self.vectors = vocabulary_vectors(path, self.vocabulary, skip=2, seed=seed)[0]
        return self.vectors

    def save(self, run_dir) -> None:
        save_vocab(run_dir, "vocab.txt", self.vocabulary)
        save_vocab(run_dir, "labels.txt", self.labels)

    @classmethod
    def load(cls, run_dir, cfg=None) -> "TextClassificationData":
        return cls(cls.read_vocab(run_dir, "vocab.txt"), cls.read_vocab(run_dir, "labels.txt"), cfg.data.max_length)

    @functools.cache
    def vectorizer(self):
        return textlib.vectorizer(self.vocabulary)

    @functools.cache
    def ragged_ids(self):
        """``texts -> ragged ids`` in plain TF ops (for tf.data on any backend), the vectorizer's ids."""
        return textlib.vectorizer(self.vocabulary, ragged=True)

    def label_ids(self) -> dict:
        return {name: i for i, name in enumerate(self.labels)}

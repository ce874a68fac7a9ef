"""Labelled texts (text -> class) from any source, and their vocabularies.

Sources: ``demo``, a named dataset, a CSV/TSV file (split into train/val/test by
``data.val_fraction`` and ``data.test_fraction``), a folder holding ``train.*``,
``dev.*``/``val*.*`` and ``test.*`` tables, or ``tfds:NAME``.
"""

from __future__ import annotations

import functools
import importlib

import numpy as np

from seqapps.data import text as textlib
from seqapps.data.preprocessing import Preprocessing, save_vocab
from seqapps.data.readers import pick_column, read_table
from seqapps.data.sources import Reader, load_splits
from seqapps.data.splits import split
from seqapps.core.errors import DataError
from seqapps.core.task import Splits

TEXT_COLUMNS = ["sentence", "text", "review", "content", "document"]
LABEL_COLUMNS = ["label", "sentiment", "class", "polarity", "target"]
TABLE_SUFFIXES = (".csv", ".tsv", ".txt", ".tab")


def load_labelled_texts(data_cfg, task: str, data_dir=None) -> Splits:
    """``(texts, labels)`` per split; pieces are split in a seeded shuffled order."""
    parts, source = load_splits(data_cfg, task, reader(data_cfg, task), data_dir)
    label_names = list(data_cfg.label_names or source.options.get("label_names") or [])
    parts = {k: (list(v[0]), list(v[1])) for k, v in parts.items() if v is not None}
    if label_names:
        _check_label_ids([y for _, labels in parts.values() for y in labels], label_names, data_cfg.source)
        parts = {k: (texts, [label_names[int(y)] for y in labels]) for k, (texts, labels) in parts.items()}
    train_texts, train_labels = parts["train"]
    keep = [i for i, t in enumerate(train_texts) if t.strip()]
    parts["train"] = ([train_texts[i] for i in keep], [train_labels[i] for i in keep])
    if not keep:
        raise DataError(f"{data_cfg.source}: no non-empty training texts")
    labels = sorted(set(parts["train"][1]), key=_label_key)
    if len(labels) < 2:
        raise DataError(f"{data_cfg.source}: the training data has {len(labels)} distinct label(s); need at least 2")
    return Splits(parts["train"], parts["val"], parts.get("test"), {"labels": labels})


def reader(data_cfg, task: str) -> Reader:
    def demo(cfg):
        rows = importlib.import_module(f"tasks.{task}.demo").examples()
        return [t for t, _ in rows], [y for _, y in rows]

    def read(path, cfg, options):
        frame = read_table(path)
        text = pick_column(frame, cfg.text_column or options.get("text_column"), TEXT_COLUMNS, "text", path)
        label = pick_column(frame, cfg.label_column or options.get("label_column"), LABEL_COLUMNS, "label", path)
        return frame[text].astype(str).tolist(), frame[label].astype(str).str.strip().tolist()

    def shuffled(data, val_fraction, test_fraction):
        return split(data, val_fraction, test_fraction, order="shuffle", what=data_cfg.source)

    return Reader(demo, read, _from_tfds, TABLE_SUFFIXES, shuffled)


def _from_tfds(examples, name, split_name, data_cfg):
    texts, labels = [], []
    for ex in examples:
        text_key = data_cfg.text_column or next((k for k in TEXT_COLUMNS if k in ex), None)
        label_key = data_cfg.label_column or next((k for k in LABEL_COLUMNS if k in ex), None)
        if text_key is None or label_key is None:
            raise DataError(f"tfds:{name}: cannot find text and label features in {sorted(ex)}; "
                            "set data.text_column and data.label_column")
        texts.append(ex[text_key].decode("utf-8", "replace"))
        labels.append(str(int(ex[label_key])) if np.ndim(ex[label_key]) == 0 else str(ex[label_key]))
    return texts, labels


def _check_label_ids(labels: list[str], names: list[str], source: str) -> None:
    """With ``data.label_names``, every label must be an integer id ``0..len(names)-1``."""
    bad = sorted({y for y in labels if not (y.lstrip("-").isdigit() and 0 <= int(y) < len(names))}, key=_label_key)
    if bad:
        raise DataError(f"{source}: data.label_names names the label ids 0..{len(names) - 1} "
                        f"({', '.join(names)}), but the data has labels {bad[:5]}; give one name per id from 0, "
                        "or leave data.label_names empty to use the labels as they are")


def _label_key(label: str):
    return (0, int(label), "") if label.lstrip("-").isdigit() else (1, 0, label)


class TextClassificationData(Preprocessing):
    """Vocabulary and label names of a text classifier; files ``vocab.txt``, ``labels.txt``."""

    def __init__(self, vocabulary: list[str], labels: list[str], max_length: int):
        self.vocabulary, self.labels, self.max_length = list(vocabulary), list(labels), max_length

    @classmethod
    def fit(cls, cfg, splits) -> "TextClassificationData":
        texts, _ = splits.train
        return cls(textlib.fit_vocabulary(texts, cfg.data.vocab_size), splits.info["labels"], cfg.data.max_length)

    def save(self, run_dir) -> None:
        save_vocab(run_dir, "vocab.txt", self.vocabulary)
        save_vocab(run_dir, "labels.txt", self.labels)

    @classmethod
    def load(cls, run_dir, cfg=None) -> "TextClassificationData":
        return cls(cls.read_vocab(run_dir, "vocab.txt"), cls.read_vocab(run_dir, "labels.txt"), cfg.data.max_length)

    @functools.cache
    def vectorizer(self):
        return textlib.vectorizer(self.vocabulary)

    def encode(self, texts, labels):
        """Ragged token ids (cut to ``max_length``) and integer label ids."""
        texts = np.asarray(texts, dtype=object)
        ids = textlib.vectorizer(self.vocabulary, ragged=True)(texts)[:, :self.max_length]
        index = {name: i for i, name in enumerate(self.labels)}
        unknown = sorted({y for y in labels if y not in index})
        if unknown:
            raise DataError(f"labels {unknown[:5]} are not among the trained labels {self.labels}")
        return ids, np.asarray([index[y] for y in labels], dtype=np.int32)

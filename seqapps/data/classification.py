"""Labelled texts (text -> class) from any source, and their vocabularies.

Sources: ``demo``, a named dataset, a CSV/TSV file (split into train/val/test by
``data.val_fraction`` and ``data.test_fraction``), a folder holding ``train.*``,
``dev.*``/``val*.*`` and ``test.*`` tables, or ``tfds:NAME``.
"""

from __future__ import annotations

import functools
import importlib
from pathlib import Path

import numpy as np

from seqapps.data import text as textlib
from seqapps.data.pipeline import split_indices
from seqapps.data.readers import pick_column, read_table
from seqapps.data.sources import resolve, tfds_load
from seqapps.errors import DataError
from seqapps.task import Splits

TEXT_COLUMNS = ["sentence", "text", "review", "content", "document"]
LABEL_COLUMNS = ["label", "sentiment", "class", "polarity", "target"]
SPLIT_NAMES = {"train": ["train"], "val": ["dev", "val", "valid", "validation"], "test": ["test"]}


def load_labelled_texts(data_cfg, task: str, data_dir=None) -> Splits:
    source = resolve(data_cfg.source, task, data_dir)
    label_names = list(data_cfg.label_names or source.options.get("label_names") or [])
    if source.kind == "demo":
        rows = importlib.import_module(f"seqapps.data.demo.{task}").examples()
        parts = _split_rows([t for t, _ in rows], [y for _, y in rows], data_cfg)
    elif source.kind == "tfds":
        parts = _from_tfds(source.tfds_name, data_cfg, data_dir)
    else:
        files = dict(source.paths)
        if "path" in files:
            path = files.pop("path")
            files = _find_split_files(path) if path.is_dir() else {"all": path}
        columns = (data_cfg.text_column or source.options.get("text_column"),
                   data_cfg.label_column or source.options.get("label_column"))
        tables = {split: _read(path, *columns) for split, path in files.items()}
        parts = _split_rows(*tables.pop("all"), data_cfg) if "all" in tables else tables
        if "val" not in parts:
            texts, labels = parts["train"]
            split = _split_rows(texts, labels, data_cfg, test=False)
            parts = {**parts, "train": split["train"], "val": split["val"]}
    parts = {k: (list(t), [_name(y, label_names) for y in ys]) for k, (t, ys) in parts.items()}
    train_texts, train_labels = parts["train"]
    keep = [i for i, t in enumerate(train_texts) if t.strip()]
    parts["train"] = ([train_texts[i] for i in keep], [train_labels[i] for i in keep])
    if not keep:
        raise DataError(f"{data_cfg.source}: no non-empty training texts")
    labels = sorted(set(parts["train"][1]), key=_label_key)
    if len(labels) < 2:
        raise DataError(f"{data_cfg.source}: the training data has {len(labels)} distinct label(s); need at least 2")
    return Splits(parts["train"], parts["val"], parts.get("test"), {"labels": labels})


def _read(path, text_column, label_column):
    frame = read_table(path)
    text = pick_column(frame, text_column, TEXT_COLUMNS, "text", path)
    label = pick_column(frame, label_column, LABEL_COLUMNS, "label", path)
    return frame[text].astype(str).tolist(), frame[label].astype(str).str.strip().tolist()


def _find_split_files(folder: Path) -> dict:
    found = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in {".csv", ".tsv", ".txt", ".tab"}:
            continue
        for split, names in SPLIT_NAMES.items():
            if any(path.stem.lower() == n or path.stem.lower().startswith(n + "_") for n in names):
                found.setdefault(split, path)
    if "train" not in found:
        raise DataError(f"{folder}: expected a train.csv or train.tsv (and optionally dev/test) in the folder")
    return found


def _split_rows(texts, labels, data_cfg, test=True) -> dict:
    try:
        tr, va, te = split_indices(len(texts), data_cfg.val_fraction, data_cfg.test_fraction if test else 0.0)
    except ValueError:
        raise DataError(f"{data_cfg.source}: {len(texts)} examples are too few to split") from None
    pick = lambda idx: ([texts[i] for i in idx], [labels[i] for i in idx])  # noqa: E731
    return {"train": pick(tr), "val": pick(va), **({"test": pick(te)} if test else {})}


def _from_tfds(name, data_cfg, data_dir):
    import tensorflow_datasets as tfds

    def read(split):
        ds = tfds_load(name, split, data_dir=None)
        texts, labels = [], []
        for ex in tfds.as_numpy(ds):
            text_key = data_cfg.text_column or next((k for k in TEXT_COLUMNS if k in ex), None)
            label_key = data_cfg.label_column or next((k for k in LABEL_COLUMNS if k in ex), None)
            if text_key is None or label_key is None:
                raise DataError(f"tfds:{name}: cannot find text and label features in {sorted(ex)}; "
                                "set data.text_column and data.label_column")
            texts.append(ex[text_key].decode("utf-8", "replace"))
            labels.append(str(int(ex[label_key])) if np.ndim(ex[label_key]) == 0 else str(ex[label_key]))
        return texts, labels

    parts = {"train": read("train"), "test": read("test")}
    split = _split_rows(*parts["train"], data_cfg, test=False)
    return {**parts, "train": split["train"], "val": split["val"]}


def _name(label: str, names: list[str]) -> str:
    if names and label.lstrip("-").isdigit() and 0 <= int(label) < len(names):
        return names[int(label)]
    return label


def _label_key(label: str):
    return (0, int(label), "") if label.lstrip("-").isdigit() else (1, 0, label)


class TextClassificationData:
    """Vocabulary and label names of a text classifier; files ``vocab.txt``, ``labels.txt``."""

    def __init__(self, vocabulary: list[str], labels: list[str], max_length: int):
        self.vocabulary, self.labels, self.max_length = list(vocabulary), list(labels), max_length

    def save(self, run_dir) -> None:
        textlib.save_lines(Path(run_dir) / "vocab.txt", self.vocabulary)
        textlib.save_lines(Path(run_dir) / "labels.txt", self.labels)

    @classmethod
    def load(cls, run_dir, max_length: int) -> "TextClassificationData":
        run_dir = Path(run_dir)
        return cls(textlib.load_lines(run_dir / "vocab.txt"), textlib.load_lines(run_dir / "labels.txt"), max_length)

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

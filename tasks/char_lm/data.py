"""Plain text for character language models: reading a file or a folder, splitting it
into contiguous parts, and the character vocabulary.

Sources (read by :func:`seqapps.data.sources.load_splits`): ``demo``; a named dataset
(one text file); a text file; a folder, whose text files (by suffix, hidden ones
skipped) are read in sorted order, recursively, joined by blank lines; ``tfds:NAME``
with a ``text`` feature (``tfds:tiny_shakespeare``), each split's examples joined by
newlines. One text is split contiguously: the first part trains, then
``data.val_fraction`` of the characters validate, then ``data.test_fraction`` test.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import keras
import numpy as np

from seqapps.data.preprocessing import Preprocessing, save_json
from seqapps.data.readers import read_text_file
from seqapps.data.sources import Reader, load_splits
from seqapps.data.splits import split
from seqapps.core.errors import DataError
from seqapps.core.task import Splits

TEXT_SUFFIXES = {"", ".txt", ".text", ".md", ".rst", ".csv", ".tsv", ".py", ".tex", ".html", ".xml", ".json"}


def read_text_source(path: Path) -> str:
    """A text file, or every text file in a folder (sorted, recursively), joined by blank lines."""
    path = Path(path)
    if path.is_file():
        return read_text_file(path)
    files = sorted(p for p in path.rglob("*") if p.is_file() and not any(
        part.startswith(".") for part in p.relative_to(path).parts) and p.suffix.lower() in TEXT_SUFFIXES)
    if not files:
        raise DataError(f"{path}: no text files in the folder (expected .txt files or files without suffix)")
    return "\n\n".join(read_text_file(p) for p in files)


def load_texts(data_cfg, task: str, data_dir=None) -> Splits:
    """Training, validation and (optional) test text (see the module docstring)."""
    def demo(cfg):
        return importlib.import_module(f"tasks.{task}.demo").text()

    def read(path, cfg, options):
        text = read_text_source(path)
        if not text.strip():
            raise DataError(f"{cfg.source}: the text is empty")
        return text

    def contiguous(text, val_fraction, test_fraction):
        train, val, test = split(text, val_fraction, test_fraction, what=data_cfg.source, unit="characters")
        if len(train) < 2 or len(val) < 2:
            raise DataError(f"{data_cfg.source}: {len(text)} characters are too few to split into training and "
                            "validation text")
        return train, val, test

    parts, _ = load_splits(data_cfg, task, Reader(demo, read, _from_tfds, (), contiguous, "characters"), data_dir)
    return Splits(parts["train"], parts["val"], parts["test"] or None)


def _from_tfds(examples, name, split_name, data_cfg) -> str:
    pieces = []
    for ex in examples:
        if "text" not in ex:
            raise DataError(f"tfds:{name}: no 'text' feature (features: {', '.join(sorted(ex))})")
        pieces.append(ex["text"].decode("utf-8", "replace"))
    return "\n".join(pieces)


# -- the character vocabulary --------------------------------------------------------------------
class CharVocab(Preprocessing):
    """Characters of the training text; id 0 is the unknown character. File ``chars.json``.

    ``warmup`` is a passage of the training text ending at a paragraph break. Every
    serving function reads it before its input, so reading starts from the state the
    model is used to: a model trained with carried state almost never saw the zero
    state, and a stateful LSTM primed from zero can babble for a hundred characters.
    """

    FILE = "chars.json"
    task = "char_lm"
    WARMUP = 256

    def __init__(self, chars: list[str], start: str, warmup: str = ""):
        self.chars, self.start = list(chars), start
        self.index = {c: i + 1 for i, c in enumerate(self.chars)}
        self.warmup = warmup or start

    @classmethod
    def fit(cls, cfg, splits) -> "CharVocab":
        return cls.from_text(splits.train)

    @classmethod
    def from_text(cls, text: str) -> "CharVocab":
        counts: dict[str, int] = {}
        for c in text:
            counts[c] = counts.get(c, 0) + 1
        start = "\n" if "\n" in counts else max(counts, key=counts.get)
        end = text.rfind("\n\n")
        end = end + 2 if end + 2 >= cls.WARMUP else len(text)
        return cls(sorted(counts), start, text[max(0, end - cls.WARMUP):end])

    @property
    def size(self) -> int:
        return len(self.chars) + 1

    @property
    def start_id(self) -> int:
        return self.index[self.start]

    def save(self, run_dir) -> None:
        save_json(run_dir, self.FILE, {"chars": self.chars, "start": self.start, "warmup": self.warmup})

    @classmethod
    def load(cls, run_dir, cfg=None) -> "CharVocab":
        data = cls.read_json(run_dir, cls.FILE)
        return cls(data["chars"], data["start"], data.get("warmup", ""))

    def encode(self, text: str) -> np.ndarray:
        get = self.index.get
        return np.fromiter((get(c, 0) for c in text), dtype=np.int32, count=len(text))

    def lookup(self):
        """char -> id in the graph (unknown -> 0); built once per vocabulary object."""
        if not hasattr(self, "_lookup"):
            self._lookup = keras.layers.StringLookup(vocabulary=self.chars, num_oov_indices=1, mask_token=None,
                                                     output_mode="int", name="char_lookup")
            self._lookup.build(None)
        return self._lookup

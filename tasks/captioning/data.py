"""Image captioning data: images with one or more reference captions each.

Sources (``data.source``):

- ``demo``: coloured shapes drawn in code (:mod:`tasks.captioning.demo`);
- a named dataset (``flickr8k_1000``): an image folder plus a captions table;
- a folder holding ``captions.txt|csv|tsv`` (columns ``image,caption``, one row per
  caption) or a COCO-style ``*.json``, with the images beside it or in ``images/``;
- a captions CSV/TSV file, or a COCO-style JSON file (``{"images": [{"id", "file_name"}],
  "annotations": [{"image_id", "caption"}]}``), images resolved next to it or in ``images/``;
- ``tfds:coco_captions`` (downloads once, needs internet): its train / val / test splits.

A source of one piece is split by sorted file name (:func:`seqapps.data.splits.split`):
the first part trains, the next validates, the last tests (``data.val_fraction`` /
``data.test_fraction``; 800/100/100 for 1,000). Every caption of a training image is a
training example.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import os
from pathlib import Path

import numpy as np

from seqapps.data import cache_folder
from seqapps.data import text as textlib
from seqapps.data.readers import pick_column, read_table
from seqapps.data.preprocessing import Preprocessing, save_vocab
from seqapps.data.sources import Reader, load_splits
from seqapps.data.splits import split
from seqapps.core.errors import DataError
from seqapps.core.task import Splits

PAD, UNK, START, END = "", "[UNK]", "[START]", "[END]"
SPECIALS = [PAD, UNK, START, END]
IMAGE_COLUMNS = ["image", "image_name", "file_name", "filename", "file", "path"]
CAPTION_COLUMNS = ["caption", "text", "sentence", "description", "comment"]
TABLES = ("captions.txt", "captions.csv", "captions.tsv", "results.csv", "captions.json")


@dataclasses.dataclass
class CaptionSet:
    """Images (file paths or encoded bytes) and their reference captions."""

    images: list
    captions: list[list[str]]
    names: list[str]

    def __len__(self):
        return len(self.images)

    def read(self, i) -> bytes:
        item = self.images[i]
        if isinstance(item, bytes):
            return item
        try:
            return Path(item).read_bytes()
        except OSError as e:
            raise DataError(f"{item}: {e.strerror}") from None

    def subset(self, idx) -> "CaptionSet":
        return CaptionSet([self.images[i] for i in idx], [self.captions[i] for i in idx],
                          [self.names[i] for i in idx])


def load_caption_data(data_cfg, task: str, data_dir=None) -> Splits:
    """Images and their captions per split (see the module docstring)."""
    def demo(cfg):
        from tasks.captioning.demo import examples

        rows = examples(size=max(32, int(getattr(cfg, "demo_image_size", 64))))
        return CaptionSet([b for b, _ in rows], [c for _, c in rows], [f"demo-{i:04d}.png" for i in range(len(rows))])

    def read(path, cfg, options):
        return read_path(path, getattr(cfg, "image_column", ""), getattr(cfg, "caption_column", ""))

    def in_order(data, val_fraction, test_fraction):
        return split(data, val_fraction, test_fraction, what=data_cfg.source, unit="images")

    parts, _ = load_splits(data_cfg, task, Reader(demo, read, _from_tfds, (), in_order, "images"), data_dir)
    sizes = {k: len(v) if v is not None else 0 for k, v in parts.items()}
    return Splits(parts["train"], parts["val"], parts["test"] if sizes["test"] else None, {"images": sizes})


def read_path(path: Path, image_column: str = "", caption_column: str = "") -> CaptionSet:
    """A captions file, or a folder holding one (see the module docstring)."""
    path = Path(path)
    if path.is_dir():
        for name in TABLES:
            if (path / name).is_file():
                return read_path(path / name, image_column, caption_column)
        found = sorted(path.glob("*.json")) + sorted(path.glob("*.csv")) + sorted(path.glob("*.tsv"))
        if len(found) != 1:
            raise DataError(f"{path}: expected one captions file in the folder (captions.txt, captions.csv, "
                            f"or a COCO-style .json), found {len(found) or 'none'}")
        return read_path(found[0], image_column, caption_column)
    if path.suffix.lower() == ".json":
        return read_coco_json(path)
    return read_caption_table(path, None, image_column, caption_column)


def _image_dir(table: Path, first_image: str, explicit=None) -> Path:
    if explicit is not None:
        return Path(explicit)
    for folder in (table.parent / "images", table.parent, table.parent / "Images"):
        if (folder / first_image).is_file():
            return folder
    return table.parent / "images" if (table.parent / "images").is_dir() else table.parent


def _collect(pairs, image_dir: Path, origin) -> CaptionSet:
    """(image name, caption) rows -> a CaptionSet sorted by image name; names must exist."""
    grouped: dict[str, list[str]] = collections.OrderedDict()
    for name, caption in pairs:
        caption = " ".join(str(caption).split())
        if name and caption:
            grouped.setdefault(name, []).append(caption)
    if not grouped:
        raise DataError(f"{origin}: no (image, caption) rows with both fields filled")
    names = sorted(grouped)
    missing = [n for n in names if not (image_dir / n).is_file()]
    if missing:
        raise DataError(f"{origin}: {len(missing)} of {len(names)} images are not in {image_dir} "
                        f"(first: {missing[0]}); expected them beside the captions file or in images/")
    return CaptionSet([str(image_dir / n) for n in names], [grouped[n] for n in names], names)


def _read_frame(path: Path):
    """``read_table``, except that a ``.txt`` whose header has commas and no tab is CSV (Flickr8k's)."""
    import csv

    import pandas as pd

    if path.is_file() and path.suffix.lower() == ".txt":
        with open(path, encoding="utf-8", errors="replace") as f:
            header = f.readline()
        if "\t" not in header and "," in header:
            try:
                frame = pd.read_csv(path, sep=",", quoting=csv.QUOTE_MINIMAL, keep_default_na=False, dtype=str,
                                    encoding="utf-8", on_bad_lines="error")
            except UnicodeDecodeError:
                raise DataError(f"{path}: not UTF-8 text") from None
            except pd.errors.ParserError as e:
                raise DataError(f"{path}: malformed CSV: {str(e).strip().splitlines()[-1]}") from None
            frame.columns = [str(c).strip() for c in frame.columns]
            if frame.empty:
                raise DataError(f"{path}: no data rows after the header")
            return frame
    return read_table(path)


def read_caption_table(path, image_dir=None, image_column: str = "", caption_column: str = "") -> CaptionSet:
    """A CSV/TSV with one row per (image, caption); images in ``image_dir`` or found beside it."""
    path = Path(path)
    frame = _read_frame(path)
    image = pick_column(frame, image_column, IMAGE_COLUMNS, "image", path)
    caption = pick_column(frame, caption_column, CAPTION_COLUMNS, "caption", path)
    names = frame[image].astype(str).str.strip().tolist()
    folder = _image_dir(path, next((n for n in names if n), ""), image_dir)
    return _collect(zip(names, frame[caption].astype(str)), folder, path)


def read_coco_json(path, image_dir=None) -> CaptionSet:
    """COCO captions: ``images`` (``id``, ``file_name``) and ``annotations`` (``image_id``, ``caption``)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"{path}: not a readable JSON file ({e})") from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) \
            or not isinstance(data.get("annotations"), list):
        raise DataError(f"{path}: expected COCO captions JSON with 'images' and 'annotations' lists")
    try:
        files = {img["id"]: str(img["file_name"]) for img in data["images"]}
        pairs = [(files[a["image_id"]], a["caption"]) for a in data["annotations"]]
    except (KeyError, TypeError) as e:
        raise DataError(f"{path}: an image needs 'id' and 'file_name', an annotation 'image_id' (of a listed "
                        f"image) and 'caption' (problem: {e})") from None
    folder = _image_dir(path, pairs[0][0] if pairs else "", image_dir)
    return _collect(pairs, folder, path)


def _from_tfds(examples, name, split_name, data_cfg) -> CaptionSet:
    import tensorflow as tf

    images, captions, names = [], [], []
    for i, ex in enumerate(examples):
        if "image" not in ex or "captions" not in ex:
            raise DataError(f"tfds:{name}: expected 'image' and 'captions' features, got {sorted(ex)}")
        images.append(tf.io.encode_jpeg(ex["image"]).numpy())
        captions.append([t.decode("utf-8") for t in np.atleast_1d(ex["captions"]["text"])])
        names.append(f"{name}-{split_name}-{i}")
    return CaptionSet(images, captions, names)


# -- vocabulary ------------------------------------------------------------------------------
def tokenize(captions) -> list[list[str]]:
    """The shared text standardization (lower case, punctuation split off), then words."""
    if not len(captions):
        return []
    return [t.decode("utf-8").split() for t in textlib.standardize(list(captions)).numpy()]


class CaptionVocab(Preprocessing):
    """Word list (``vocab.txt``): ``PAD, [UNK], [START], [END]`` then words by frequency."""

    def __init__(self, words: list[str], max_length: int):
        self.words, self.max_length = list(words), int(max_length)
        self.index = {w: i for i, w in enumerate(self.words)}

    task = "captioning"

    @classmethod
    def fit(cls, cfg, splits) -> "CaptionVocab":
        d = cfg.data
        return cls.from_captions(splits.train.captions, d.vocab_size, d.min_count, d.max_length)

    @classmethod
    def from_captions(cls, captions_per_image, max_words: int, min_count: int, max_length: int) -> "CaptionVocab":
        counts = collections.Counter(w for caps in captions_per_image for toks in tokenize(caps) for w in toks)
        words = [w for w, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
                 if c >= min_count and w not in SPECIALS]
        return cls(SPECIALS + words[:max(0, max_words - len(SPECIALS))], max_length)

    def save(self, run_dir) -> None:
        save_vocab(run_dir, "vocab.txt", self.words)

    @classmethod
    def load(cls, run_dir, cfg=None) -> "CaptionVocab":
        return cls(cls.read_vocab(run_dir, "vocab.txt"), cfg.data.max_length)

    def __len__(self):
        return len(self.words)

    def encode(self, captions) -> tuple[np.ndarray, np.ndarray]:
        """Teacher-forcing pairs ``[START] w1..wn`` -> ``w1..wn [END]``, [n, max_length + 1], 0-padded."""
        width = self.max_length + 1
        inputs = np.zeros((len(captions), width), np.int32)
        targets = np.zeros((len(captions), width), np.int32)
        for row, toks in enumerate(tokenize(captions)):
            ids = [self.index.get(w, 1) for w in toks[:self.max_length]]
            inputs[row, :len(ids) + 1] = [2] + ids
            targets[row, :len(ids) + 1] = ids + [3]
        return inputs, targets

    def pairs(self, data: CaptionSet):
        """Every (image index, caption) of ``data`` as (image ids, inputs, targets)."""
        image_ids = [i for i, caps in enumerate(data.captions) for _ in caps]
        inputs, targets = self.encode([c for caps in data.captions for c in caps])
        return np.asarray(image_ids, np.int32), inputs, targets


# -- encoder features, cached per image --------------------------------------------------------
def cache_root(explicit: str = "") -> Path:
    return cache_folder(explicit) / "features"


def encoder_features(data: CaptionSet, encode_fn, size: int, cache_dir: Path | None, batch_size: int = 32,
                     dtype=np.float16) -> np.ndarray:
    """``[n, h*w, channels]`` encoder features of every image; with ``cache_dir``, one
    ``.npy`` per image (named by the SHA-1 of its bytes) is reused across runs."""
    import tensorflow as tf

    from seqapps.encoders.images import decode_batch

    out: list = [None] * len(data)
    todo = []
    blobs = {}
    for i in range(len(data)):
        blob = data.read(i)
        path = cache_dir / f"{hashlib.sha1(blob).hexdigest()}.npy" if cache_dir else None
        if path is not None and path.exists():
            try:
                out[i] = np.load(path)
                continue
            except (OSError, ValueError):
                pass  # a damaged cache file is recomputed
        todo.append(i)
        blobs[i] = (blob, path)
    decode = tf.function(lambda b: decode_batch(b, size))
    for start in range(0, len(todo), batch_size):
        chunk = todo[start:start + batch_size]
        pixels, valid = decode(tf.constant([blobs[i][0] for i in chunk]))
        bad = [data.names[i] for i, ok in zip(chunk, valid.numpy()) if not ok]
        if bad:
            raise DataError(f"{len(bad)} image(s) cannot be decoded as JPEG/PNG/GIF/BMP (first: {bad[0]})")
        grid = np.asarray(encode_fn(pixels))
        grid = grid.reshape(grid.shape[0], -1, grid.shape[-1]).astype(dtype)
        for i, g in zip(chunk, grid):
            out[i] = g
            path = blobs[i][1]
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
                np.save(tmp, g)
                os.replace(tmp, path)
    return np.stack(out) if out else np.zeros((0, 1, 1), dtype)


# -- scoring --------------------------------------------------------------------------------------

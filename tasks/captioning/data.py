"""Image captioning data: images with one or more reference captions each, read as a stream.

Sources (``data.source``):

- ``demo``: coloured shapes drawn in code (:mod:`tasks.captioning.demo`);
- a named dataset (``flickr8k_1000``): an image folder plus a captions table;
- a folder holding ``captions.txt|csv|tsv`` (columns ``image,caption``, one row per
  caption) or a COCO-style ``*.json``, with the images beside it or in ``images/``;
- a captions CSV/TSV file, or a COCO-style JSON file (``{"images": [{"id", "file_name"}],
  "annotations": [{"image_id", "caption"}]}``), images resolved next to it or in ``images/``;
- ``tfds:coco_captions`` (downloads once, needs internet): its train / val / test splits, read
  into memory (:class:`CaptionSet`).

Streaming: a captions table is read row by row (:class:`CaptionStream`), never whole; a COCO JSON
is parsed whole (its rows are names and captions, no pixels). What must be fitted comes from a
cached fitting pass (:func:`seqapps.data.streaming.fitting_pass`, keyed by the table's and the
image folder's size and modification time): a first read of the table gathers the image names
(the split needs them all), every image is checked once (opened and decoded at 8 x 8 pixels), and a
second read counts the training captions' words (the vocabulary) and finds the longest caption.
Pixels are never held: training reads and decodes the images of each batch
(:mod:`tasks.captioning.features`).

Splits (``data.split_order``): ``sorted`` (the default) sorts the distinct image names of a
source in one piece; the first part trains, the next validates, the last tests
(``data.val_fraction`` / ``data.test_fraction``; 800/100/100 for Flickr8k's 1,000 images, the
benchmark protocol). The pass holds the distinct names to sort them (about 100 bytes an image);
afterwards a row's split is found by comparing its image name with the first names of the
validation and test parts. ``hash`` puts an image by the MD5 bucket of its name
(:func:`seqapps.data.streaming.hash_role`), for sources too big to sort their names in memory.
Every caption of a training image is a training example.

Bad data: a malformed row (another number of fields than the header) or an image that is missing or
cannot be decoded stops with one line naming the table and the line; ``data.skip_bad_rows=true``
skips such rows (and every caption of such an image) and counts them.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import json
import sys
from pathlib import Path

import numpy as np

from seqapps.core.errors import DataError
from seqapps.core.task import Splits
from seqapps.data import sources
from seqapps.data import text as textlib
from seqapps.data.preprocessing import Preprocessing, save_vocab
from seqapps.data.splits import split, split_sizes
from seqapps.data.streaming import (BadRows, ByteLines, StreamedSplit, TokenCounter, csv_records, fitting_pass,
                                    hash_role, pick_column)

PAD, UNK, START, END = "", "[UNK]", "[START]", "[END]"
SPECIALS = [PAD, UNK, START, END]
IMAGE_COLUMNS = ["image", "image_name", "file_name", "filename", "file", "path"]
CAPTION_COLUMNS = ["caption", "text", "sentence", "description", "comment"]
TABLES = ("captions.txt", "captions.csv", "captions.tsv", "results.csv", "captions.json")
SPLIT_ORDERS = ("sorted", "hash")
CHECK_SIZE = 8        # images are checked by decoding them this small (large JPEGs at 1/8 scale: cheap)
CHECK_BATCH = 8192    # images checked at once
FIT_BATCH = 16384     # captions tokenized at once in the fitting pass
VOCAB_CAP = 2_000_000  # distinct words counted in bounded memory (the rarest dropped past it)


# -- captions in memory ------------------------------------------------------------------------------
@dataclasses.dataclass
class CaptionSet:
    """Images (file paths or encoded bytes) and their reference captions, in memory: a split as
    scoring reads it (:meth:`CaptionStream.materialize`), or a TFDS split. It offers what
    training reads of a :class:`CaptionStream` too: ``rows()``, ``n`` and ``len()`` (images)."""

    images: list
    captions: list[list[str]]
    names: list[str]

    def __len__(self):
        return len(self.images)

    @property
    def n(self) -> int:
        """Caption rows: the training examples."""
        return sum(len(c) for c in self.captions)

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

    def rows(self):
        """``(image name, image (path or bytes), caption)`` for every caption."""
        for name, image, caps in zip(self.names, self.images, self.captions):
            for caption in caps:
                yield name, image, caption

    def distinct_images(self) -> list[tuple[str, object]]:
        return list(zip(self.names, self.images))

    def materialize(self) -> "CaptionSet":
        return self


# -- one piece of a source -------------------------------------------------------------------------------
@dataclasses.dataclass
class Piece:
    """A captions table read row by row, or rows held (a COCO JSON's, the demo's, a TFDS split's):
    ``(image name, caption)``; the images are files in ``image_dir`` or encoded bytes in ``blobs``.
    ``role``: the split of every row (a TFDS split); empty, by the source's split order."""

    table: Path | None = None
    rows: tuple = ()
    blobs: dict | None = None
    image_dir: Path | None = None
    role: str = ""
    origin: str = ""
    file: Path | None = None  # the file the held rows came from (a COCO JSON)

    def files(self) -> list[Path]:
        """The file this piece reads (the table or JSON): the fitting pass's cache key, with :meth:`folder_stamp`."""
        source = self.table or self.file
        return [source] if source is not None else []

    def folder_stamp(self) -> list:
        """The image folder and its modification time (an image added, removed or renamed changes it)."""
        if self.image_dir is None or not self.image_dir.is_dir():
            return []
        return [str(self.image_dir.resolve()), self.image_dir.stat().st_mtime_ns]

    def roles(self) -> set:
        return {self.role} if self.role else {"train", "val", "test"}

    def image(self, name: str):
        return self.blobs[name] if self.blobs is not None else str(self.image_dir / name)

    def where(self, line: int) -> str:
        if self.table is not None:
            return f"{self.table}:{line}"
        return f"{self.origin} (row {line})"


@dataclasses.dataclass
class Settings:
    """What reading a captions source depends on (part of the fitting pass's cache key)."""

    image_column: str = ""
    caption_column: str = ""
    skip_bad_rows: bool = False


@dataclasses.dataclass
class Roles:
    """The split of a row, by its image name: ``sorted`` compares the name with the first names of the
    validation and test parts (``bounds``), ``hash`` takes the MD5 bucket of the name."""

    order: str = "sorted"
    bounds: tuple = (None, None)
    fractions: tuple = (0.1, 0.1)

    def of(self, piece: Piece, name: str) -> str:
        if piece.role:
            return piece.role
        if self.order == "hash":
            return hash_role(name, *self.fractions)
        val_from, test_from = self.bounds
        if test_from is not None and name >= test_from:
            return "test"
        if val_from is not None and name >= val_from:
            return "val"
        return "train"


def _delimiter(path: Path) -> str:
    """``,`` for .csv, tab for .tsv/.tab; another suffix (Flickr8k's captions.txt is CSV) by its header."""
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv", ".tab"):
        return "," if suffix == ".csv" else "\t"
    try:
        with open(path, "rb") as f:
            header = f.readline().decode("utf-8", "replace")
    except OSError as e:
        raise DataError(f"{path}: {e.strerror}") from None
    return "," if "\t" not in header and "," in header else "\t"


def _csv_rows(path: Path, lines: ByteLines):
    """``(line, fields)`` of a CSV/TSV read through ``lines`` (quoted fields in CSV; TSV fields as they are)."""
    return csv_records(lines, path, tab=_delimiter(path) == "\t")


def table_columns(path: Path, settings: Settings) -> tuple[int, int]:
    """The indices of the image and caption columns of a captions table's header."""
    for _, header in _csv_rows(path, ByteLines(path)):
        header = [c.strip() for c in header]
        return (pick_column(header, settings.image_column, IMAGE_COLUMNS, "image", path),
                pick_column(header, settings.caption_column, CAPTION_COLUMNS, "caption", path))
    raise DataError(f"{path}: the file is empty; expected a header row and data")


def piece_rows(piece: Piece, settings: Settings, bad: BadRows, lines: ByteLines | None = None):
    """``(line, image name, caption)`` of every row of ``piece`` with both fields filled (captions with
    single spaces); a table row with another number of fields than its header is a bad row."""
    if piece.table is None:
        for line, (name, caption) in enumerate(piece.rows, 1):
            name, caption = str(name).strip(), " ".join(str(caption).split())
            if name and caption:
                yield line, name, caption
        return
    image, caption_col = table_columns(piece.table, settings)
    rows = _csv_rows(piece.table, lines if lines is not None else ByteLines(piece.table))
    header = next(rows, None)
    if header is None:
        raise DataError(f"{piece.table}: the file is empty; expected a header row and data")
    width = len(header[1])
    for line, row in rows:
        if not row or row == [""]:
            continue
        if len(row) != width:
            bad.bad(f"{piece.table}:{line}", f"expected {width} fields as in the header, got {len(row)}")
            continue
        name, caption = row[image].strip(), " ".join(row[caption_col].split())
        if name and caption:
            yield line, name, caption


# -- streamed splits -----------------------------------------------------------------------------------
class CaptionStream(StreamedSplit):
    """One split of a captions source, read when iterated: ``rows()`` yields ``(image name, image (a path
    or bytes), caption)``, one per caption; ``n`` is the number of captions, ``len()`` of images;
    ``materialize()`` returns a :class:`CaptionSet` sorted by image name (what scoring reads)."""

    def __init__(self, pieces, role, settings, n, what, roles: Roles, excluded=(), images: int = 0):
        super().__init__(pieces, role, settings, n, what)
        self.split_roles, self.excluded, self.images = roles, frozenset(excluded), images

    def keep(self, piece, bad):
        for _, name, caption in piece_rows(piece, self.settings, bad):
            if name not in self.excluded and self.split_roles.of(piece, name) == self.role:
                yield name, piece.image(name), caption

    def __len__(self) -> int:
        return self.images

    def distinct_images(self) -> list[tuple[str, object]]:
        """``(name, image)`` of the split's images, sorted by name (one read of the rows)."""
        seen = {}
        for name, image, _ in self.rows():
            seen.setdefault(name, image)
        return sorted(seen.items())

    def materialize(self) -> CaptionSet:
        grouped: dict = {}
        for name, image, caption in self.rows():
            grouped.setdefault(name, (image, []))[1].append(caption)
        names = sorted(grouped)
        return CaptionSet([grouped[n][0] for n in names], [grouped[n][1] for n in names], names)


# -- the source ---------------------------------------------------------------------------------------------
def _settings(data_cfg, options=None) -> Settings:
    options = options or {}
    return Settings(getattr(data_cfg, "image_column", "") or options.get("image_column", ""),
                    getattr(data_cfg, "caption_column", "") or options.get("caption_column", ""),
                    bool(getattr(data_cfg, "skip_bad_rows", False)))


def pieces_of(data_cfg, task: str, data_dir=None):
    """``(pieces, settings, source, tfds splits or None)`` of ``data_cfg.source``."""
    source = sources.resolve(data_cfg.source, task, data_dir)
    settings = _settings(data_cfg, source.options)
    if source.kind == "demo":
        from tasks.captioning.demo import examples

        rows = examples(size=max(32, int(getattr(data_cfg, "demo_image_size", 64))))
        names = [f"demo-{i:04d}.png" for i in range(len(rows))]
        return [Piece(rows=tuple((n, c) for n, (_, caps) in zip(names, rows) for c in caps),
                      blobs={n: b for n, (b, _) in zip(names, rows)}, origin="the demo data")], settings, source, None
    if source.kind == "tfds":
        parts, _ = sources.load_splits(data_cfg, task, sources.Reader(None, None, _from_tfds, (), _sorted_split,
                                                                      "images"), data_dir, source)
        pieces = [Piece(rows=tuple((n, c) for n, caps in zip(data.names, data.captions) for c in caps),
                        blobs=dict(zip(data.names, data.images)), role=role, origin=f"{source.spec} {role}")
                  for role, data in parts.items() if data is not None]
        return pieces, settings, source, parts
    files = dict(source.paths)
    path = files.get("path") or files.get("all")
    return [piece_of(path, settings)], settings, source, None


def _sorted_split(data, val_fraction, test_fraction):
    return split(data, val_fraction, test_fraction, what="the data", unit="images")


def piece_of(path: Path, settings: Settings, image_dir=None) -> Piece:
    """A captions file, or a folder holding one (see the module docstring)."""
    path = Path(path)
    if path.is_dir():
        for name in TABLES:
            if (path / name).is_file():
                return piece_of(path / name, settings, image_dir)
        found = sorted(path.glob("*.json")) + sorted(path.glob("*.csv")) + sorted(path.glob("*.tsv"))
        if len(found) != 1:
            raise DataError(f"{path}: expected one captions file in the folder (captions.txt, captions.csv, "
                            f"or a COCO-style .json), found {len(found) or 'none'}")
        return piece_of(found[0], settings, image_dir)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    if path.suffix.lower() == ".json":
        rows = coco_rows(path)
        return Piece(rows=rows, image_dir=_image_dir(path, rows[0][0] if rows else "", image_dir), origin=str(path),
                     file=path)
    first = next((name for _, name, _ in piece_rows(Piece(table=path), settings, BadRows(True))), "")
    return Piece(table=path, image_dir=_image_dir(path, first, image_dir))


def _image_dir(table: Path, first_image: str, explicit=None) -> Path:
    if explicit is not None:
        return Path(explicit)
    for folder in (table.parent / "images", table.parent, table.parent / "Images"):
        if first_image and (folder / first_image).is_file():
            return folder
    return table.parent / "images" if (table.parent / "images").is_dir() else table.parent


def coco_rows(path) -> tuple:
    """COCO captions: ``images`` (``id``, ``file_name``) and ``annotations`` (``image_id``, ``caption``), as
    ``(file name, caption)`` rows (the file is parsed whole: it holds names and captions, no pixels)."""
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
        return tuple((files[a["image_id"]], a["caption"]) for a in data["annotations"])
    except (KeyError, TypeError) as e:
        raise DataError(f"{path}: an image needs 'id' and 'file_name', an annotation 'image_id' (of a listed "
                        f"image) and 'caption' (problem: {e})") from None


def load_caption_data(data_cfg, task: str, data_dir=None, verbose: bool = True) -> Splits:
    """Streamed splits of ``data_cfg.source`` (:class:`CaptionStream`; TFDS splits in memory, as
    :class:`CaptionSet`) and, in ``info``, the image counts per split and what the fitting pass found
    (``fit``: ``rows``, ``images``, ``tokens`` as ``[word, count]`` ranked, ``longest``, the bad rows)."""
    pieces, settings, source, tfds_parts = pieces_of(data_cfg, task, data_dir)
    order = getattr(data_cfg, "split_order", "sorted") or "sorted"
    if order not in SPLIT_ORDERS:
        raise DataError(f"data.split_order must be one of {', '.join(SPLIT_ORDERS)}, got {order!r}")
    fractions = (source.options.get("val_fraction", data_cfg.val_fraction),
                 source.options.get("test_fraction", data_cfg.test_fraction))
    fit_sample = int(getattr(data_cfg, "fit_sample", 0) or 0)
    files = [f for piece in pieces for f in piece.files()]
    key = {"task": task, "settings": dataclasses.asdict(settings), "order": order, "fractions": list(fractions),
           "roles": [p.role for p in pieces], "fit_sample": fit_sample, "check_size": CHECK_SIZE,
           "image_folders": [p.folder_stamp() for p in pieces]}
    fit = fitting_pass(f"{task} on {data_cfg.source}", files, key,
                       lambda progress: fit_captions(pieces, settings, Roles(order, (None, None), fractions),
                                                     fit_sample, progress, data_cfg.source),
                       cache=bool(files), verbose=verbose)
    if fit["bad_rows"] or fit["bad_images"]:
        print(f"skipped {fit['bad_rows']:,} bad row(s) and {len(fit['bad_images']):,} image(s) that cannot be "
              f"read or decoded (data.skip_bad_rows); the first: {fit['first_bad']}", file=sys.stderr)
    if fit["rows"].get("train", 0) == 0:
        raise DataError(f"{data_cfg.source}: no training captions")
    roles = Roles(order, tuple(fit["bounds"]), fractions)
    info = {"images": fit["images"], "fit": fit}
    if tfds_parts is not None:
        return Splits(tfds_parts["train"], tfds_parts["val"], tfds_parts.get("test"), info)
    streams = {role: CaptionStream(pieces, role, settings, fit["rows"].get(role, 0), data_cfg.source, roles,
                                   fit["bad_images"], fit["images"].get(role, 0)) for role in ("train", "val", "test")}
    return Splits(streams["train"], streams["val"], streams["test"] if fit["images"].get("test") else None, info)


def fit_captions(pieces, settings: Settings, roles: Roles, fit_sample: int, progress, what) -> dict:
    """The fitting pass (see the module docstring): the image names, the check of every image, the
    split bounds, the captions and images per split, the training words and the longest caption."""
    bad = BadRows(settings.skip_bad_rows)
    total = [0]

    # 1. the image names: first line, captions, piece
    seen: dict[str, list] = {}
    rows_read = 0
    for k, piece in enumerate(pieces):
        lines = ByteLines(piece.table) if piece.table is not None else None
        for line, name, _ in piece_rows(piece, settings, bad, lines):
            entry = seen.get(name)
            if entry is None:
                seen[name] = [line, 1, k]
            else:
                entry[1] += 1
            rows_read += 1
            if rows_read % 4096 == 0:
                progress(rows_read, (total[0] + (lines.bytes if lines else 0)) // 2)
        total[0] += lines.bytes if lines else 0
    if not seen:
        raise DataError(f"{what}: no (image, caption) rows with both fields filled")

    # 2. every image opened and decoded once
    excluded, first_bad = check_images(pieces, seen, bad)

    # 3. the split of each image
    free = sorted(n for n, (_, _, k) in seen.items() if n not in excluded and not pieces[k].role)
    bounds = (None, None)
    if free and roles.order == "sorted":
        n_train, n_val, n_test = split_sizes(len(free), *roles.fractions, what=what, unit="images")
        bounds = (free[n_train] if n_val else None, free[n_train + n_val] if n_test else None)
    del free
    roles = Roles(roles.order, bounds, roles.fractions)
    counts, images = collections.Counter(), collections.Counter()
    for name, (_, n, k) in seen.items():
        if name not in excluded:
            role = roles.of(pieces[k], name)
            counts[role] += n
            images[role] += 1
    del seen

    # 4. the training words and the longest caption
    counter, longest, batch = TokenCounter(VOCAB_CAP), collections.Counter(), {"train": [], "val": [], "test": []}

    def flush(role):
        if batch[role]:
            tokens = tokenize(batch[role])
            longest[role] = max(longest[role], max(map(len, tokens)))
            if role == "train":
                counts = collections.Counter(itertools.chain.from_iterable(tokens))
                counter.add(list(counts), list(counts.values()))
            batch[role] = []

    sampled, train_rows, done = False, 0, 0
    for piece in pieces:
        lines = ByteLines(piece.table) if piece.table is not None else None
        for _, name, caption in piece_rows(piece, settings, BadRows(True), lines):
            if name in excluded:
                continue
            role = roles.of(piece, name)
            batch[role].append(caption)
            if len(batch[role]) >= FIT_BATCH:
                flush(role)
            if role == "train":
                train_rows += 1
                if train_rows % 4096 == 0:
                    progress(rows_read + train_rows, (total[0] + (lines.bytes if lines else 0)) // 2)
                if fit_sample and train_rows >= fit_sample:
                    sampled = True
                    break
        done += lines.bytes if lines else 0
        if sampled:
            break
    for role in batch:
        flush(role)
    progress(rows_read + train_rows, (total[0] + done) // 2)
    ranked = sorted(counter.counts.items(), key=lambda wc: (-wc[1], wc[0]))
    return {"rows": dict(counts), "images": dict(images), "bounds": list(bounds), "order": roles.order,
            "tokens": [[w, c] for w, c in ranked], "tokens_dropped": counter.dropped, "longest": dict(longest),
            "sampled": sampled, "bad_rows": bad.count, "bad_images": sorted(excluded),
            "first_bad": bad.first or first_bad}


def check_images(pieces, seen: dict, bad: BadRows) -> tuple[set, str]:
    """Every image of ``seen`` (name -> [first line, captions, piece]) read and decoded (at
    :data:`CHECK_SIZE`): a missing or undecodable one stops with one line naming the row that first
    names it, or, skipping bad rows, is left out (with all its captions): ``(left out, the first)``."""
    excluded, first = set(), ""
    missing = [n for n, (_, _, k) in seen.items() if pieces[k].blobs is None and not Path(pieces[k].image(n)).is_file()]
    if missing:
        name = min(missing, key=lambda n: (seen[n][2], seen[n][0]))
        line, _, k = seen[name]
        why = (f"image {name} is not in {pieces[k].image_dir} ({len(missing)} of {len(seen)} images are missing; "
               "expected them beside the captions file or in images/)")
        if not bad.skip:
            raise DataError(f"{pieces[k].where(line)}: {why}")
        excluded.update(missing)
        first = f"{pieces[k].where(line)}: {why}"
    names = [n for n in seen if n not in excluded]
    for start in range(0, len(names), CHECK_BATCH):
        chunk = names[start:start + CHECK_BATCH]
        decoded = _decodes([pieces[seen[n][2]].image(n) for n in chunk])
        for name, ok in zip(chunk, decoded):
            if ok:
                continue
            line, _, k = seen[name]
            where = f"{pieces[k].where(line)}: image {name} cannot be read or decoded as JPEG, PNG, GIF or BMP"
            if pieces[k].blobs is None:
                where += f" ({pieces[k].image(name)})"
            if not bad.skip:
                raise DataError(f"{where} (set data.skip_bad_rows=true to skip its captions and count them)")
            excluded.add(name)
            first = first or where
    return excluded, first


def _decodes(images: list) -> np.ndarray:
    """Whether each image (a path or bytes) reads and decodes, by the export's per-image decoding
    (:func:`seqapps.encoders.images.decode_one`, in a parallel tf.data map whose failures are dropped)."""
    import tensorflow as tf

    from seqapps.encoders.images import decode_one

    paths = not any(isinstance(i, bytes) for i in images)
    ds = tf.data.Dataset.from_tensor_slices((tf.range(len(images)), tf.constant(images, tf.string)))
    ds = ds.map(lambda i, b: (i, decode_one(tf.io.read_file(b) if paths else b, CHECK_SIZE)),
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=False).ignore_errors()
    ok = np.zeros(len(images), bool)
    for idx, _ in ds.batch(1024):
        ok[idx.numpy()] = True
    return ok


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


# -- readers kept for tools that want a source whole ----------------------------------------------------------
def read_path(path: Path, image_column: str = "", caption_column: str = "") -> CaptionSet:
    """A captions file or folder, read whole into a :class:`CaptionSet` sorted by image name (small data,
    tools); training streams it instead (:func:`load_caption_data`)."""
    return _whole(piece_of(path, Settings(image_column, caption_column)))


def read_caption_table(path, image_dir=None, image_column: str = "", caption_column: str = "") -> CaptionSet:
    """A CSV/TSV with one row per (image, caption), read whole (see :func:`read_path`)."""
    return _whole(piece_of(path, Settings(image_column, caption_column), image_dir))


def read_coco_json(path, image_dir=None) -> CaptionSet:
    """A COCO captions JSON, read whole (see :func:`read_path`)."""
    return _whole(piece_of(path, Settings(), image_dir))


def _whole(piece: Piece) -> CaptionSet:
    seen = {}
    for line, name, _ in piece_rows(piece, Settings(), BadRows()):
        seen.setdefault(name, [line, 0, 0])[1] += 1
    if not seen:
        raise DataError(f"{piece.table or piece.origin}: no (image, caption) rows with both fields filled")
    check_images([piece], seen, BadRows())
    stream = CaptionStream([piece], "train", Settings(), 0, "", Roles("sorted"))
    return stream.materialize()


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
        """From the fitting pass's ranked training words (``data.min_count``, ``data.vocab_size``)."""
        d = cfg.data
        fit = splits.info.get("fit")
        if fit is None:
            return cls.from_captions(splits.train.captions, d.vocab_size, d.min_count, d.max_length)
        return cls.from_counts(fit["tokens"], d.vocab_size, d.min_count, d.max_length)

    @classmethod
    def from_counts(cls, ranked, max_words: int, min_count: int, max_length: int) -> "CaptionVocab":
        """``ranked``: ``[word, count]`` by count (descending), ties by the word."""
        words = [w for w, c in ranked if c >= min_count and w not in SPECIALS]
        return cls(SPECIALS + words[:max(0, max_words - len(SPECIALS))], max_length)

    @classmethod
    def from_captions(cls, captions_per_image, max_words: int, min_count: int, max_length: int) -> "CaptionVocab":
        counts = collections.Counter(w for caps in captions_per_image for toks in tokenize(caps) for w in toks)
        return cls.from_counts(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])), max_words, min_count,
                               max_length)

    def save(self, run_dir) -> None:
        save_vocab(run_dir, "vocab.txt", self.words)

    @classmethod
    def load(cls, run_dir, cfg=None) -> "CaptionVocab":
        return cls(cls.read_vocab(run_dir, "vocab.txt"), cfg.data.max_length)

    def __len__(self):
        return len(self.words)

    def encode(self, captions) -> tuple[np.ndarray, np.ndarray]:
        """Teacher-forcing pairs ``[START] w1..wn`` -> ``w1..wn [END]``, [n, max_length + 1], 0-padded
        (in Python; :meth:`caption_encoder` is the same in TensorFlow ops, for tf.data)."""
        width = self.max_length + 1
        inputs = np.zeros((len(captions), width), np.int32)
        targets = np.zeros((len(captions), width), np.int32)
        for row, toks in enumerate(tokenize(captions)):
            ids = [self.index.get(w, 1) for w in toks[:self.max_length]]
            inputs[row, :len(ids) + 1] = [2] + ids
            targets[row, :len(ids) + 1] = ids + [3]
        return inputs, targets

    def caption_encoder(self):
        """``encode(captions, width) -> (inputs, targets)`` int32 ``[batch, width]``: :meth:`encode` in
        TensorFlow ops (a lookup table over the words), captions cut to ``width - 1`` words."""
        import tensorflow as tf

        table = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(
            tf.constant(self.words[len(SPECIALS):], tf.string),
            tf.range(len(SPECIALS), len(self.words), dtype=tf.int32)), default_value=1)

        def encode(captions, width: int):
            ids = tf.ragged.map_flat_values(table.lookup, textlib.words(captions))[:, :width - 1]
            edge = tf.RaggedTensor.from_tensor(tf.ones_like(captions, tf.int32)[:, None])
            inputs = tf.concat([edge * 2, ids], axis=1).to_tensor(0, shape=[None, width])
            targets = tf.concat([ids, edge * 3], axis=1).to_tensor(0, shape=[None, width])
            return inputs, targets

        return encode

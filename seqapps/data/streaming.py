"""Data of any size: rows read from files one at a time, a fitting pass that is cached, and
tf.data batches built on the stream.

Nothing here holds a split in memory. The pieces, in the order a task uses them:

- :class:`RowFile` reads a text file line by line (or a CSV/TSV table row by row) and yields
  ``(line_number, fields)``; a malformed row stops with one line naming the file and line, or,
  with ``data.skip_bad_rows=true``, is skipped and counted.
- :func:`hash_role` puts an example in ``train``, ``val`` or ``test`` by the MD5 bucket of its
  key (:func:`seqapps.data.splits.md5_bucket`), so a file read whole or streamed splits the same.
- :func:`fitting_pass` runs a task's one pass over its training rows (vocabularies, labels,
  counts) with a progress bar (rows/s, MB/s) and caches the result by the files' sizes and
  modification times and the settings that shape it; ``data.fit_sample=N`` stops after N rows.
- :class:`TokenCounter` counts tokens in bounded memory (the rarest are dropped past a cap),
  ranking them as Keras' ``TextVectorization.adapt`` does: by count, ties by first use.
- :func:`bucketed_stream` turns a stream of raw examples into padded batches of similar length
  with the task's own encoding function (the one its export runs), a bounded shuffle buffer and
  an exact batch count, so a progress bar knows each epoch's length.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Callable, Iterable, Iterator

from seqapps.core.errors import DataError
from seqapps.data.splits import md5_bucket

#: the cache format; a change to what a fitting pass stores bumps it, so old entries are not read
FIT_CACHE_VERSION = 1


# -- reading rows -------------------------------------------------------------------------------
@dataclasses.dataclass
class BadRows:
    """Malformed rows met while reading: skipped (and counted) or, by default, an error."""

    skip: bool = False
    count: int = 0
    first: str = ""

    def bad(self, where: str, why: str) -> None:
        if not self.skip:
            raise DataError(f"{where}: {why} (set data.skip_bad_rows=true to skip such rows and count them)")
        self.count += 1
        self.first = self.first or f"{where}: {why}"


class ByteLines:
    """The lines of a file as text, counting the bytes read (for MB/s) and the line number."""

    def __init__(self, path: Path):
        self.path, self.bytes, self.line = Path(path), 0, 0

    def __iter__(self) -> Iterator[str]:
        try:
            f = open(self.path, "rb")
        except OSError as e:
            raise DataError(f"{self.path}: {e.strerror}") from None
        with f:
            for raw in f:
                self.line += 1
                self.bytes += len(raw)
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    raise DataError(f"{self.path}:{self.line}: not UTF-8 text (undecodable byte at column "
                                    f"{e.start + 1})") from None
                if self.line == 1 and text.startswith("\ufeff"):
                    text = text[1:]
                yield text


def is_tab_separated(path) -> bool:
    return Path(path).suffix.lower() in {".tsv", ".tab", ".txt"}


def table_header(path) -> list[str]:
    """The column names of a CSV/TSV file's header row."""
    for _, header in csv_records(ByteLines(path), path):
        return [c.strip() for c in header]
    raise DataError(f"{path}: the file is empty; expected a header row and data")


def csv_records(lines: Iterable[str], path, tab: bool | None = None) -> Iterator[tuple[int, list[str]]]:
    """``(line number, fields)`` of every record in ``lines`` (the text of the CSV/TSV file ``path``;
    ``tab`` by its suffix unless given): CSV fields may be quoted, TSV fields are taken as they are; a
    malformed record is one DataError naming the file and line."""
    tab = is_tab_separated(path) if tab is None else tab
    reader = csv.reader(lines, delimiter="\t" if tab else ",", quoting=csv.QUOTE_NONE if tab else csv.QUOTE_MINIMAL,
                        strict=not tab)
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            raise DataError(f"{path}:{reader.line_num}: malformed {'TSV' if tab else 'CSV'}: {e}") from None
        yield reader.line_num, row


def table_rows(path, columns: list[int], bad: BadRows, lines: ByteLines | None = None
               ) -> Iterator[tuple[int, list[str]]]:
    """``(line, [values of columns])`` for each data row of a CSV/TSV file (the header skipped,
    blank lines too); a row with another number of fields than the header is a bad row.
    ``lines``: the :class:`ByteLines` to read through (its ``bytes`` tell the progress)."""
    lines = lines if lines is not None else ByteLines(path)
    rows = csv_records(lines, path)
    header = next(rows, None)
    if header is None:
        raise DataError(f"{path}: the file is empty; expected a header row and data")
    width = len(header[1])
    for line, row in rows:
        if not row or row == [""]:
            continue
        if len(row) != width:
            bad.bad(f"{path}:{line}", f"expected {width} fields as in the header, got {len(row)}")
            continue
        yield line, [row[i] for i in columns]


def pick_column(columns: list[str], wanted: str | None, candidates: list[str], what: str, path) -> int:
    """The index of the configured column, or of the first of ``candidates`` present."""
    if wanted:
        if wanted not in columns:
            raise DataError(f"{path}: no {what} column {wanted!r}; columns are: {', '.join(columns)}")
        return columns.index(wanted)
    for name in candidates:
        for i, column in enumerate(columns):
            if column.lower() == name:
                return i
    raise DataError(f"{path}: cannot tell which column holds the {what}; set data.{what}_column "
                    f"(columns are: {', '.join(columns)})")


# -- streamed splits -----------------------------------------------------------------------------------
class StreamedSplit:
    """One split (``train``, ``val`` or ``test``) of a source made of pieces (files, or rows in memory),
    read when iterated. A task subclasses it with ``keep(piece, bad)``: the split's rows of one piece.
    ``rows()`` yields them (pairs: a text and its label, a source and its target); ``n`` is their number
    (from the fitting pass; an estimate after ``data.fit_sample``); ``materialize()`` returns the two
    columns as lists, what scoring and peers read."""

    def __init__(self, pieces: list, role: str, settings, n: int = 0, what: str = ""):
        self.pieces, self.role, self.settings, self.n, self.what = pieces, role, settings, n, what

    def keep(self, piece, bad: BadRows) -> Iterator[tuple]:
        raise NotImplementedError

    def rows(self) -> Iterator[tuple]:
        for piece in self.pieces:
            if self.role in piece.roles():
                yield from self.keep(piece, BadRows(self.settings.skip_bad_rows))

    __iter__ = rows

    def materialize(self) -> tuple[list, list]:
        first, second = [], []
        for a, b in self.rows():
            first.append(a)
            second.append(b)
        return first, second

    def __len__(self) -> int:
        return self.n


# -- splits -----------------------------------------------------------------------------------------
def hash_role(key: str, val_fraction: float, test_fraction: float) -> str:
    """``train``, ``val`` or ``test`` for an example keyed ``key``: MD5 buckets below
    ``100 * test_fraction`` test, the next ``100 * val_fraction`` validate, the rest train
    (:func:`seqapps.data.splits.split_indices` with ``keys``)."""
    bucket = md5_bucket(key)
    n_test = round(100 * test_fraction)
    if bucket < n_test:
        return "test"
    return "val" if bucket < n_test + round(100 * val_fraction) else "train"


# -- the fitting pass --------------------------------------------------------------------------------
class Progress:
    """A one-line progress bar on stderr: rows, rows/s, MB and MB/s, and the share of the bytes read."""

    quiet_below = 2.0  # seconds: without a terminal, a shorter pass prints nothing

    def __init__(self, what: str, total_bytes: int, enabled: bool | None = None):
        self.what, self.total, self.started, self.last = what, max(total_bytes, 1), time.time(), 0.0
        self.enabled = sys.stderr.isatty() if enabled is None else enabled

    def update(self, rows: int, done_bytes: int, final: bool = False) -> None:
        now = time.time()
        if not final and now - self.last < 0.5:
            return
        self.last = now
        seconds = max(now - self.started, 1e-9)
        line = (f"{self.what}: {rows:,} rows, {done_bytes / 1e6:,.1f} MB ({100 * done_bytes / self.total:.0f}%), "
                f"{rows / seconds:,.0f} rows/s, {done_bytes / 1e6 / seconds:,.1f} MB/s")
        if self.enabled:
            print("\r" + line, end="\n" if final else "", file=sys.stderr, flush=True)
        elif final and seconds >= self.quiet_below:  # a log (no terminal) gets one line, for a pass worth noting
            print(line, file=sys.stderr, flush=True)


def files_key(paths: Iterable[Path], settings: dict) -> str:
    """A cache key: each file's resolved path, size and modification time, and ``settings``."""
    stamp = []
    for path in paths:
        st = Path(path).stat()
        stamp.append([str(Path(path).resolve()), st.st_size, st.st_mtime_ns])
    blob = json.dumps({"v": FIT_CACHE_VERSION, "files": stamp, "settings": settings}, sort_keys=True)
    return hashlib.sha1(blob.encode()).hexdigest()[:20]


def fitting_pass(what: str, paths: list[Path], settings: dict, run: Callable[[Callable], dict],
                 cache: bool = True, verbose: bool = True) -> dict:
    """The result of ``run(progress)`` over ``paths``, from the cache when the files and
    ``settings`` are unchanged. ``run`` calls ``progress(rows, bytes)`` as it goes and returns a
    JSON-able dict; the cache lives under :func:`seqapps.data.cache_folder` ``/fits``."""
    from seqapps.data import cache_folder

    folder = cache_folder() / "fits"
    path = folder / f"{files_key(paths, settings)}.json"
    if cache and path.exists():
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            pass  # a half-written entry: fit again
    total = sum(Path(p).stat().st_size for p in paths)
    # data in memory (demo, tfds) is fitted in a moment: no bar
    bar = Progress(f"fitting {what}", total, enabled=None if verbose and paths else False)
    verbose = verbose and bool(paths)
    rows = [0, 0]

    def progress(n_rows: int, n_bytes: int) -> None:
        rows[:] = [n_rows, n_bytes]
        bar.update(n_rows, n_bytes)

    result = run(progress)
    if verbose:
        bar.update(*rows, final=True)
    if cache:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(result), encoding="utf-8")
        os.replace(tmp, path)  # never a half-written entry under the real name
    return result


class TokenCounter:
    """Token counts in bounded memory, ranked as ``TextVectorization.adapt`` ranks them: by count,
    ties by the token's UTF-8 bytes, both descending (Keras sorts with ``np.lexsort``).

    Up to ``cap`` distinct tokens are kept; past it, the tokens seen least often are dropped
    (their counts can only have been small, so the head of the ranking is exact unless the
    vocabulary asked for is near ``cap``)."""

    def __init__(self, cap: int):
        self.cap, self.counts, self.dropped = max(int(cap), 1), {}, 0

    def add(self, tokens, counts=None) -> None:
        table = self.counts
        if counts is None:
            for t in tokens:
                table[t] = table.get(t, 0) + 1
        else:
            for t, c in zip(tokens, counts):
                table[t] = table.get(t, 0) + int(c)
        if len(table) > self.cap:
            self._prune()

    def _prune(self) -> None:
        keep = sorted(self.counts.values(), reverse=True)[self.cap // 2]
        before = len(self.counts)
        self.counts = {t: c for t, c in self.counts.items() if c > keep}
        self.dropped += before - len(self.counts)

    def ranked(self, limit: int | None = None) -> list:
        """Tokens (as added: bytes from TensorFlow) by count, then by token, descending."""
        order = sorted(self.counts.items(), key=lambda tc: (tc[1], tc[0]), reverse=True)
        return [t for t, _ in (order[:limit] if limit else order)]


def chunked(rows: Iterable[tuple], dtypes: tuple, size: int = 1024) -> Iterator[tuple]:
    """``rows`` (tuples) as tuples of numpy arrays of up to ``size`` rows each (``dtypes``: one
    numpy dtype per field, ``object`` for strings)."""
    import numpy as np

    buffer = []
    for row in rows:
        buffer.append(row)
        if len(buffer) == size:
            yield tuple(np.asarray(col, dtype=dt) for col, dt in zip(zip(*buffer), dtypes))
            buffer = []
    if buffer:
        yield tuple(np.asarray(col, dtype=dt) for col, dt in zip(zip(*buffer), dtypes))


# -- batches on a stream -------------------------------------------------------------------------------
def _kept(*example):
    """The keep flag :func:`bucketed_stream` adds last to an example (with ``keep_fn``)."""
    return example[-1]


def _without_last(*example):
    return example[:-1]


def bucketed_stream(generator: Callable[[], Iterator], output_signature, length_fn: Callable, encode_fn: Callable,
                    batch_size: int, n_examples: int, longest: int, *, shuffle: bool, buffer: int = 100_000,
                    seed: int = 0, full: bool = False, boundaries: list[int] | None = None,
                    keep_fn: Callable | None = None):
    """Padded batches of similar length from a stream of raw examples.

    ``generator()`` yields raw examples in chunks: tuples of arrays matching ``output_signature``
    with a leading dimension (use :func:`chunked` on a row iterator; a chunk of rows per Python
    call keeps the interpreter out of the per-example path); ``length_fn``
    maps a batch of them (as ``tf.data`` batches them) to their lengths; ``encode_fn(*batch,
    width)`` maps a batch of similar length to ``(features, targets)``, padded to ``width`` time
    steps (the bucket's upper edge). Training (``shuffle``) repeats the stream and takes
    ``ceil(n_examples / batch_size)`` batches an epoch (``floor`` with ``full``, whose batches are
    all ``batch_size``), so the epoch has an exact length while the reading never stops; without
    shuffling (validation), one pass, every example once.

    ``keep_fn`` (optional): maps a batch of raw examples (as ``length_fn`` does) to a boolean mask of
    those to keep; the others are filtered out of the stream (a ``tf.data`` filter) before batching,
    and ``n_examples`` and ``longest`` count the kept ones only."""
    import tensorflow as tf

    from seqapps.data.pipeline import default_boundaries

    if boundaries is None:
        boundaries = default_boundaries(longest + 1) + [longest + 1]
    chunk_signature = tf.nest.map_structure(lambda spec: tf.TensorSpec([None, *spec.shape], spec.dtype),
                                            output_signature)
    ds = tf.data.Dataset.from_generator(generator, output_signature=chunk_signature).unbatch()
    edges = tf.constant(boundaries, tf.int32) - 1

    def encode(*batch):
        *raw, lengths = batch
        width = edges[tf.reduce_sum(tf.cast(edges < tf.reduce_max(lengths), tf.int32))]
        return encode_fn(*raw, width=width)

    def with_lengths(ds):
        # lengths of many rows at once (string ops vectorize), then back to single examples
        if keep_fn is not None:
            ds = ds.batch(1024).map(lambda *b: (*b, tf.cast(length_fn(*b), tf.int32), keep_fn(*b)),
                                    num_parallel_calls=tf.data.AUTOTUNE).unbatch()
            return ds.filter(_kept).map(_without_last)
        return ds.batch(1024).map(lambda *b: (*b, tf.cast(length_fn(*b), tf.int32)),
                                  num_parallel_calls=tf.data.AUTOTUNE).unbatch()

    if shuffle:
        ds = ds.shuffle(max(1, min(buffer, n_examples or buffer)), seed=seed, reshuffle_each_iteration=True)
    # batches of similar length, padded to their bucket's edge (validation too: a per-token loss averages
    # over the padding, so its batches are padded as tightly as training's)
    ds = with_lengths(ds).bucket_by_sequence_length(
        element_length_func=lambda *e: e[-1], bucket_boundaries=boundaries,
        bucket_batch_sizes=[batch_size] * (len(boundaries) + 1), drop_remainder=full and shuffle)
    ds = ds.map(encode, num_parallel_calls=tf.data.AUTOTUNE)
    if not shuffle:  # validation: one pass, every example once
        return ds.prefetch(tf.data.AUTOTUNE)
    n_batches = max(n_examples // batch_size if full else math.ceil(n_examples / batch_size), 1)
    ds = ds.repeat().take(n_batches).apply(tf.data.experimental.assert_cardinality(n_batches))
    return ds.prefetch(tf.data.AUTOTUNE)

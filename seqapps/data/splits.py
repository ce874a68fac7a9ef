"""The one split helper and the one split-file finder.

Splitting (:func:`split_indices`, :func:`split`): ``n`` items become train, validation
and test parts of ``round(n * val_fraction)`` and ``round(n * test_fraction)`` items
(a positive fraction always gets at least one item), the rest training. Which items
go where is one of three deterministic orders:

- ``order="sequential"`` (the default): the first items train, the next validate, the
  last test, contiguous (text streams, sorted images, the tail of a treebank);
- ``order="shuffle"``: a permutation seeded by ``seed`` (labelled texts);
- ``keys=[...]``: by the MD5 bucket of each item's key (:func:`md5_bucket`, 0..99):
  buckets below ``100 * test_fraction`` test, the next ``100 * val_fraction``
  validate, the rest train; the same sentence always lands in the same part.

Finding split files (:func:`find_split_files`): in a folder, a file whose name has the
word ``train`` trains, ``dev``/``val``/``valid``/``validation`` validates and ``test``
tests (``train.csv``, ``en_ewt-ud-dev.conllu``, ``valid.txt``...), among the files
whose suffix a task accepts.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np

from seqapps.core.errors import DataError

SPLIT_WORDS = {"train": ("train",), "val": ("dev", "val", "valid", "validation"), "test": ("test",)}
ORDERS = ("sequential", "shuffle")


def split_sizes(n: int, val_fraction: float, test_fraction: float, what: str = "data",
                unit: str = "examples") -> tuple[int, int, int]:
    """``(n_train, n_val, n_test)``; a positive fraction gets at least one item."""
    sizes = []
    for fraction, name in ((val_fraction, "data.val_fraction"), (test_fraction, "data.test_fraction")):
        if not 0 <= fraction < 1:
            raise DataError(f"{name} must be in [0, 1), got {fraction}")
        sizes.append(max(int(round(n * fraction)), 1 if fraction > 0 else 0))
    n_val, n_test = sizes
    if n - n_val - n_test < 1:
        raise DataError(f"{what}: {n} {unit} are too few to split off data.val_fraction={val_fraction} "
                        f"and data.test_fraction={test_fraction}")
    return n - n_val - n_test, n_val, n_test


def md5_bucket(key: str) -> int:
    """The MD5 hex digest of ``key``'s UTF-8 bytes, as an integer, modulo 100."""
    return int(hashlib.md5(key.encode("utf-8")).hexdigest(), 16) % 100


def split_indices(n: int, val_fraction: float, test_fraction: float, *, order: str = "sequential", seed: int = 0,
                  keys=None, what: str = "data", unit: str = "examples"):
    """``(train, val, test)`` indices of ``n`` items (``range`` objects in sequential order)."""
    if keys is not None:
        n_test, n_val = round(100 * test_fraction), round(100 * val_fraction)
        buckets = np.fromiter((md5_bucket(k) for k in keys), dtype=np.int64, count=n)
        val = (buckets >= n_test) & (buckets < n_test + n_val)
        return np.flatnonzero(buckets >= n_test + n_val), np.flatnonzero(val), np.flatnonzero(buckets < n_test)
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
    n_train, n_val, n_test = split_sizes(n, val_fraction, test_fraction, what, unit)
    if order == "sequential":
        return range(n_train), range(n_train, n_train + n_val), range(n_train + n_val, n)
    permutation = np.random.default_rng(seed).permutation(n)
    return permutation[n_test + n_val:], permutation[n_test:n_test + n_val], permutation[:n_test]


def take(data, idx):
    """Items ``idx`` of ``data``: a str or list (sliced when ``idx`` is a range), a tuple of
    parallel lists, or anything with ``subset(idx)``."""
    if hasattr(data, "subset"):
        return data.subset(idx)
    if isinstance(data, tuple):
        return tuple(take(column, idx) for column in data)
    if isinstance(idx, range):
        return data[idx.start:idx.stop]
    return [data[i] for i in idx]


def split(data, val_fraction: float, test_fraction: float, *, order: str = "sequential", seed: int = 0,
          keys=None, what: str = "data", unit: str = "examples"):
    """``data`` (see :func:`take`) as ``(train, val, test)``; ``test`` is None when it is empty."""
    n = len(data[0]) if isinstance(data, tuple) else len(data)
    tr, va, te = split_indices(n, val_fraction, test_fraction, order=order, seed=seed, keys=keys, what=what,
                               unit=unit)
    return take(data, tr), take(data, va), take(data, te) if len(te) else None


def find_split_files(folder, suffixes, required: bool = True) -> dict[str, Path]:
    """``{"train": path, "val": path, "test": path}`` of the files in ``folder`` whose suffix
    is one of ``suffixes`` and whose name holds a split word (see the module docstring);
    the first (sorted) file wins. Without a training file: a DataError, or ``{}`` when
    not ``required``."""
    folder, found = Path(folder), {}
    suffixes = [s.lower() for s in suffixes]
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.suffix.lower() not in suffixes:
            continue
        words = set(re.split(r"[^a-z]+", path.stem.lower()))
        split_name = next((s for s, names in SPLIT_WORDS.items() if words & set(names)), None)
        if split_name:
            found.setdefault(split_name, path)
    if "train" not in found:
        if not required:
            return {}
        raise DataError(f"{folder}: expected a file with 'train' in its name (and optionally dev/val and test), "
                        f"for example train{suffixes[0] if suffixes else ''}")
    return found

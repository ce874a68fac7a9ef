"""Turn a ``--data`` value into a source (demo, a named dataset, a path, or tfds:NAME)
and read it into train / validation / test parts, with the same rules for every task.

:func:`load_splits` is the one entry: it resolves the source, calls the task's
:class:`Reader` for it, and applies the one rule for missing splits:

- a source that is one piece (``demo``, a single file, a named dataset of one file)
  is split by ``data.val_fraction`` and ``data.test_fraction`` (a named dataset's
  catalog options may set both) with the task's split order (:mod:`seqapps.data.splits`);
- a source with its own splits (a folder of ``train.*`` / ``dev.*`` / ``test.*``
  files, a named dataset of several files, a TFDS dataset) keeps them; a missing
  validation split is carved from the training split by ``data.val_fraction``; a
  missing test split stays ``None``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable

from seqapps.data import catalog
from seqapps.data.splits import find_split_files, split
from seqapps.core.errors import DataError


@dataclasses.dataclass
class Source:
    kind: str                      # demo | named | path | tfds
    spec: str                      # what the user wrote
    paths: dict = dataclasses.field(default_factory=dict)    # split or role -> Path
    options: dict = dataclasses.field(default_factory=dict)  # reader options from the catalog

    @property
    def tfds_name(self) -> str:
        return self.spec.split(":", 1)[1]


def resolve(spec: str, task: str, data_dir=None) -> Source:
    spec = (spec or "").strip()
    if not spec:
        raise DataError("empty --data; expected demo, a named dataset, a path or tfds:NAME")
    if spec == "demo":
        return Source("demo", spec)
    if spec.startswith("tfds:"):
        if not spec[5:]:
            raise DataError("tfds: needs a dataset name, for example tfds:imdb_reviews")
        return Source("tfds", spec)
    if spec in catalog.CATALOG:
        entry, paths = catalog.named(spec, data_dir)
        if entry.task != task:
            raise DataError(f"dataset {spec!r} is for the {entry.task} task, not {task}")
        return Source("named", spec, paths, dict(entry.options))
    path = Path(spec).expanduser()
    root = catalog.data_dir(data_dir)
    if not path.exists() and not path.is_absolute() and root is not None and (root / path).exists():
        path = root / path
    if path.exists():
        return Source("path", spec, {"path": path})
    names = ", ".join(n for n, d in catalog.CATALOG.items() if d.task == task)
    raise DataError(f"no such dataset or file {spec!r}; expected demo, a path, tfds:NAME"
                    + (f" or one of: {names}" if names else ""))


def tfds_load(name: str, split: str, data_dir=None):
    """``tfds.load`` that fails fast, with one line, when offline and not prepared."""
    try:
        import tensorflow_datasets as tfds
    except ImportError:  # pragma: no cover - pinned in requirements
        raise DataError("tfds: sources need tensorflow-datasets (pip install tensorflow-datasets)") from None
    from absl import logging as absl_logging

    absl_logging.set_verbosity(absl_logging.ERROR)  # tfds warns about half-made folders; we say it once
    try:
        return tfds.load(name, split=split, download=False, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError:
        raise DataError(f"unknown TFDS dataset {name!r}; see https://www.tensorflow.org/datasets/catalog") from None
    except ValueError as e:
        if "split" in str(e).lower() or "Unknown" in str(e):
            raise DataError(f"tfds:{name} has no split {split!r}") from None
        not_prepared = e
    except (AssertionError, FileNotFoundError, OSError) as e:
        not_prepared = e
    if not _online():
        raise DataError(f"tfds:{name} is not downloaded yet and there is no internet connection; "
                        "download it once online, or use a named dataset or a local path") from None
    try:
        return tfds.load(name, split=split, download=True, data_dir=data_dir)
    except Exception as e:  # network errors come in many types
        raise DataError(f"could not download tfds:{name}: {str(e).splitlines()[0][:200]}") from not_prepared


def _online(host: str = "storage.googleapis.com", timeout: float = 3.0) -> bool:
    import socket

    try:
        socket.setdefaulttimeout(timeout)
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False
    finally:
        socket.setdefaulttimeout(None)


# -- reading any source into splits ---------------------------------------------------------------
TFDS_VAL_SPLITS = ("validation", "val", "dev")


@dataclasses.dataclass
class Reader:
    """How one task reads each kind of source; every callable returns the task's raw data.

    ``demo(data_cfg)``: the demo data, whole. ``read(path, data_cfg, options)``: one file
    (or a folder, when ``suffixes`` is empty) as one piece; ``options`` are the named
    dataset's reader options from the catalog (``{}`` for a path). ``suffixes``: a folder
    is searched for split files with these suffixes
    (:func:`~seqapps.data.splits.find_split_files`); with ``folder_piece``, a folder without
    a training file is read by ``read`` as one piece instead of failing.
    ``tfds(examples, name, split, data_cfg)``: a TFDS split's numpy examples (None: the
    task reads no TFDS data). ``split(data, val_fraction, test_fraction)``: ``(train,
    val, test)`` of a piece, by :func:`seqapps.data.splits.split`."""

    demo: Callable
    read: Callable
    tfds: Callable | None = None
    suffixes: tuple = ()
    split: Callable = split
    unit: str = "examples"
    folder_piece: bool = False


def load_splits(data_cfg, task: str, reader: Reader, data_dir=None, source: Source | None = None
                ) -> tuple[dict, Source]:
    """``({"train", "val", "test"}, source)`` for ``data_cfg.source`` (rules in the module
    docstring); ``source`` is the already resolved source, if the caller has it."""
    source = source or resolve(data_cfg.source, task, data_dir)
    fractions = (source.options.get("val_fraction", data_cfg.val_fraction),
                 source.options.get("test_fraction", data_cfg.test_fraction))
    if source.kind == "tfds":
        if reader.tfds is None:
            raise DataError(f"{source.spec}: the {task} task reads no TFDS datasets; "
                            "expected demo, a named dataset or a path")
        def convert(examples, split_name):
            return reader.tfds(examples, source.tfds_name, split_name, data_cfg)
        return read_tfds(source.tfds_name, convert, fractions[0], reader.split), source
    return complete_splits(read_pieces(data_cfg, source, reader), *fractions, reader.split), source


def read_pieces(data_cfg, source: Source, reader: Reader) -> dict:
    """The raw pieces of a demo, named or path source, before any split: ``{"all": data}``
    or ``{"train": ..., "val"?: ..., "test"?: ...}``."""
    if source.kind == "demo":
        return {"all": reader.demo(data_cfg)}
    files = dict(source.paths)
    if "path" in files:
        path = files.pop("path")
        found = (find_split_files(path, reader.suffixes, required=not reader.folder_piece)
                 if path.is_dir() and reader.suffixes else {})
        files = found or {"all": path}
    return {name: reader.read(path, data_cfg, source.options) for name, path in files.items()}


def complete_splits(parts: dict, val_fraction: float, test_fraction: float, split_fn=split) -> dict:
    """The missing-split rule: ``all`` is split three ways; a missing ``val`` is carved
    from ``train`` by ``val_fraction``; a missing ``test`` stays None."""
    parts = dict(parts)
    if "all" in parts:
        parts["train"], parts["val"], parts["test"] = split_fn(parts.pop("all"), val_fraction, test_fraction)
    elif parts.get("val") is None:
        parts["train"], parts["val"], _ = split_fn(parts["train"], val_fraction, 0.0)
    parts.setdefault("test", None)
    return parts


def read_tfds(name: str, convert: Callable[[Any, str], Any], val_fraction: float, split_fn=split) -> dict:
    """The one TFDS reader: ``{"train", "val", "test"}`` of ``tfds:NAME``, each split's
    ``tfds.as_numpy`` examples turned into the task's data by ``convert(examples, split)``.

    ``train`` must exist. The validation split is the first of ``validation``, ``val``
    and ``dev`` the dataset has; without one, it is carved from ``train`` by
    ``val_fraction`` (with ``split_fn``, the task's split order). A dataset without a
    ``test`` split has test None (never carved from train)."""
    import tensorflow_datasets as tfds

    def read(split_name: str, required: bool = False):
        try:
            ds = tfds_load(name, split_name)
        except DataError as e:
            if required or "has no split" not in str(e):
                raise
            return None
        return convert(tfds.as_numpy(ds), split_name)

    parts = {"train": read("train", required=True), "test": read("test")}
    parts["val"] = next((v for v in map(read, TFDS_VAL_SPLITS) if v is not None), None)
    return complete_splits(parts, val_fraction, 0.0, split_fn)

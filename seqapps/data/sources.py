"""Turn a ``--data`` value into a source: demo, a named dataset, a path, or tfds:NAME."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from seqapps.data import catalog
from seqapps.errors import DataError


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

"""The preprocessing protocol: what a task fits on its training split and keeps in a run.

Every task's preprocessing (vocabularies, label names, scalers...) is a
:class:`Preprocessing` subclass:

- ``Prep.fit(cfg, splits)`` fits it on ``splits.train`` (and ``splits.info``);
- ``prep.save(run_dir)`` writes its files into the run directory;
- ``Prep.load(run_dir, cfg)`` reads them back (``cfg`` supplies settings that live in
  the config rather than in the files, such as ``data.max_length``).

:class:`seqapps.core.task.Task` calls these through its ``prep_class`` attribute, so a task
declares ``prep_class = MyPrep`` and nothing more. Files are written with
:func:`save_vocab` (one item a line, UTF-8, the format of ``vocab.txt``, ``tags.txt``...)
or :func:`save_json`; :func:`load_vocab` and :func:`load_json` read them back and name
a missing file with one line.
"""

from __future__ import annotations

import json
from pathlib import Path

from seqapps.core.errors import ExportError


class Preprocessing:
    """Base of every task's preprocessing (see the module docstring)."""

    task: str = ""   # names the run directory in messages ("not a pos run directory")

    @classmethod
    def fit(cls, cfg, splits) -> "Preprocessing":
        raise NotImplementedError

    def save(self, run_dir) -> None:
        raise NotImplementedError

    @classmethod
    def load(cls, run_dir, cfg=None) -> "Preprocessing":
        raise NotImplementedError

    @classmethod
    def _path(cls, run_dir, name: str) -> Path:
        path = Path(run_dir) / name
        if not path.is_file():
            what = f"a {cls.task} run directory" if cls.task else "a run directory"
            raise ExportError(f"{run_dir}: missing {name}; expected {what} (or it is incomplete)")
        return path

    @classmethod
    def read_vocab(cls, run_dir, name: str) -> list[str]:
        return load_vocab(cls._path(run_dir, name))

    @classmethod
    def read_json(cls, run_dir, name: str):
        return load_json(cls._path(run_dir, name))


def save_vocab(run_dir, name: str, items) -> None:
    """``items`` one a line (each ending in a newline) in ``run_dir/name``."""
    from seqapps.data import text as textlib  # imports TensorFlow: a TensorFlow-free predictor reads JSON only

    textlib.save_lines(Path(run_dir) / name, items)


def load_vocab(path) -> list[str]:
    from seqapps.data import text as textlib

    return textlib.load_lines(path)


def save_json(run_dir, name: str, data, indent: int | None = None) -> None:
    Path(run_dir, name).write_text(json.dumps(data, ensure_ascii=False, indent=indent) + "\n", encoding="utf-8")


def load_json(path):
    return json.loads(Path(path).read_text(encoding="utf-8"))

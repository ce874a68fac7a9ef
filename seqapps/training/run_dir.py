"""A run directory: everything one training run leaves behind.

::

    config.json     the resolved config          run.json     task, data, versions
    <vocabularies>  written by the task          best.keras   the best checkpoint
    history.csv     per-epoch metrics            logs/        TensorBoard
    curves.png      training curves              metrics.json validation and test scores
    backup/         resumable state while training runs (deleted when it ends)

A leaf: only the directory's paths and files. What a run *means* (its task, model,
endpoints and metadata) is built by :mod:`seqapps.inference.bundle`; the conveniences
``run.predictor()`` / ``run.export()`` live on :class:`seqapps.inference.trained.TrainedRun`.
"""

from __future__ import annotations

import contextlib
import json
import time
import sys
import shutil
import os
import platform
from pathlib import Path

from seqapps.core.errors import ExportError, SeqappsError


def versions() -> dict:
    """What wrote a run; ``tensorflow`` is None where a run trained without it (seqapps.training.prepared)."""
    import importlib.util

    import keras

    from seqapps import __version__

    tf_version = None
    if importlib.util.find_spec("tensorflow") is not None:
        import tensorflow as tf

        tf_version = tf.__version__
    return {"seqapps": __version__, "tensorflow": tf_version, "keras": keras.__version__,
            "python": platform.python_version()}


class Run:
    def __init__(self, path):
        self.dir = Path(path)

    # paths
    config_path = property(lambda self: self.dir / "config.json")
    info_path = property(lambda self: self.dir / "run.json")
    model_path = property(lambda self: self.dir / "best.keras")
    history_path = property(lambda self: self.dir / "history.csv")
    metrics_path = property(lambda self: self.dir / "metrics.json")
    backup_dir = property(lambda self: self.dir / "backup")
    logs_dir = property(lambda self: self.dir / "logs")
    curves_path = property(lambda self: self.dir / "curves.png")

    @classmethod
    def open(cls, path) -> "Run":
        run = cls(path)
        if not run.info_path.exists():
            raise ExportError(f"{path}: not a run directory (no run.json); expected the folder `train` wrote")
        return run

    @property
    def info(self) -> dict:
        return json.loads(self.info_path.read_text())

    def start(self, task: str, data: str, overwrite: bool = False, write=None, **extra) -> None:
        """Make ``dir`` a new run of ``task`` on ``data``: an existing folder is removed (``overwrite``) or,
        when it holds a finished run, kept aside (:meth:`set_aside_finished`); ``write()`` writes the run's
        own files (its config...), then ``run.json`` (task, data, when, the library versions, ``extra``)
        marks the folder a run."""
        if overwrite and self.dir.exists():
            shutil.rmtree(self.dir)
        self.set_aside_finished()
        self.dir.mkdir(parents=True, exist_ok=True)
        if write is not None:
            write()
        self._write_info({"task": task, "data": data, "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
                          "versions": versions(), **extra})

    def record(self, **fields) -> None:
        """Add ``fields`` to ``run.json`` (what the run trained on: backend, replicas...)."""
        self._write_info({**self.info, **fields})

    def _write_info(self, info: dict) -> None:
        tmp = self.info_path.with_name(f".run.json.{os.getpid()}")
        tmp.write_text(json.dumps(info, indent=2) + "\n")
        os.replace(tmp, self.info_path)  # never a half-written run.json

    def set_aside_finished(self) -> None:
        """Keep a finished run in ``dir`` under a timestamped name beside it, so a new run starts there."""
        if self.info_path.exists() and self.finished:
            stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(self.metrics_path.stat().st_mtime))
            kept = self.dir.with_name(f"{self.dir.name}.{stamp}")
            self.dir.rename(kept)
            print(f"{self.dir} held a finished run; kept it as {kept}", file=sys.stderr)

    @property
    def task_name(self) -> str:
        return self.info["task"]

    def read_config(self, config_class):
        """config.json as an instance of ``config_class`` (the task's)."""
        return config_class.load(self.config_path)

    @property
    def metrics(self) -> dict:
        return json.loads(self.metrics_path.read_text()) if self.metrics_path.exists() else {}

    @property
    def finished(self) -> bool:
        return self.metrics_path.exists() and not self.backup_dir.exists()

    def check_model(self) -> Path:
        """The checkpoint's path; an :class:`ExportError` when there is none yet."""
        if not self.model_path.exists():
            raise ExportError(f"{self.dir}: no checkpoint yet ({self.model_path.name}); train at least one epoch")
        return self.model_path


@contextlib.contextmanager
def locked(run_dir):
    """Hold an exclusive OS lock on ``run_dir`` for the block, through the hidden file
    ``.<name>.lock`` beside it (which keeps the holder's process id). The kernel releases it
    when the process ends, however it ends, so a killed run never blocks its own resume; a
    second process asking for it meanwhile gets one error line naming the holder."""
    import fcntl

    run_dir = Path(run_dir)
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    handle = open(run_dir.parent / f".{run_dir.name}.lock", "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise SeqappsError(f"{run_dir} is in use by process {holder} (a training into the same run directory); "
                           "wait for it to end or pass another --run-dir") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    try:
        yield run_dir
    finally:
        handle.close()

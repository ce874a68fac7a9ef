"""A run directory: everything one training run leaves behind.

::

    config.json     the resolved config          run.json     task, data, versions
    <vocabularies>  written by the task          best.keras   the best checkpoint
    history.csv     per-epoch metrics            logs/        TensorBoard
    curves.png      training curves              metrics.json validation and test scores
    backup/         resumable state while training runs (deleted when it ends)

A leaf: only the directory's paths and files. What a run *means* (its task, model,
endpoints and metadata) is built by :mod:`seqapps.serving.bundle`; the conveniences
``run.predictor()`` / ``run.export()`` live on :class:`seqapps.serving.trained.TrainedRun`.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path

from seqapps.errors import ExportError


def versions() -> dict:
    import keras
    import tensorflow as tf

    from seqapps import __version__

    return {"seqapps": __version__, "tensorflow": tf.__version__, "keras": keras.__version__,
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

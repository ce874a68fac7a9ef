"""A run directory: everything one training run leaves behind.

::

    config.json     the resolved config          run.json     task, data, versions
    <vocabularies>  written by the task          best.keras   the best checkpoint
    history.csv     per-epoch metrics            logs/        TensorBoard
    curves.png      training curves              metrics.json validation and test scores
    backup/         resumable state while training runs (deleted when it ends)
"""

from __future__ import annotations

import json
import platform
from pathlib import Path

from seqapps import registry
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
    def task(self):
        return registry.get(self.info["task"])

    @property
    def config(self):
        return self.task.config_class.load(self.config_path)

    @property
    def metrics(self) -> dict:
        return json.loads(self.metrics_path.read_text()) if self.metrics_path.exists() else {}

    @property
    def finished(self) -> bool:
        return self.metrics_path.exists() and not self.backup_dir.exists()

    def load_model(self):
        import keras

        if not self.model_path.exists():
            raise ExportError(f"{self.dir}: no checkpoint yet ({self.model_path.name}); train at least one epoch")
        self.task  # imports the task module so its custom layers are registered
        return keras.saving.load_model(self.model_path)

    def export(self, out_dir):
        """Export the best checkpoint as a raw-input SavedModel (see :mod:`seqapps.export`)."""
        from seqapps.export import export

        return export(self.dir, out_dir)

    def predictor(self):
        """An in-memory Predictor over the best checkpoint (same code path as an export)."""
        from seqapps.predict import Predictor

        task, cfg = self.task, self.config
        prep = task.load_preprocessing(cfg, self.dir)
        return Predictor.in_memory(task, task.endpoints(self.load_model(), prep, cfg),
                                   metadata=self.metadata(prep))

    def metadata(self, prep=None) -> dict:
        task, cfg = self.task, self.config
        prep = prep if prep is not None else task.load_preprocessing(cfg, self.dir)
        return {"task": task.name, "topology": task.topology, "description": task.description,
                "dataset": self.info.get("data"), **task.metadata(prep), "metrics": self.metrics,
                "config": cfg.to_dict(), "versions": versions()}

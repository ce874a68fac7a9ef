"""The one place a run's serving endpoints and its export metadata are built.

:class:`Bundle` opens a run directory and gives its task, resolved config,
preprocessing, best model, the task's endpoints over them, and the metadata an export
carries (``metadata.json``). :mod:`seqapps.inference.export` writes a bundle as a SavedModel;
:mod:`seqapps.inference.predictor` wraps one as an in-memory Predictor.
"""

from __future__ import annotations

from functools import cached_property

from seqapps.core import bounds, registry
from seqapps.training.run_dir import Run, versions


def task_of(run: Run):
    """The Task instance that trained ``run``."""
    return registry.get(run.task_name)


def config_of(run: Run, task=None):
    return run.read_config((task or task_of(run)).config_class)


def load_model(run: Run, task=None):
    """The best checkpoint of ``run`` (its task module is imported first so custom layers are registered)."""
    import keras

    path = run.check_model()
    task or task_of(run)
    return keras.saving.load_model(path)


def signature_name(index: int, name: str) -> str:
    """The first endpoint is served as ``serving_default``; the others keep their names."""
    return "serving_default" if index == 0 else name


def signature_docs(endpoints: dict) -> dict:
    """Each signature's description and inputs (name -> dtype and shape), for metadata.json."""
    return {signature_name(i, name): {
        "description": e.description,
        "inputs": {s.name: {"dtype": s.dtype.name, "shape": s.shape.as_list()} for s in e.input_signature}}
        for i, (name, e) in enumerate(endpoints.items())}


class Bundle:
    """A run's task, config, preprocessing, model and endpoints, each built once when first asked for."""

    def __init__(self, run_dir):
        self.run = run_dir if isinstance(run_dir, Run) else Run.open(run_dir)
        self.task = task_of(self.run)
        self.config = config_of(self.run, self.task)

    @cached_property
    def prep(self):
        return self.task.load_preprocessing(self.config, self.run.dir)

    @cached_property
    def model(self):
        return load_model(self.run, self.task)

    @cached_property
    def endpoints(self) -> dict:
        """Signature functions by name (the task's serving spec over this run's model and preprocessing),
        each checking its inputs against :mod:`seqapps.core.bounds` first."""
        from seqapps.inference.checks import bounded_endpoints

        return bounded_endpoints(self.task.endpoints(self.model, self.prep, self.config), self.task.name)

    def trackables(self) -> list:
        return self.task.trackables(self.prep)

    def metadata(self, signatures: bool = False) -> dict:
        """What an export's metadata.json holds; ``signatures`` adds each signature's inputs."""
        task, cfg = self.task, self.config
        meta = {"task": task.name, "topology": task.topology, "description": task.description,
                "dataset": self.run.info.get("data"), **task.metadata(self.prep),
                "decoding": task.decoding(cfg), "metrics": self.run.metrics,
                "config": cfg.to_dict(), "versions": versions(), "bounds": bounds.table(self.task.name)}
        if signatures:
            meta["signatures"] = signature_docs(self.endpoints)
        return meta

"""Predictor: one object over an export (or a run directory) that returns plain Python.

``seqapps.load(path).predict([...])``. Tasks subclass :class:`Predictor` to add
their own helpers (``translate``, ``generate``...) and to turn output tensors into
Python objects.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from seqapps.errors import DataError, ExportError


class Predictor:
    def __init__(self, task, signatures: dict, metadata: dict):
        self.task = task
        self.signatures = signatures  # name -> (callable(**tensors) -> dict, {input: TensorSpec})
        self.metadata = metadata

    # -- construction -------------------------------------------------------------
    @classmethod
    def in_memory(cls, task, endpoints: dict, metadata: dict) -> "Predictor":
        import tensorflow as tf

        from seqapps.serving.bundle import signature_name

        signatures = {}
        for i, (name, e) in enumerate(endpoints.items()):
            fn = tf.function(e.fn, input_signature=e.input_signature)
            specs = {s.name: s for s in e.input_signature}
            signatures[signature_name(i, name)] = (
                lambda _fn=fn, _specs=specs, **kw: _fn(*[kw[k] for k in _specs]), specs)
        return (task.predictor_class or cls)(task, signatures, metadata)

    @classmethod
    def from_run(cls, run_dir) -> "Predictor":
        """An in-memory Predictor over a run's best checkpoint (the same endpoints an export holds)."""
        from seqapps.serving.bundle import Bundle

        bundle = run_dir if isinstance(run_dir, Bundle) else Bundle(run_dir)
        return cls.in_memory(bundle.task, bundle.endpoints, bundle.metadata())

    @classmethod
    def from_export(cls, path) -> "Predictor":
        import tensorflow as tf

        from seqapps import registry

        path = Path(path)
        meta_path = path / "metadata.json"
        if not (path / "saved_model.pb").exists() or not meta_path.exists():
            raise ExportError(f"{path}: not a seqapps export (expected saved_model.pb and metadata.json)")
        metadata = json.loads(meta_path.read_text())
        task = registry.get(metadata["task"])
        loaded = tf.saved_model.load(str(path))
        signatures = {name: (fn, dict(fn.structured_input_signature[1])) for name, fn in loaded.signatures.items()}
        predictor = (task.predictor_class or cls)(task, signatures, metadata)
        predictor._loaded = loaded  # keep the object (and its variables) alive
        return predictor

    # -- calling ------------------------------------------------------------------------
    def call(self, signature: str = "serving_default", **inputs) -> dict:
        """Run one signature on Python/numpy inputs; returns numpy arrays by output name."""
        import tensorflow as tf

        if signature not in self.signatures:
            raise ExportError(f"no signature {signature!r}; this export has: {', '.join(self.signatures)}")
        fn, specs = self.signatures[signature]
        unknown = sorted(set(inputs) - set(specs))
        if unknown:
            raise ExportError(f"signature {signature!r} has no input {unknown[0]!r}; "
                              f"its inputs are: {', '.join(specs)}")
        missing = set(specs) - set(inputs)
        if missing:
            raise ExportError(f"signature {signature!r} needs inputs: {', '.join(sorted(missing))}")
        tensors = {k: tf.convert_to_tensor(v, dtype=specs[k].dtype) for k, v in inputs.items()}
        return {k: v.numpy() for k, v in fn(**tensors).items()}

    def predict(self, inputs):
        """Task-specific: raw inputs -> list of plain Python results."""
        raise NotImplementedError

    def cli_predict(self, inputs: list[str], input_file: str | None) -> list[str]:
        """What ``python -m seqapps predict`` prints. Inputs come from the command line,
        else ``--input FILE`` (one per line), else stdin. Tasks whose input is not a
        line of text (a CSV window...) override this."""
        if input_file:
            try:
                with open(input_file, encoding="utf-8") as f:
                    inputs = inputs + f.read().splitlines()
            except OSError as e:
                raise DataError(f"{input_file}: {e.strerror}") from None
        elif not inputs:
            import sys

            inputs = sys.stdin.read().splitlines()
        return self.format(inputs, self.predict(inputs))

    def format(self, inputs, results) -> list[str]:
        """Lines the CLI prints for ``predict``."""
        return [f"{r}" for r in results]


def load(path) -> Predictor:
    """Load an export (or a run directory) as a :class:`Predictor`."""
    path = Path(path)
    if (path / "run.json").exists():
        return Predictor.from_run(path)
    if not path.exists():
        raise ExportError(f"{path}: no such export or run directory")
    return Predictor.from_export(path)


def decode_strings(array) -> list:
    """numpy bytes array -> nested lists of str."""
    return np.vectorize(lambda b: b.decode("utf-8", "replace"), otypes=[object])(array).tolist() if np.size(array) \
        else np.asarray(array).astype(str).tolist()


def length_batches(indices, inputs, batch_size: int) -> list[list[int]]:
    """``indices`` ordered by the length of ``inputs[i]``, in chunks of ``batch_size``: each
    call then pads its rows to about the same length."""
    order = sorted(indices, key=lambda i: len(inputs[i]))
    return [order[start:start + batch_size] for start in range(0, len(order), batch_size)]


def pad_strings(rows, fill: str = "") -> np.ndarray:
    """Lists of str -> an object array ``[rows, longest (at least 1)]`` padded with ``fill`` on the right."""
    width = max([len(r) for r in rows] + [1])
    return np.array([list(r) + [fill] * (width - len(r)) for r in rows], dtype=object)

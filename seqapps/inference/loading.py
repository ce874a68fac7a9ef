"""``seqapps.load``: a run directory, a SavedModel export or an ONNX export as a Predictor."""

from __future__ import annotations

from pathlib import Path

from seqapps.core.errors import ExportError


def load(path):
    """Load an export (or a run directory) as a :class:`~seqapps.inference.predictor.Predictor`; an ONNX
    export is answered by ONNX Runtime without importing TensorFlow."""
    path = Path(path)
    if (path / "model.onnx").is_file():
        from seqapps.inference import onnx_runtime

        return onnx_runtime.load(path)
    from seqapps.inference.predictor import Predictor

    if (path / "run.json").exists():
        return Predictor.from_run(path)
    if not path.exists():
        raise ExportError(f"{path}: no such export or run directory")
    return Predictor.from_export(path)

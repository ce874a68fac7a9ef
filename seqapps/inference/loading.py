"""``seqapps.load``: a run directory, a SavedModel, ONNX or LiteRT export as a Predictor."""

from __future__ import annotations

import os
from pathlib import Path

from seqapps.core.errors import DataError, ExportError


def load(path):
    """Load an export (or a run directory) as a :class:`~seqapps.inference.predictor.Predictor`; an ONNX
    export is answered by ONNX Runtime, a LiteRT export by the LiteRT runtime, without importing TensorFlow."""
    if not isinstance(path, (str, os.PathLike)):
        raise DataError(f"load() takes the path of an export or run directory (a str or os.PathLike), got "
                        f"{type(path).__name__} {path!r}")
    path = Path(path)
    if (path / "model.onnx").is_file():
        from seqapps.inference import onnx_runtime

        return onnx_runtime.load(path)
    if (path / "model.tflite").is_file():
        from seqapps.inference import litert

        return litert.load(path)
    from seqapps.inference.predictor import Predictor

    if (path / "run.json").exists():
        return Predictor.from_run(path)
    if not path.exists():
        raise ExportError(f"{path}: no such export or run directory")
    return Predictor.from_export(path)

"""SavedModels with raw-input signatures, plus metadata.json, written atomically.

The export is written into a temporary sibling folder and renamed into place only
when complete, so a failure leaves no half-written export and never touches an
existing one.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from seqapps.training import backends as engine
from seqapps.core.errors import ExportError
from seqapps.inference.bundle import Bundle, signature_name
from seqapps.inference.folders import check_target, remove_stale, swap_into_place, umask


def build_archive(model, endpoints: dict, trackables=()):
    import keras

    archive = keras.export.ExportArchive()
    archive.track(model)
    for layer in trackables:
        archive.track(layer)
    for i, (name, endpoint) in enumerate(endpoints.items()):
        archive.add_endpoint(signature_name(i, name), endpoint.fn, input_signature=endpoint.input_signature)
    return archive


def export(run_dir, out_dir, format: str = "savedmodel", quantize: str = "none") -> Path:
    """Export the best checkpoint of ``run_dir`` to ``out_dir``; returns ``out_dir``.

    ``format`` ``onnx`` or ``litert`` writes an ONNX or LiteRT graph over ids and its tokenizer instead,
    with ``quantize`` ``int8``, ``float16`` or ``none`` (:mod:`seqapps.inference.formats`).

    Always written with the TensorFlow backend: from a process that runs another one, the
    export is written by a child process that runs TensorFlow."""
    if engine.current_backend() != "tensorflow":
        run_dir = run_dir.run.dir if isinstance(run_dir, Bundle) else getattr(run_dir, "dir", run_dir)
        engine.run_elsewhere("tensorflow", ["export", run_dir, out_dir, "--format", format, "--quantize", quantize],
                             "export")
        return Path(out_dir)
    out_dir = Path(out_dir)
    check_target(out_dir)
    if format != "savedmodel" or quantize != "none":
        from seqapps.inference import formats

        if format == "savedmodel":
            raise ExportError("--quantize applies to --format onnx and --format litert; a SavedModel keeps "
                              "float32 weights")
        return formats.write(run_dir if isinstance(run_dir, Bundle) else Bundle(run_dir), out_dir, format, quantize)
    bundle = run_dir if isinstance(run_dir, Bundle) else Bundle(run_dir)
    endpoints = bundle.endpoints  # loads the model; a run without a checkpoint fails before anything is written
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(out_dir)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.{os.getpid()}.", suffix=".tmp", dir=out_dir.parent))
    try:
        tmp.chmod(0o777 & ~umask())  # mkdtemp's 0700 would hide the export from a server running as another user
        archive = build_archive(bundle.model, endpoints, bundle.trackables())
        archive.write_out(str(tmp), verbose=False)
        metadata = bundle.metadata(signatures=True)
        (tmp / "metadata.json").write_text(json.dumps(metadata, indent=2, default=str) + "\n")
        swap_into_place(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir



"""SavedModels with raw-input signatures, plus metadata.json, written atomically.

The export is written into a temporary sibling folder and renamed into place only
when complete, so a failure leaves no half-written export and never touches an
existing one.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path

from seqapps.training import backends as engine
from seqapps.core.errors import ExportError
from seqapps.inference.bundle import Bundle, signature_name


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

    ``format`` ``onnx`` writes an ONNX graph over ids and its tokenizer instead, with ``quantize``
    ``int8``, ``float16`` or ``none`` (:mod:`seqapps.inference.formats`).

    Always written with the TensorFlow backend: from a process that runs another one, the
    export is written by a child process that runs TensorFlow."""
    if engine.current_backend() != "tensorflow":
        run_dir = run_dir.run.dir if isinstance(run_dir, Bundle) else getattr(run_dir, "dir", run_dir)
        engine.run_elsewhere("tensorflow", ["export", run_dir, out_dir, "--format", format, "--quantize", quantize],
                             "export")
        return Path(out_dir)
    out_dir = Path(out_dir)
    _check_target(out_dir)
    if format != "savedmodel" or quantize != "none":
        from seqapps.inference import formats

        if format == "savedmodel":
            raise ExportError("--quantize applies to --format onnx; a SavedModel keeps float32 weights")
        return formats.write(run_dir if isinstance(run_dir, Bundle) else Bundle(run_dir), out_dir, format, quantize)
    bundle = run_dir if isinstance(run_dir, Bundle) else Bundle(run_dir)
    endpoints = bundle.endpoints  # loads the model; a run without a checkpoint fails before anything is written
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(out_dir)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.{os.getpid()}.", suffix=".tmp", dir=out_dir.parent))
    try:
        tmp.chmod(0o777 & ~_umask())  # mkdtemp's 0700 would hide the export from a server running as another user
        archive = build_archive(bundle.model, endpoints, bundle.trackables())
        archive.write_out(str(tmp), verbose=False)
        metadata = bundle.metadata(signatures=True)
        (tmp / "metadata.json").write_text(json.dumps(metadata, indent=2, default=str) + "\n")
        _swap_into_place(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def _check_target(out_dir: Path) -> None:
    """An export may replace an export or fill an empty folder; anything else is refused."""
    if out_dir.is_file() or (out_dir.exists() and not out_dir.is_dir()):
        raise ExportError(f"{out_dir} is a file, not a folder; choose another path for the export")
    if out_dir.is_dir() and not is_export(out_dir) and any(out_dir.iterdir()):
        raise ExportError(f"{out_dir} exists and is not an export; choose another path")


def is_export(folder: Path) -> bool:
    """A SavedModel export, or an ONNX one (:mod:`seqapps.inference.formats`)."""
    return (folder / "saved_model.pb").exists() or ((folder / "model.onnx").exists()
                                                    and (folder / "metadata.json").exists())


def remove_stale(out_dir: Path) -> list[Path]:
    """Remove the temporary folders that exports to ``out_dir`` killed mid-way left beside it
    (``.NAME.PID.*.tmp`` and ``.NAME.old-PID`` whose process is gone); returns them."""
    removed = []
    for path in out_dir.parent.glob(f".{out_dir.name}.*"):
        match = re.fullmatch(rf"\.{re.escape(out_dir.name)}\.(?:(\d+)\..*\.tmp|old-(\d+))", path.name)
        if match and path.is_dir() and not _alive(int(match.group(1) or match.group(2))):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _swap_into_place(tmp: Path, out_dir: Path) -> None:
    """Rename ``tmp`` to ``out_dir``; an existing export is replaced only after the new one is whole."""
    _check_target(out_dir)
    old = None
    if out_dir.exists():
        old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
        out_dir.rename(old)
    try:
        tmp.rename(out_dir)
    except BaseException:
        if old is not None:
            old.rename(out_dir)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)

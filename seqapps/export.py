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

from seqapps.errors import ExportError
from seqapps.run import Run


def build_archive(model, endpoints: dict, trackables=()):
    import keras

    archive = keras.export.ExportArchive()
    archive.track(model)
    for layer in trackables:
        archive.track(layer)
    for i, (name, endpoint) in enumerate(endpoints.items()):
        archive.add_endpoint("serving_default" if i == 0 else name, endpoint.fn,
                             input_signature=endpoint.input_signature)
    return archive


def signature_docs(endpoints: dict) -> dict:
    return {("serving_default" if i == 0 else name): {
        "description": e.description,
        "inputs": {s.name: {"dtype": s.dtype.name, "shape": s.shape.as_list()} for s in e.input_signature}}
        for i, (name, e) in enumerate(endpoints.items())}


def export(run_dir, out_dir) -> Path:
    """Export the best checkpoint of ``run_dir`` to ``out_dir``; returns ``out_dir``."""
    run = Run.open(run_dir)
    task, cfg = run.task, run.config
    prep = task.load_preprocessing(cfg, run.dir)
    model = run.load_model()
    endpoints = task.endpoints(model, prep, cfg)
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    try:
        archive = build_archive(model, endpoints, task.trackables(prep))
        archive.write_out(str(tmp), verbose=False)
        metadata = {**run.metadata(prep), "signatures": signature_docs(endpoints)}
        (tmp / "metadata.json").write_text(json.dumps(metadata, indent=2, default=str) + "\n")
        _swap_into_place(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def _swap_into_place(tmp: Path, out_dir: Path) -> None:
    """Rename ``tmp`` to ``out_dir``; an existing export is replaced only after the new one is whole."""
    if out_dir.exists() and not (out_dir / "saved_model.pb").exists() and any(out_dir.iterdir()):
        raise ExportError(f"{out_dir} exists and is not an export; choose another path")
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

"""The exports a server holds: found in a folder, loaded with TensorFlow alone, reloaded when replaced.

A served folder is either one export (``saved_model.pb`` in it, an ONNX export's ``model.onnx`` or a
LiteRT export's ``model.tflite``: the runtime is picked from the folder) or a folder of them, each
served under its folder name. A model folder may also follow TF Serving's layout, numbered
version folders (``sentiment/3/saved_model.pb``); the highest is served. Names come only
from this listing: a request names a model, it never names a path.

seqapps' exports are renamed into place whole, so a changed folder is a new version: it is
loaded beside the old one, and only then the name points at it. A request holds the model
it started with, so requests in flight finish on the old version.
"""

from __future__ import annotations

import gc
import json
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass
class Signature:
    name: str
    fn: object           # the concrete function: fn(**tensors) -> {output: tensor}
    inputs: dict         # input name -> tf.TensorSpec
    outputs: dict        # output name -> tf.TensorSpec
    batchable: bool      # whether concurrent requests may share one call (see batching.can_batch)

    def __call__(self, arrays: dict) -> dict:
        """numpy inputs (already checked by :mod:`.rest`) -> numpy outputs."""
        import tensorflow as tf

        tensors = {k: tf.constant(arrays[k], dtype=spec.dtype) for k, spec in self.inputs.items()}
        return {k: v.numpy() for k, v in self.fn(**tensors).items()}


@dataclass
class Model:
    name: str
    version: int
    path: Path
    metadata: dict
    signatures: dict
    loaded: object = None                                # keeps the SavedModel's variables alive
    batchers: dict = field(default_factory=dict)         # filled by batching.Batching, per model version
    limits: dict | None = None                           # the bounds requests are held to (http.costs), set when served


def find_exports(root: Path) -> dict:
    """Model name -> (export folder, version from the layout or None) for everything under ``root``."""
    root = Path(root)
    if main_file(root).is_file():
        return {root.resolve().name: (root, None)}
    found = {}
    for sub in sorted(root.iterdir()) if root.is_dir() else []:
        if not sub.is_dir() or sub.name.startswith(".") or not NAME.match(sub.name):
            continue  # exports being written are hidden temporary folders
        if main_file(sub).is_file():
            found[sub.name] = (sub, None)
            continue
        numbered = [(int(v.name), v) for v in sub.iterdir() if v.name.isdigit() and main_file(v).is_file()]
        if numbered:
            number, folder = max(numbered)
            found[sub.name] = (folder, number)
    return found


def main_file(folder: Path) -> Path:
    """``model.onnx`` for an ONNX export, ``model.tflite`` for a LiteRT one (:mod:`seqapps.inference.formats`),
    else ``saved_model.pb``."""
    for name in ("model.onnx", "model.tflite"):
        if (folder / name).is_file():
            return folder / name
    return folder / "saved_model.pb"


def stamp(folder: Path):
    """What changes when an export is replaced or its copy goes on: the folder's inode and every file's
    path, inode, size and modification time (an export copied in place file by file, which failed to
    load while half there, is loaded again once the copy ends; a few stats a look)."""
    files = []
    for path in sorted(Path(folder).rglob("*")):
        st = path.stat()
        files.append((str(path.relative_to(folder)), st.st_ino, st.st_size, st.st_mtime_ns))
    return folder.stat().st_ino, tuple(files)


def load(name: str, folder: Path, version: int) -> Model:
    import tensorflow as tf

    from seqapps.http.batching import can_batch

    if main_file(folder).name != "saved_model.pb":
        return load_onnx(name, folder, version)
    meta_path = folder / "metadata.json"
    metadata = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    loaded = tf.saved_model.load(str(folder))
    signatures = {}
    for sig_name, fn in loaded.signatures.items():
        inputs = dict(fn.structured_input_signature[1])
        outputs = dict(fn.structured_outputs)
        signatures[sig_name] = Signature(sig_name, fn, inputs, outputs, can_batch(inputs, outputs))
    return Model(name, version, folder, metadata, signatures, loaded)


class OnnxSignature(Signature):
    """A signature of an ONNX export: numpy in, numpy out, through ONNX Runtime (no tensors)."""

    def __call__(self, arrays: dict) -> dict:
        return self.fn(**{k: arrays[k] for k in self.inputs})


def load_onnx(name: str, folder: Path, version: int) -> Model:
    """An ONNX or LiteRT export served under the same REST contract: its signatures' inputs and outputs
    are described with TensorFlow's specs, so requests are checked and answered as for a SavedModel."""
    import tensorflow as tf

    from seqapps.http.batching import can_batch
    from seqapps.inference import litert, onnx_runtime

    def spec(dtype, shape):
        return tf.TensorSpec(shape, tf.string if dtype == "string" else tf.as_dtype(dtype))

    runtime = onnx_runtime if main_file(folder).name == "model.onnx" else litert
    sigs, metadata = runtime.signatures(folder, threads=1)
    outputs = onnx_runtime.OUTPUTS[metadata["task"]]
    signatures = {}
    for sig_name, (fn, specs) in sigs.items():
        inputs = {k: spec(s.dtype, s.shape) for k, s in specs.items()}
        outs = {k: spec(*v) for k, v in outputs[sig_name].items()}
        signatures[sig_name] = OnnxSignature(sig_name, fn, inputs, outs, can_batch(inputs, outs))
    return Model(name, version, folder, metadata, signatures)


def freeze_heap() -> None:
    """Keep what is loaded now out of the cyclic garbage collector's passes. With two exports loaded a
    full collection walks about half a million objects (250-310 ms measured on 2 cores), a pause that
    every request in flight waits for: under load it was the server's p99. Unfreezing first lets one
    collection free a replaced model's reference cycles before the rest is frozen again."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


class Store:
    """The models being served, by name; :meth:`refresh` (run by a watcher thread) picks up changes."""

    def __init__(self, root, log=print):
        self.root = Path(root)
        self.log = log
        self.models: dict[str, Model] = {}
        self.loading: dict[str, int] = {}       # name -> version being loaded now
        self.errors: dict[str, str] = {}        # name -> why its newest export failed to load
        self._stamps: dict[str, tuple] = {}
        self._missing: dict[str, int] = {}
        self._stop = threading.Event()

    def get(self, name: str) -> Model | None:
        return self.models.get(name) if NAME.match(name or "") else None

    def refresh(self) -> None:
        """Load what is new or replaced; drop what has been gone for two looks in a row (an export
        being swapped in is briefly absent)."""
        found = find_exports(self.root)
        changed = False  # a model loaded, replaced or dropped
        for name in list(self.models):
            if name not in found:
                self._missing[name] = self._missing.get(name, 0) + 1
                if self._missing[name] >= 2:
                    self.log(f"{name}: export removed, no longer served")
                    self.models.pop(name, None)
                    self._stamps.pop(name, None)
                    changed = True
        for name, (folder, number) in found.items():
            self._missing.pop(name, None)
            try:
                current = stamp(folder)
            except OSError:
                continue  # being swapped right now: look again next time
            if self._stamps.get(name) == current:
                continue
            old = self.models.get(name)
            version = number if number is not None else self._next_version(folder, old)
            self.loading[name] = version
            try:
                model = load(name, folder, version)
            except Exception as e:  # a broken export must not stop the others, nor the old version
                self.errors[name] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
                self.log(f"{name}: could not load {folder}: {self.errors[name]}")
            else:
                self.models[name] = model  # one assignment: a request sees the old model or the new one
                changed = True
                self.errors.pop(name, None)
                self.log(f"{name}: serving version {version} from {folder}")
            finally:
                self.loading.pop(name, None)
                self._stamps[name] = current
        if changed:
            freeze_heap()

    @staticmethod
    def _next_version(folder: Path, old: Model | None) -> int:
        """The export's time in whole seconds (TF Serving versions are numbers), always above the last."""
        version = int(main_file(folder).stat().st_mtime)
        return max(version, old.version + 1) if old is not None else version

    def watch(self, every: float) -> threading.Thread:
        def loop():
            while not self._stop.wait(every):
                try:
                    self.refresh()
                except Exception as e:  # a listing that fails now may work next time
                    self.log(f"watching {self.root}: {e}")

        thread = threading.Thread(target=loop, name="seqapps-watch", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()

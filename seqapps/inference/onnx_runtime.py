"""An ONNX export (:mod:`seqapps.inference.formats`) as a Predictor, with ONNX Runtime and NumPy only.

Nothing here imports TensorFlow or Keras: ``seqapps.load(OUT).predict([...])`` on an ONNX export
works where TensorFlow is not installed. Each signature runs the tokenizer
(:mod:`seqapps.inference.tokenizer`), the ONNX graph, and the few steps that turn its numbers
into the SavedModel's outputs (a label from probabilities), so ``call`` returns the same
output names and values as the SavedModel's signature.

The task's helpers (``predict``, ``format``) are re-stated here for the tasks that have an ONNX
export, because the tasks' own predictor classes live beside their TensorFlow code; the tests
compare the two on the same inputs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seqapps.core.errors import DataError, ExportError
from seqapps.inference.predictor import Predictor


def is_onnx(path) -> bool:
    return (Path(path) / "model.onnx").is_file()


@dataclass(frozen=True)
class ArraySpec:
    """A signature input without TensorFlow: dtype name (``string``, ``int64``, ``float32``...) and shape."""

    name: str
    dtype: str
    shape: tuple

    def convert(self, value, signature: str) -> np.ndarray:
        shape_text = "[" + ", ".join("any" if d is None else str(d) for d in self.shape) + "]"
        try:
            if self.dtype == "string":
                array = np.asarray(value, dtype=object)
                for item in array.reshape(-1):
                    if not isinstance(item, (str, bytes)):
                        raise TypeError(f"{type(item).__name__} is not a string")
            else:
                array = np.asarray(value, dtype=self.dtype)
        except (TypeError, ValueError) as e:
            raise DataError(f"input {self.name!r} of signature {signature!r} must be {self.dtype} {shape_text}; "
                            f"got {type(value).__name__} ({str(e).splitlines()[0][:120]})") from None
        if array.ndim != len(self.shape) or any(d is not None and d != n for d, n in zip(self.shape, array.shape)):
            raise DataError(f"input {self.name!r} of signature {signature!r} must be {self.dtype} {shape_text}; "
                            f"got shape {list(array.shape)}")
        return array


THREADS = 1  # ONNX Runtime threads per call: on small recurrent graphs one was faster than its default
            # (a pool of one per core) both for one text and for batches of 64 (benchmarks/formats.py)


def session(path, threads: int = THREADS):
    """An ONNX Runtime session over ``path`` (``threads`` 0: ONNX Runtime's default)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def signatures(path, threads: int = THREADS) -> tuple[dict, dict]:
    """``({name: (fn(**numpy inputs) -> {output: numpy}, {input: ArraySpec})}, metadata)`` of an ONNX export."""
    path = Path(path)
    meta_path = path / "metadata.json"
    if not meta_path.is_file():
        raise ExportError(f"{path}: not a seqapps export (expected metadata.json beside model.onnx)")
    metadata = json.loads(meta_path.read_text())
    task = metadata.get("task")
    if task not in SIGNATURES:
        raise ExportError(f"{path}: ONNX exports of {task!r} are not supported by this version of seqapps")
    return SIGNATURES[task](path, metadata, session(path / "model.onnx", threads)), metadata


def _sentiment_signatures(path: Path, metadata: dict, sess) -> dict:
    from seqapps.inference.tokenizer import TextTokenizer

    tokenizer = TextTokenizer.load(path)
    labels = np.array([label.encode("utf-8") for label in metadata["labels"]], dtype=object)
    wanted = [i.name for i in sess.get_inputs()]

    def serve(text):
        texts = [t.decode("utf-8", "replace") if isinstance(t, bytes) else t for t in np.asarray(text).tolist()]
        if not texts:
            return {"label": labels[:0], "probabilities": np.zeros((0, len(labels)), np.float32)}
        ids, _ = tokenizer.encode(texts)
        (probs,) = sess.run(["probabilities"], {k: ids[k] for k in wanted})
        return {"label": labels[np.argmax(probs, axis=-1)], "probabilities": probs}

    return {"serving_default": (serve, {"text": ArraySpec("text", "string", (None,))})}


SIGNATURES = {"sentiment": _sentiment_signatures}
OUTPUTS = {"sentiment": {"serving_default": {"label": ("string", (None,)), "probabilities": ("float32", (None, None))}}}


class OnnxPredictor(Predictor):
    runtime = "onnx"

    @property
    def task(self):
        """The registered task (imports its module, and so TensorFlow: only ``evaluate`` asks for it)."""
        from seqapps.core import registry

        return registry.get(self.metadata["task"])

    @task.setter
    def task(self, value):
        pass  # looked up when asked for, so loading never imports the task's TensorFlow code

    def call(self, signature: str = "serving_default", **inputs) -> dict:
        fn, specs = self.signature_for(signature, inputs)
        return fn(**{k: specs[k].convert(v, signature) for k, v in inputs.items()})


def predictor_class(task: str) -> type:
    """:class:`OnnxPredictor` with the task's own helpers (``predict``, ``format``...) when its folder has
    a TensorFlow-free ``predicting.py`` with a ``Predictions`` mixin, as the SavedModel's predictor has them."""
    import importlib
    import importlib.util

    module = f"tasks.{task}.predicting"
    if not task.isidentifier() or importlib.util.find_spec(module) is None:
        return OnnxPredictor
    mixin = importlib.import_module(module).Predictions
    return type(f"{mixin.__name__}OnnxPredictor", (mixin, OnnxPredictor), {})


def load(path, threads: int = THREADS) -> OnnxPredictor:
    sigs, metadata = signatures(path, threads)
    return predictor_class(str(metadata.get("task", "")))(None, sigs, metadata)

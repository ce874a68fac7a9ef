"""Predictor: one object over an export (or a run directory) that returns plain Python.

``seqapps.load(path).predict([...])``. Tasks subclass :class:`Predictor` to add
their own helpers (``translate``, ``generate``...) and to turn output tensors into
Python objects.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from seqapps.core.errors import DataError, ExportError

MAX_BEAM = 64  # widest beam a signature accepts (each step keeps batch x width hypotheses)


class Predictor:
    def __init__(self, task, signatures: dict, metadata: dict):
        self.task = task
        self.signatures = signatures  # name -> (callable(**tensors) -> dict, {input: TensorSpec})
        self.metadata = metadata

    # -- construction -------------------------------------------------------------
    @classmethod
    def in_memory(cls, task, endpoints: dict, metadata: dict) -> "Predictor":
        import tensorflow as tf

        from seqapps.inference.bundle import signature_name

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
        from seqapps.inference.bundle import Bundle

        bundle = run_dir if isinstance(run_dir, Bundle) else Bundle(run_dir)
        return cls.in_memory(bundle.task, bundle.endpoints, bundle.metadata())

    @classmethod
    def from_export(cls, path) -> "Predictor":
        path = Path(path)
        import tensorflow as tf

        from seqapps.core import registry

        meta_path = path / "metadata.json"
        if not (path / "saved_model.pb").exists() or not meta_path.exists():
            raise ExportError(f"{path}: not a seqapps export (expected saved_model.pb and metadata.json, "
                              "or model.onnx and metadata.json)")
        metadata = json.loads(meta_path.read_text())
        task = registry.get(metadata["task"])
        loaded = tf.saved_model.load(str(path))
        signatures = {name: (fn, dict(fn.structured_input_signature[1])) for name, fn in loaded.signatures.items()}
        predictor = (task.predictor_class or cls)(task, signatures, metadata)
        predictor._loaded = loaded  # keep the object (and its variables) alive
        return predictor

    # -- calling ------------------------------------------------------------------------
    def signature_for(self, signature: str, inputs: dict):
        """``(fn, specs)`` of ``signature``, after checking that ``inputs`` name exactly its inputs
        (one ExportError line otherwise); every runtime's ``call`` starts here."""
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
        return fn, specs

    def call(self, signature: str = "serving_default", **inputs) -> dict:
        """Run one signature on Python/numpy inputs; returns numpy arrays by output name."""
        import tensorflow as tf

        from seqapps.inference import checks

        fn, specs = self.signature_for(signature, inputs)
        tensors = {k: _tensor(v, specs[k], k, signature) for k, v in inputs.items()}
        try:
            out = fn(**tensors)
        except tf.errors.InvalidArgumentError as e:
            text = checks.message(e)
            if text is None:
                raise
            raise DataError(text) from None
        return {k: v.numpy() for k, v in out.items()}

    def predict(self, inputs):
        """Task-specific: raw inputs -> list of plain Python results."""
        raise NotImplementedError

    def cli_predict(self, inputs: list[str], input_file: str | None):
        """The lines ``python -m seqapps predict`` prints, as they are ready. Inputs come from
        the command line, then ``--input FILE`` (one per line), else stdin; files and stdin are
        read and answered in chunks of :data:`CHUNK` lines, so memory stays bounded however
        long they are. Tasks whose input is not a line of text (a CSV window...) override this."""
        for chunk in input_chunks(inputs, input_file):
            yield from self.format(chunk, self.predict(chunk))

    def format(self, inputs, results) -> list[str]:
        """Lines the CLI prints for ``predict``."""
        return [f"{r}" for r in results]


def _tensor(value, spec, name: str, signature: str):
    """``value`` as a tensor of the input's dtype and rank, or a DataError naming the input."""
    import tensorflow as tf

    if spec.dtype == tf.string and spec.shape.rank is not None:  # the ONNX/LiteRT predictors' check and words
        from seqapps.inference.array_spec import ArraySpec

        value = ArraySpec(name, "string", tuple(spec.shape.as_list())).convert(value, signature)
    try:
        tensor = tf.convert_to_tensor(value, dtype=spec.dtype)
    except (TypeError, ValueError) as e:
        raise DataError(f"input {name!r} of signature {signature!r} must be {spec.dtype.name} "
                        f"{_shape_text(spec)}; got {type(value).__name__} ({str(e).splitlines()[0][:120]})") from None
    if not spec.shape.is_compatible_with(tensor.shape):
        raise DataError(f"input {name!r} of signature {signature!r} must be {spec.dtype.name} {_shape_text(spec)}; "
                        f"got shape {tensor.shape.as_list()}")
    return tensor


def _shape_text(spec) -> str:
    return "scalar" if spec.shape.rank == 0 else "[" + ", ".join("any" if d is None else str(d)
                                                                  for d in spec.shape.as_list()) + "]"


def text_items(inputs, name: str = "inputs", strings_only: bool = True) -> list:
    """A list of inputs from ``inputs``: one string is one input; a list (or any iterable) is
    several, each a string when ``strings_only``. ``None``, numbers, bytes and lists holding
    anything else are a DataError naming ``name`` and the type expected. The helpers that take
    texts return one result for one string and a list for a list."""
    if isinstance(inputs, str):
        return [inputs]
    if isinstance(inputs, (bytes, bytearray, dict)) or inputs is None or not hasattr(inputs, "__iter__"):
        raise DataError(f"{name} must be a string or a list of strings, got {type(inputs).__name__}")
    items = list(inputs)
    for i, item in enumerate(items if strings_only else ()):
        if not isinstance(item, str):
            raise DataError(f"{name}[{i}] must be a string, got {type(item).__name__}")
    return items


class SelfAttentionMaps:
    """``self_attention(texts)`` for a predictor whose export has the ``self_attention`` signature
    (:mod:`seqapps.inference.self_attention`: sentiment and pos, whatever the encoder)."""

    def self_attention(self, texts, batch_size: int = 64) -> list[dict]:
        """Per text: ``tokens`` (its words) and ``attention`` (numpy ``[layers, heads, words, words]``: row i
        is what word i attends to); a recurrent or bag encoder has none (0 layers)."""
        items = text_items(texts, "texts")
        rows = []
        for start in range(0, len(items), batch_size):
            out = self.call("self_attention", text=items[start:start + batch_size])
            for i, n in enumerate(np.asarray(out["lengths"]).tolist()):
                rows.append({"tokens": decode_strings(out["tokens"][i][:n]),
                             "attention": np.asarray(out["attention"][i])[:, :, :n, :n]})
        return one_or_many(texts, rows)


def one_or_many(inputs, results: list):
    """``results[0]`` when ``inputs`` was one string, else ``results``."""
    return results[0] if isinstance(inputs, str) else results


CHUNK = 1024  # lines read, predicted and printed at a time by ``predict``


def input_chunks(inputs: list[str], input_file: str | None, size: int = CHUNK):
    """Lists of at most ``size`` inputs: ``inputs``, then the lines of ``input_file`` (or of
    stdin when there are neither), read lazily. A line that is not UTF-8 is a DataError
    naming the file and line."""
    import sys

    inputs = list(inputs)
    for start in range(0, len(inputs), size):
        yield inputs[start:start + size]
    if not input_file and inputs:
        return
    name = input_file or "stdin"
    try:
        f = open(input_file, "rb") if input_file else sys.stdin.buffer
    except OSError as e:
        raise DataError(f"{input_file}: {e.strerror}") from None
    with f:
        chunk = []
        for number, raw in enumerate(f, 1):
            try:
                chunk.append(raw.decode("utf-8").rstrip("\r\n"))
            except UnicodeDecodeError as e:
                raise DataError(f"{name} line {number} is not UTF-8 text ({e.reason} at byte {e.start}); "
                                "convert it, e.g. iconv -f latin1 -t utf-8") from None
            if len(chunk) == size:
                yield chunk
                chunk = []
        if chunk:
            yield chunk




def decode_strings(array) -> list:
    """numpy bytes array -> nested lists of str."""
    return np.vectorize(lambda b: b.decode("utf-8", "replace"), otypes=[object])(array).tolist() if np.size(array) \
        else np.asarray(array).astype(str).tolist()


def length_batches(indices, inputs, batch_size: int, padded: int | None = None) -> list[list[int]]:
    """``indices`` ordered by the length of ``inputs[i]``, in chunks of ``batch_size``: each
    call then pads its rows to about the same length. With ``padded``, a chunk of several rows also
    keeps rows x its longest length within it (a row longer than that goes alone)."""
    order = sorted(indices, key=lambda i: len(inputs[i]))
    chunks, chunk = [], []
    for i in order:
        if chunk and (len(chunk) >= batch_size or
                      (padded is not None and (len(chunk) + 1) * max(1, len(inputs[i])) > padded)):
            chunks.append(chunk)
            chunk = []
        chunk.append(i)
    return chunks + ([chunk] if chunk else [])


def pad_strings(rows, fill: str = "") -> np.ndarray:
    """Lists of str -> an object array ``[rows, longest (at least 1)]`` padded with ``fill`` on the right."""
    width = max([len(r) for r in rows] + [1])
    return np.array([list(r) + [fill] * (width - len(r)) for r in rows], dtype=object)

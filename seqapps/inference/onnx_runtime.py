"""An ONNX export (:mod:`seqapps.inference.formats`) as a Predictor, with ONNX Runtime and NumPy only.

Nothing here imports TensorFlow or Keras: ``seqapps.load(OUT).predict([...])`` on an ONNX export
works where TensorFlow is not installed. Each signature runs the tokenizer
(:mod:`seqapps.inference.tokenizer`), the ONNX graph, and the few steps that turn its numbers
into the SavedModel's outputs (a label from probabilities, tags by argmax or Viterbi, a language
model's loops over characters), so ``call`` returns the same output names and values as the
SavedModel's signature: sentiment's ``serving_default``, pos' ``serving_default`` and ``tag_tokens``
(not ``self_attention``), char_lm's ``serving_default`` (generate) and ``score`` (not ``states``).

The task's helpers (``predict``, ``format``...) come from the task's TensorFlow-free
``predicting.py`` (:func:`predictor_class`), the same code the SavedModel's predictor runs.
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


def _texts(array) -> list[str]:
    return [t.decode("utf-8", "replace") if isinstance(t, bytes) else t for t in np.asarray(array, dtype=object).tolist()]


def _utf8(rows) -> np.ndarray:
    """Nested lists of str -> an object array of UTF-8 bytes (what a SavedModel's string outputs are)."""
    out = np.empty((len(rows), len(rows[0]) if rows else 0), dtype=object)
    for i, row in enumerate(rows):
        out[i] = [t.encode("utf-8") for t in row]
    return out


def viterbi(potentials: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """:func:`seqapps.layers.crf.viterbi_decode` in NumPy: the best tag path ``[B, T]`` (-1 on padding)
    through CRF potentials ``[B, T, K, K]``."""
    batch, steps, tags = potentials.shape[:3]
    delta = np.where(np.arange(tags) == 0, 0.0, -1e9).astype(np.float32)[None].repeat(batch, 0)
    identity = np.broadcast_to(np.arange(tags), (batch, tags))
    backs = []
    for t in range(steps):
        scores = delta[:, :, None] + potentials[:, t]
        on = mask[:, t, None]
        backs.append(np.where(on, scores.argmax(1), identity))
        delta = np.where(on, scores.max(1), delta)
    tag, path, rows = delta.argmax(-1), np.zeros((batch, steps), np.int64), np.arange(batch)
    for t in reversed(range(steps)):
        path[:, t] = tag
        tag = backs[t][rows, tag]
    return np.where(mask, path, -1)


def _pos_signatures(path: Path, metadata: dict, sess) -> dict:
    from seqapps.core.bounds import WORD_CHARS
    from seqapps.inference.tokenizer import TaggerTokenizer

    tokenizer = TaggerTokenizer.load(path)
    names = np.array([""] + list(metadata["tags"]), dtype=object)  # tag id k is names[k + 1]; -1 (padding) is ""
    wanted = [i.name for i in sess.get_inputs()]
    crf = tokenizer.spec.get("decode") == "viterbi"

    def tag(rows, width):
        """``rows`` (lists of real tokens) padded to ``width`` -> the signatures' outputs."""
        width = max([len(r) for r in rows] + [width, 1])
        lengths = np.array([len(r) for r in rows], np.int32)
        mask = np.arange(width)[None, :] < lengths[:, None]
        if not rows:
            ids, words = np.zeros((0, width), np.int64), np.zeros((0, width), np.int64)
        else:
            inputs = tokenizer.encode(rows, width)
            (scores,) = sess.run(["scores"], {k: inputs[k] for k in wanted})
            ids = viterbi(scores, mask) if crf else np.where(mask, scores.argmax(-1), -1)
            words = inputs["words"]
        tokens = _utf8([list(r) + [""] * (width - len(r)) for r in rows]) if rows else np.zeros((0, width), object)
        return {"tokens": tokens, "tags": np.vectorize(lambda s: s.encode("utf-8"), otypes=[object])(names[ids + 1])
                if ids.size else np.zeros(ids.shape, object),
                "lengths": lengths, "in_vocabulary": np.logical_and(mask, words > 1)}

    def serve_text(text):
        return tag(tokenizer.tokens(_texts(text)), 1)

    def serve_tokens(tokens):
        rows = [_texts(row) for row in tokens]
        rows = [[t[:WORD_CHARS] for t in row] for row in rows]  # the signatures' cut of long words
        rows = [row[:max([j + 1 for j, t in enumerate(row) if t] + [0])] for row in rows]  # "" on the right: padding
        return tag(rows, np.shape(tokens)[1] if np.ndim(tokens) == 2 else 1)

    return {"serving_default": (serve_text, {"text": ArraySpec("text", "string", (None,))}),
            "tag_tokens": (serve_tokens, {"tokens": ArraySpec("tokens", "string", (None, None))})}


def _char_lm_signatures(path: Path, metadata: dict, sess) -> dict:
    from seqapps.core import bounds
    from tasks.char_lm.predicting import MAX_GENERATE

    spec = json.loads((path / "tokenizer.json").read_text(encoding="utf-8"))
    chars = json.loads((path / spec["chars"]).read_text(encoding="utf-8"))
    index, id_to_char = {c: i for i, c in enumerate(chars, start=1)}, [""] + list(chars)
    with np.load(path / spec["state"]) as stored:
        warm = {k: stored[k] for k in spec["state_names"]}
    warm_last, window = int(spec["warm_last"]), spec.get("context")
    prime_chars = min(window or bounds.PRIME_CHARS, bounds.PRIME_CHARS)
    outputs = ["logits"] + [f"next.{k}" for k in warm]

    def step(tokens, state):
        logits, *new = sess.run(outputs, {"tokens": tokens.astype(np.int64), **state})
        return logits, dict(zip(warm, new))

    def read_ids(texts, skip_unknown=False, last=None):
        """As the graph's ``reader``: ids ``[batch, 1 + time]`` (the warm-up's last character first), the
        texts' lengths and the warm state for the batch."""
        rows = [[index.get(c, 0) for c in t] for t in texts]
        if skip_unknown:
            rows = [[i for i in r if i > 0] for r in rows]
        if last is not None:
            rows = [r[-last:] if last else [] for r in rows]
        lengths = np.array([len(r) for r in rows], np.int32)
        ids = np.zeros((len(rows), 1 + max([len(r) for r in rows] + [1])), np.int64)
        ids[:, 0] = warm_last
        for i, r in enumerate(rows):
            ids[i, 1:1 + len(r)] = r
        return ids, lengths, {k: np.repeat(v, len(rows), axis=0) for k, v in warm.items()}

    def read(state, ids, lengths):
        """The state after each row's first ``lengths`` ids (teacher forcing; a row's state stays once read)."""
        for t in range(int(lengths.max(initial=0))):
            _, new = step(ids[:, t], state)
            on = t < lengths
            state = {k: np.where(on.reshape((-1,) + (1,) * (v.ndim - 1)), new[k], v) for k, v in state.items()}
        return state

    def score(text):
        texts = _texts(text)
        ids, lengths, state = read_ids(texts)
        need = ids.shape[0] * ids.shape[1] * (len(chars) + 1)
        if need > bounds.SCORE_VALUES:
            raise DataError(f"invalid input: score keeps {len(chars) + 1} numbers per character of the longest "
                            f"text, for each row: rows x (characters + 1) x that is {need}; the bound is "
                            f"{bounds.SCORE_VALUES}")
        total = np.zeros(len(texts), np.float64)
        for t in range(ids.shape[1] - 1 if texts else 0):  # the logits after id t predict id t + 1 (t >= 1: the text)
            logits, state = step(ids[:, t], state)
            if t == 0:
                continue
            logits = logits.astype(np.float64)
            top = logits.max(-1, keepdims=True)
            log_probs = logits - top - np.log(np.exp(logits - top).sum(-1, keepdims=True))
            gained = log_probs[np.arange(len(texts)), ids[:, t + 1]]
            total += np.where(t - 1 < lengths - 1, gained, 0.0)
        return {"log_likelihood": total.astype(np.float32), "count": np.maximum(lengths - 1, 0).astype(np.int32)}

    def generate(prime, length, temperature, top_k, top_p, seed):
        temperature, top_k, top_p, length = float(temperature), int(top_k), float(top_p), int(length)
        for bad, message in ((not 0 <= temperature < float("inf"), f"temperature must be finite and >= 0, got {temperature}"),
                             (top_k < 0, f"top_k must be >= 0, got {top_k}"),
                             (not 0 < top_p <= 1, f"top_p must be in (0, 1], got {top_p}")):
            if bad:
                raise DataError(f"invalid input: {message}")
        primes = _texts(prime)
        n = min(max(length, 0), MAX_GENERATE)
        if len(primes) * n > bounds.GENERATE_CHARS:
            raise DataError(f"invalid input: rows x length is {len(primes) * n}; the bound is {bounds.GENERATE_CHARS} "
                            "characters generated in one call: ask for fewer rows or fewer characters")
        if not primes:
            return {"text": np.zeros(0, object), "length": np.zeros(0, np.int32)}
        ids, lengths, state = read_ids(primes, skip_unknown=True, last=prime_chars)
        state = read(state, ids, lengths)  # all but each row's last character
        token = ids[np.arange(len(primes)), lengths]
        rng = np.random.default_rng(int(seed) % 2 ** 63)
        picked = []
        for t in range(max(n, 1)):
            logits, state = step(token, state)
            logits[:, 0] += -1e9  # never the unknown id
            token = pick(logits, temperature, top_k, top_p, rng)
            picked.append(token)
        text = ["".join(id_to_char[i] for i in row[:n]) for row in np.stack(picked, 1).tolist()]
        return {"text": np.array([t.encode("utf-8") for t in text], dtype=object),
                "length": np.full(len(primes), n, np.int32)}

    scalar = lambda name, dtype: ArraySpec(name, dtype, ())  # noqa: E731
    return {"serving_default": (generate, {"prime": ArraySpec("prime", "string", (None,)),
                                           "length": scalar("length", "int32"),
                                           "temperature": scalar("temperature", "float32"),
                                           "top_k": scalar("top_k", "int32"), "top_p": scalar("top_p", "float32"),
                                           "seed": scalar("seed", "int64")}),
            "score": (score, {"text": ArraySpec("text", "string", (None,))})}


def pick(logits: np.ndarray, temperature: float, top_k: int, top_p: float, rng) -> np.ndarray:
    """:func:`seqapps.inference.decoding.sample_logits` in NumPy: the argmax at temperature 0, else a draw
    from ``rng`` after the temperature, top-k and top-p filters (the same filters; not the same draws)."""
    logits = logits.astype(np.float32)
    if temperature <= 0:
        return logits.argmax(-1)
    scaled = logits / max(temperature, 1e-6)
    vocab = scaled.shape[-1]
    k = min(top_k, vocab) if top_k > 0 else vocab
    kth = -np.sort(-scaled, axis=-1)[:, k - 1:k]
    scaled = np.where(scaled < kth, -1e9, scaled)
    if top_p < 1:
        ordered = -np.sort(-scaled, axis=-1)
        probs = np.exp(ordered - ordered[:, :1])
        probs /= probs.sum(-1, keepdims=True)
        before = np.cumsum(probs, -1) - probs
        smallest = np.where(before < top_p, ordered, np.finfo(np.float32).max).min(-1, keepdims=True)
        scaled = np.where(scaled < smallest, -1e9, scaled)
    probs = np.exp(scaled - scaled.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    draws = rng.random((len(probs), 1))
    return np.minimum((np.cumsum(probs, -1) < draws).sum(-1), vocab - 1)


SIGNATURES = {"sentiment": _sentiment_signatures, "pos": _pos_signatures, "char_lm": _char_lm_signatures}
_TAGGED = {"tokens": ("string", (None, None)), "tags": ("string", (None, None)), "lengths": ("int32", (None,)),
           "in_vocabulary": ("bool", (None, None))}
OUTPUTS = {"sentiment": {"serving_default": {"label": ("string", (None,)), "probabilities": ("float32", (None, None))}},
           "pos": {"serving_default": _TAGGED, "tag_tokens": _TAGGED},
           "char_lm": {"serving_default": {"text": ("string", (None,)), "length": ("int32", (None,))},
                       "score": {"log_likelihood": ("float32", (None,)), "count": ("int32", (None,))}}}


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

"""LiteRT (TensorFlow Lite) exports of a run, written with TensorFlow and answered without it.

``python -m seqapps export RUN OUT --format litert --quantize none|int8|float16``. As for ONNX
(:mod:`seqapps.inference.formats`), the graph takes ids and the folder carries what turns raw
inputs into them:

    OUT/model.tflite      the model: ids in, the task's numeric outputs out
    OUT/tokenizer.json    the tokenizer specification (:class:`seqapps.inference.tokenizer.TextTokenizer`)
    OUT/vocabulary.json   the word vocabulary (ids 2.. in order)
    OUT/metadata.json     as a SavedModel export's, plus ``format``, ``quantize`` and ``graph``

The graph is Keras' own LiteRT export (``model.export(format="litert")``) limited to LiteRT's
built-in operators: no TensorFlow (Flex) ops, so the LiteRT runtime alone runs it. Keras' LSTM
and GRU loop over time with a ``while`` whose outputs are TensorFlow tensor lists; the converter
lowers those to built-in ops only when each step's shape is static, so the graph takes **one text
per call**: ``[1, time]`` with the time axis left free. Every text then runs at its own length,
with no padding at all, and gives the SavedModel's answer (within 2e-7 for tiny LSTM, GRU,
transformer and bag encoders; ``tests/inference/test_litert.py`` holds LSTM, GRU, SimpleRNN and
transformer to 1e-4). A free batch axis stops the converter (``TensorListReserve requires
element_shape to be static``) for recurrent and transformer encoders alike.

Per task:

- sentiment: the graph holds the embeddings, the n-gram table, the encoder (a ``WHILE`` over the
  words for a recurrent one), pooling and the softmax; standardizing, splitting, the vocabulary
  lookup and n-gram hashing run in Python (:mod:`seqapps.inference.tokenizer`), as does picking
  the label.

Other tasks are refused with one line (:data:`TASKS`).

Quantization (``--quantize``), the converter's own post-training options: ``int8`` is dynamic-range
quantization (``Optimize.DEFAULT``: int8 weights, activations quantized on the fly by the kernels
that support it), ``float16`` stores float16 weights (``supported_types=[float16]``, computed in
float32), ``none`` keeps float32. ``benchmarks/formats.py`` measures what each changes.

:func:`load` answers with ``ai_edge_litert`` (the LiteRT runtime, pinned in requirements.txt) and
NumPy, importing no TensorFlow; where ``ai_edge_litert`` is not installed it falls back to
TensorFlow's own ``tf.lite.Interpreter``, and says so once.
"""

from __future__ import annotations

import json
import threading
import warnings
from pathlib import Path

import numpy as np

from seqapps.core.errors import ExportError
from seqapps.inference.predictor import Predictor

MODEL = "model.tflite"
TASKS = ("sentiment",)  # tasks with a LiteRT adapter below; others: SavedModel or ONNX
THREADS = 1  # interpreter threads, as ONNX Runtime's (one text per call leaves little to share out)


def is_litert(path) -> bool:
    return (Path(path) / MODEL).is_file()


# -- writing (TensorFlow) ------------------------------------------------------------------------------
def write(bundle, folder: Path, quantize: str) -> dict:
    """Write the graph of ``bundle`` and its tokenizer into ``folder``; returns the metadata's ``graph``."""
    task = bundle.task.name
    check_task(task)
    return ADAPTERS[task](bundle, Path(folder), quantize)


def check_task(task: str) -> None:
    """One ExportError line unless ``task`` has a LiteRT adapter."""
    if task not in ADAPTERS:
        raise ExportError(f"--format litert is not available for {task} yet (it is for: {', '.join(TASKS)}); "
                          "export a SavedModel (the default) or --format onnx")


def _sentiment(bundle, folder: Path, quantize: str) -> dict:
    import tensorflow as tf

    cfg, prep, model = bundle.config, bundle.prep, bundle.model
    specs = {"tokens": tf.TensorSpec([1, None], tf.int64, name="tokens")}
    if cfg.model.subwords:
        specs["subwords"] = tf.TensorSpec([1, None, None], tf.int64, name="subwords")
    convert(model, {t.name: specs[t.name] for t in model.inputs}, folder / MODEL, quantize, "sentiment")
    vocabulary = [t for t in prep.vocabulary if t not in ("", "[UNK]")]
    (folder / "vocabulary.json").write_text(json.dumps(vocabulary, ensure_ascii=False) + "\n", encoding="utf-8")
    subwords = ({"buckets": cfg.model.subword_buckets, "min_n": 3, "max_n": 5, "max_grams": 40}
                if cfg.model.subwords else None)
    spec = {"type": "words", "standardize": "seqapps.data.text.standardize", "vocabulary": "vocabulary.json",
            "max_length": int(prep.max_length), "subwords": subwords}
    (folder / "tokenizer.json").write_text(json.dumps(spec, indent=2) + "\n", encoding="utf-8")
    return {"inputs": {"tokens": "int64 [1, time]: one text's word ids (1 unknown)",
                       **({"subwords": "int64 [1, time, grams]: its hashed char n-gram ids (0 padding)"}
                          if subwords else {})},
            "outputs": {"output_0": "float32 [1, classes]: the probabilities"},
            "in_graph": "embeddings, n-gram vectors, the encoder (a WHILE over the words for a recurrent one), "
                        "pooling, softmax; one text per call, at its own length",
            "outside": "standardizing, splitting, vocabulary lookup and n-gram hashing "
                       "(seqapps.inference.tokenizer), one call per text, the label from the probabilities"}


ADAPTERS = {"sentiment": _sentiment}


def convert(model, specs: dict, path: Path, quantize: str, task: str) -> None:
    """Keras' LiteRT export of ``model`` over ``specs`` with built-in operators only, quantized as asked."""
    import tensorflow as tf

    target = {"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS]}  # no Flex: the LiteRT runtime alone runs it
    options = {}
    if quantize in ("int8", "float16"):
        options["optimizations"] = [tf.lite.Optimize.DEFAULT]
    if quantize == "float16":
        target["supported_types"] = [tf.float16]
    try:
        model.export(str(path), format="litert", input_signature=[specs], verbose=False, target_spec=target,
                     **options)
    except Exception as e:
        if type(e).__name__ != "ConverterError":
            raise
        raise ExportError(f"--format litert cannot express this {task} model with LiteRT's built-in operators "
                          f"({_first_error(str(e))}); export a SavedModel (the default) or --format onnx") from None


def _first_error(text: str) -> str:
    for line in text.splitlines():
        if "error:" in line:
            return line.split("error:", 1)[1].strip()[:200]
    return (text.strip().splitlines() or ["the converter failed"])[0][:200]


# -- answering (LiteRT runtime and NumPy only) -----------------------------------------------------------
def interpreter(path, threads: int = THREADS):
    """A LiteRT interpreter over ``path``: ``ai_edge_litert``'s, else TensorFlow's ``tf.lite.Interpreter``."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            import tensorflow as tf
        except ImportError:
            raise ExportError(f"{path}: a LiteRT export needs the LiteRT runtime (pip install ai-edge-litert)") \
                from None
        warnings.warn("ai_edge_litert is not installed: answering this LiteRT export with TensorFlow's "
                      "tf.lite.Interpreter (pip install ai-edge-litert to answer without TensorFlow)", stacklevel=2)
        Interpreter = tf.lite.Interpreter
    return Interpreter(model_path=str(path), num_threads=threads or None)


def signatures(path, threads: int = THREADS) -> tuple[dict, dict]:
    """``({name: (fn(**numpy inputs) -> {output: numpy}, {input: ArraySpec})}, metadata)`` of a LiteRT export."""
    path = Path(path)
    meta_path = path / "metadata.json"
    if not meta_path.is_file():
        raise ExportError(f"{path}: not a seqapps export (expected metadata.json beside {MODEL})")
    metadata = json.loads(meta_path.read_text())
    task = metadata.get("task")
    if task not in SIGNATURES:
        raise ExportError(f"{path}: LiteRT exports of {task!r} are not supported by this version of seqapps")
    return SIGNATURES[task](path, metadata, interpreter(path / MODEL, threads)), metadata


def _sentiment_signatures(path: Path, metadata: dict, interp) -> dict:
    from seqapps.inference.onnx_runtime import ArraySpec
    from seqapps.inference.tokenizer import TextTokenizer

    tokenizer = TextTokenizer.load(path)
    labels = np.array([label.encode("utf-8") for label in metadata["labels"]], dtype=object)
    runner = interp.get_signature_runner()
    wanted = list(runner.get_input_details())
    (output,) = runner.get_output_details()
    lock = threading.Lock()  # an interpreter runs one call at a time

    def serve(text):
        texts = [t.decode("utf-8", "replace") if isinstance(t, bytes) else t for t in np.asarray(text).tolist()]
        probs = np.zeros((len(texts), len(labels)), np.float32)
        for i, one in enumerate(texts):
            ids, _ = tokenizer.encode([one])
            with lock:
                probs[i] = runner(**{k: ids[k] for k in wanted})[output][0]
        return {"label": labels[np.argmax(probs, axis=-1)] if texts else labels[:0], "probabilities": probs}

    return {"serving_default": (serve, {"text": ArraySpec("text", "string", (None,))})}


SIGNATURES = {"sentiment": _sentiment_signatures}


class LiteRTPredictor(Predictor):
    runtime = "litert"

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
    """:class:`LiteRTPredictor` with the task's TensorFlow-free ``Predictions`` mixin (``predict``, ``format``)."""
    import importlib
    import importlib.util

    module = f"tasks.{task}.predicting"
    if not task.isidentifier() or importlib.util.find_spec(module) is None:
        return LiteRTPredictor
    mixin = importlib.import_module(module).Predictions
    return type(f"{mixin.__name__}LiteRTPredictor", (mixin, LiteRTPredictor), {})


def load(path, threads: int = THREADS) -> LiteRTPredictor:
    sigs, metadata = signatures(path, threads)
    return predictor_class(str(metadata.get("task", "")))(None, sigs, metadata)

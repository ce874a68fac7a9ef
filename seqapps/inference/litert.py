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

What runs outside the graph is the ONNX export's, file for file (``tokenizer.json`` and its lists)
and step for step: :func:`load` answers through :data:`seqapps.inference.onnx_runtime.SIGNATURES`
over :class:`RowSession` (sentiment, pos, translation's encoder), which runs a batch's rows one call each, every row cut
to its own length (its padding on the right dropped), and pads the answers back. Per task:

- sentiment: the graph holds the embeddings, the n-gram table, the encoder (a ``WHILE`` over the
  words for a recurrent one), pooling and the softmax; standardizing, splitting, the vocabulary
  lookup and n-gram hashing run in Python (:mod:`seqapps.inference.tokenizer`), as does picking
  the label.
- pos: the graph holds the word (and pretrained vector) embeddings, the character CNN of each word,
  the sentence encoder and the tag scores (a CRF's potentials); tokenizing, the word/character
  lookups and the argmax (or Viterbi) run in Python and NumPy, as for ONNX. A character BiLSTM
  (``model.char_encoder=rnn``) runs over ``[words, characters]``, a batch that is free again, and
  is refused with one line.
- char_lm: the graph is the ONNX export's one step of the model (``tokens`` and the state in,
  ``logits`` and ``next.<state>`` out); with no loop inside, its batch stays free and
  :class:`BatchSession` calls it once per character for the whole batch. It is converted from that
  step function by the route Keras' exporter takes (a SavedModel endpoint, then the converter).
- translation: two graphs, converted the same way from the ONNX export's two functions:
  ``encoder.tflite`` (``source`` ``[1, time]`` in, the decoder's initial state out; the encoder's loop
  over time needs a fixed batch, so one text per call, at its own length, the state's axes that
  follow the source's length padded back to the batch's width by :class:`RowSession`, masked) and
  ``model.tflite``, one decoder step (no loop: a free batch of rows x beams, :class:`BatchSession`).
  Tokenizing, greedy and beam search (NumPy) and detokenizing are the ONNX export's.
- captioning: the ONNX export's two graphs (``encoder.tflite``: pixels in, the decoder's initial state out;
  ``model.tflite``: one decoder step); neither has a loop, so both take a whole batch (:class:`BatchSession`).
  Pillow's image decoding and greedy or beam search (NumPy) are the ONNX export's.
- forecasting: the graph is the whole model, as the ONNX export's, over ``[1, window, features]``: the
  encoder's loop over the window needs a fixed batch, so one window per call (:class:`RowSession`, each row
  whole); the window checks (``window.json``) are the ONNX export's, in NumPy.
- word_vectors: the graph is the ONNX export's vector table (``ids`` ``[batch]`` -> ``vectors``; no loop, so the
  batch is free, :class:`BatchSession`), read whole once at load; the lookup and the cosine top k are the
  ONNX export's, in NumPy (:mod:`tasks.word_vectors.predicting`).
- video_frames: the graph is the ONNX export's whole model (``pixels`` and ``mask`` in, ``scores`` and
  ``probabilities`` out) over ``[1, time, ...]``: the recurrent loop over the frames needs a fixed batch, so
  one video per call, at its own length (:class:`RowSession`, cut by ``mask``); Pillow's decoding of frames
  and GIFs, the bounds and the labels (argmax or Viterbi, NumPy) are the ONNX export's
  (:mod:`tasks.video_frames.predicting`).

Other tasks are refused with one line (:data:`TASKS`).

Quantization (``--quantize``), the converter's own post-training options: ``int8`` is dynamic-range
quantization (``Optimize.DEFAULT``: int8 weights, activations quantized on the fly by the kernels
that support it), ``float16`` stores float16 weights (``supported_types=[float16]``, computed in
float32), ``none`` keeps float32. ``int8-full`` (pos, :data:`FULL_INTEGER`) is full-integer quantization: int8
weights and activations whose ranges are calibrated on :data:`CALIBRATION_ROWS` inputs drawn from the run's
training split (read by name, as training read it), the int8 kernels wherever LiteRT has one and float
where it does not, ids in and probabilities out as before. ``benchmarks/formats.py`` measures what each
changes.

:func:`load` answers with ``ai_edge_litert`` (the LiteRT runtime, pinned in requirements.txt) and
NumPy, importing no TensorFlow; where ``ai_edge_litert`` is not installed it falls back to
TensorFlow's own ``tf.lite.Interpreter``, and says so once.
"""

from __future__ import annotations

import json
import threading
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from seqapps.core.errors import ExportError
from seqapps.inference import onnx_runtime

MODEL = "model.tflite"
ENCODER = "encoder.tflite"  # translation's and captioning's, beside their decoder step (model.tflite)
TASKS = ("sentiment", "pos", "char_lm", "translation", "captioning", "forecasting",
         "word_vectors", "video_frames")  # with a LiteRT adapter below
#: tasks whose LiteRT export offers --quantize int8-full (benchmarks/full_integer.py). Not sentiment: on SST-2 it
#: measured slower than dynamic int8 and 1.2 points less accurate, and TensorFlow 2.21's calibrator crashed the
#: process (a segmentation fault) on a small test model's graph
FULL_INTEGER = ("pos",)
CALIBRATION_ROWS = 100       # training inputs int8-full calibrates on
CALIBRATION_SCAN = 100_000   # ... drawn from the training split's first rows
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

    from seqapps.inference.export_parts import write_sidecar_sentiment

    cfg, model = bundle.config, bundle.model
    specs = {"tokens": tf.TensorSpec([1, None], tf.int64, name="tokens")}
    if cfg.model.subwords:
        specs["subwords"] = tf.TensorSpec([1, None, None], tf.int64, name="subwords")
    subwords = write_sidecar_sentiment(bundle, folder)["subwords"]  # the ONNX export's files
    convert(model, {t.name: specs[t.name] for t in model.inputs}, folder / MODEL, quantize, "sentiment")
    return {"inputs": {"tokens": "int64 [1, time]: one text's word ids (1 unknown)",
                       **({"subwords": "int64 [1, time, grams]: its hashed char n-gram ids (0 padding)"}
                          if subwords else {})},
            "outputs": {"output_0": "float32 [1, classes]: the probabilities"},
            "in_graph": "embeddings, n-gram vectors, the encoder (a WHILE over the words for a recurrent one), "
                        "pooling, softmax; one text per call, at its own length",
            "outside": "standardizing, splitting, vocabulary lookup and n-gram hashing "
                       "(seqapps.inference.tokenizer), one call per text, the label from the probabilities"}


def _pos(bundle, folder: Path, quantize: str) -> dict:
    import tensorflow as tf

    cfg = bundle.config
    if cfg.model.char_encoder == "rnn":  # the converter stops on its tensor lists (TensorListReserve)
        raise ExportError("--format litert cannot take pos' character BiLSTM (model.char_encoder=rnn): it loops "
                          "over all of a sentence's words at once, a batch whose size LiteRT's built-in operators "
                          "need fixed; export a SavedModel (the default) or --format onnx")
    from seqapps.inference.export_parts import write_sidecar_pos
    from seqapps.inference.tokenizer import TaggerTokenizer

    prep, model = bundle.prep, bundle.model
    c = int(prep.max_word_length)
    specs = {"words": tf.TensorSpec([1, None], tf.int64, name="words"),
             "chars": tf.TensorSpec([1, None, c], tf.int64, name="chars"),
             "vectors": tf.TensorSpec([1, None], tf.int64, name="vectors")}
    names = [t.name for t in model.inputs]
    write_sidecar_pos(bundle, folder)  # the ONNX export's files
    convert(model, {k: specs[k] for k in names}, folder / MODEL, quantize, "pos",
            calibration=_calibration(bundle, quantize, lambda rows: TaggerTokenizer.load(folder).encode(rows),
                                     names))
    crf = bool(cfg.model.crf)
    return {"inputs": {"words": "int64 [1, time]: one sentence's lower-cased word ids (1 unknown)",
                       "chars": f"int64 [1, time, {c}]: character ids of each word (0 padding, 1 unknown)",
                       **({"vectors": "int64 [1, time]: ids into the pretrained vectors (1 unknown)"}
                          if "vectors" in names else {})},
            "outputs": {"output_0": "float32 [1, time, tags, tags]: CRF potentials (previous tag, tag)" if crf
                        else "float32 [1, time, tags]: tag logits"},
            "in_graph": "word (and pretrained vector) embeddings, the character CNN of each word, the sentence "
                        "encoder (a WHILE over the words for a recurrent one), the tag scores"
                        + (" and the CRF potentials" if crf else "") + "; one sentence per call, at its own length",
            "outside": "tokenizing, the cut of long words, lower-casing and the word/character lookups "
                       "(seqapps.inference.tokenizer.TaggerTokenizer), one call per sentence, "
                       + ("Viterbi decoding of the potentials (NumPy)" if crf else "the argmax over tags")
                       + " and the tag names"}


def _char_lm(bundle, folder: Path, quantize: str) -> dict:
    from seqapps.inference.export_parts import char_lm_step

    step, signature, flat = char_lm_step(bundle, folder)  # the ONNX export's step and files outside the graph
    convert(bundle.model, signature, folder / MODEL, quantize, "char_lm", fn=step)
    return {"inputs": {"tokens": "int64 [batch]: the character read now (ids of chars.json from 1; 0 unknown)",
                       **{k: f"{v.dtype} [batch, {', '.join(map(str, v.shape[1:]))}]: the state before it"
                          for k, v in flat.items()}},
            "outputs": {"logits": "float32 [batch, vocabulary]: the next character's logits",
                        **{f"next.{k}": "the state after it" for k in flat}},
            "in_graph": "one step of the model: the embedding, every layer's cell (or block, with its key/value "
                        "cache) and the logits; a whole batch per call",
            "outside": "the character lookup and the loops over characters (NumPy, one graph call per character), "
                       "as for the ONNX export: reading from the warm-up state (state.npz), score's "
                       "log-likelihoods, generate's greedy or sampled picks (a seeded sample differs from the "
                       "SavedModel's; greedy picks are the same)"}


def _translation(bundle, folder: Path, quantize: str) -> dict:
    import tensorflow as tf

    from seqapps.inference.export_parts import translation_functions, write_sidecar_translation

    encoder, decoder, leaves, probe, traced = translation_functions(bundle.model)  # the ONNX export's
    names = list(probe)
    source = tf.TensorSpec([1, None], tf.int64, name="source")  # one text per call: its loop needs a fixed batch
    tokens = tf.TensorSpec([None], tf.int64, name="tokens")  # the decoder's step has no loop: its batch is free
    convert(bundle.model, [source], folder / ENCODER, quantize, "translation", fn=encoder)
    convert(bundle.model, [tokens, *leaves], folder / MODEL, quantize, "translation", fn=decoder)
    carried, attention = traced["carried"], traced["attention"]
    write_sidecar_translation(bundle, folder, names, carried, attention)
    free = {leaf.name: leaf.shape[1:] for leaf in leaves}
    shape = {k: ", ".join("time" if d is None else str(d) for d in free[k].as_list()) for k in names}
    return {"files": {"encoder.tflite": "source ids -> the decoder's initial state, one text per call",
                      MODEL: "one decoding step, a whole batch (rows x beams) per call"},
            "inputs": {"encoder.tflite": {"source": "int64 [1, time]: one text's source word ids (1 unknown)"},
                       MODEL: {"tokens": "int64 [batch]: the previous output token (target ids)",
                               **{k: f"{probe[k].dtype.name} [batch, {shape[k]}]: the state" for k in names}}},
            "outputs": {"encoder.tflite": {k: f"[1, {shape[k]}]: the decoder's initial state" for k in names},
                        MODEL: {"logits": "float32 [batch, target vocabulary]: the next token's logits",
                                **{f"next.{k}": "the state after the step" for k in carried},
                                **({"attention": "float32 [batch, source time]: attention weights"}
                                   if attention else {})}},
            "in_graph": "encoder.tflite: the source embedding and the encoder (a WHILE over the words for a recurrent "
                        "one), one text per call at its own length; model.tflite: one step of the decoder (target "
                        "embedding, cell or blocks with their key/value cache, attention, logits)",
            "outside": "standardizing, splitting, the cut of long words and the source vocabulary lookup "
                       "(seqapps.inference.tokenizer.SourceTokenizer), one encoder call per text with its state "
                       "padded back to the batch's width (masked), the decoding loop over model.tflite (NumPy, one "
                       "graph call per output token): greedy or beam search as for the ONNX export, the target "
                       "words joined and detokenized in Python"}


def _captioning(bundle, folder: Path, quantize: str) -> dict:
    from seqapps.inference.export_parts import captioning_functions, write_sidecar_captioning

    encoder, decoder, pixels, specs, probe, traced = captioning_functions(bundle)  # the ONNX export's
    convert(bundle.model, [pixels], folder / ENCODER, quantize, "captioning", fn=encoder)
    convert(bundle.model, specs, folder / MODEL, quantize, "captioning", fn=decoder)
    spec = write_sidecar_captioning(bundle, folder, list(probe), traced)
    size = spec["image_size"]
    return {"files": {ENCODER: "pixels -> the decoder's initial state, a whole batch per call",
                      MODEL: "one decoding step, a whole batch (rows x beams) per call"},
            "inputs": {ENCODER: {"pixels": f"float32 [batch, {size}, {size}, 3]: RGB in [0, 255]"},
                       MODEL: {"tokens": "int64 [batch]: the previous word id",
                               **{k: f"{probe[k].dtype.name} the state" for k in probe}}},
            "outputs": {ENCODER: {k: "the decoder's initial state" for k in probe},
                        MODEL: {"logits": "float32 [batch, vocabulary]: the next word's logits",
                                **{f"next.{k}": "the state after the step" for k in spec["carried"]},
                                **({"attention": "float32 [batch, cells]: attention over the feature grid"}
                                   if spec["attention"] else {})}},
            "in_graph": "encoder.tflite: the image encoder (CNN feature grid), the feature projection and the "
                        "decoder's initial state; model.tflite: one step of the decoder (no loop in either: both "
                        "take a whole batch)",
            "outside": "as for the ONNX export: decoding the image bytes with Pillow "
                       "(tasks.captioning.predicting.decode_image), greedy or beam search over model.tflite in "
                       "NumPy, joining the words"}


def _forecasting(bundle, folder: Path, quantize: str) -> dict:
    from seqapps.inference.export_parts import forecasting_graph, write_sidecar_forecasting

    spec, inputs = forecasting_graph(bundle, 1)  # the encoder's loop over the window needs a fixed batch
    convert(bundle.model, spec, folder / MODEL, quantize, "forecasting")
    write_sidecar_forecasting(bundle, folder)  # the ONNX export's file
    return {"inputs": inputs,
            "outputs": {"output_0": f"float32 [1, {bundle.prep.horizon}]: the forecasts in the target's units"},
            "in_graph": "the whole model (the target's transform, standardization, seasonal differences, the "
                        "recurrent encoder as a WHILE over the window, head, base forecast, the map back to the "
                        "target's units); one window per call",
            "outside": "the SavedModel's window checks (NumPy, window.json), as for the ONNX export; one call "
                       "per window"}


def _word_vectors(bundle, folder: Path, quantize: str) -> dict:
    from seqapps.inference.export_parts import word_vectors_graph, write_sidecar_word_vectors

    fn, spec, graph = word_vectors_graph(bundle)  # no loop: the batch stays free
    convert(bundle.model, [spec], folder / MODEL, quantize, "word_vectors", fn=fn)
    write_sidecar_word_vectors(bundle, folder)  # the ONNX export's file
    return graph


def _video_frames(bundle, folder: Path, quantize: str) -> dict:
    from seqapps.inference.export_parts import video_frames_graph

    fn, specs, graph = video_frames_graph(bundle, 1)  # the recurrent loop over the frames needs a fixed batch
    convert(bundle.model, specs, folder / MODEL, quantize, "video_frames", fn=fn)
    return graph


ADAPTERS = {"sentiment": _sentiment, "pos": _pos, "char_lm": _char_lm, "translation": _translation,
            "captioning": _captioning, "forecasting": _forecasting, "word_vectors": _word_vectors,
            "video_frames": _video_frames}
PRIMARY = {"sentiment": "tokens", "pos": "words", "video_frames": "mask"}  # the input whose 0 ids on the right are a row's padding


def calibration_rows(bundle, n: int = CALIBRATION_ROWS, scan: int = CALIBRATION_SCAN, seed: int = 0) -> list:
    """``n`` inputs of the run's training split (texts, or a sentence's words), drawn uniformly at random
    (reservoir sampling) from its first ``scan`` rows as they stream: what ``--quantize int8-full`` calibrates
    on. The split is read by name as training read it; one error line where it cannot be."""
    import itertools
    import random

    cfg = bundle.config
    try:
        train = bundle.task.load_data(cfg).train
        rng, sample = random.Random(seed), []
        for i, row in enumerate(itertools.islice(train.rows(), scan)):
            if i < n:
                sample.append(row[0])
            elif (j := rng.randint(0, i)) < n:
                sample[j] = row[0]
    except Exception as e:  # noqa: BLE001 (any failure to read the split is this one line)
        raise ExportError(f"--quantize int8-full calibrates on the run's training split ({cfg.data.source}), "
                          f"which cannot be read here: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
                          ) from None
    if not sample:
        raise ExportError(f"--quantize int8-full calibrates on the run's training split ({cfg.data.source}), "
                          "which has no rows")
    return sample


def _calibration(bundle, quantize: str, encode, names: list):
    """For ``int8-full``: the converter's representative dataset, one training input a call as the graph
    takes them (``encode([item])`` -> the inputs by name); otherwise None."""
    if quantize != "int8-full":
        return None
    rows = calibration_rows(bundle)
    encoded = [{k: np.asarray(v) for k, v in encode([row]).items() if k in names} for row in rows]
    # every call at one shape, each axis at its widest over the rows, padded with 0 (what padding is to the
    # graph): the calibrator sizes its buffers from the first call and does not resize them after
    widest = {k: np.max([e[k].shape for e in encoded], axis=0) for k in names}

    def representative():
        for e in encoded:
            yield {k: np.pad(v, [(0, int(n) - m) for n, m in zip(widest[k], v.shape)]) for k, v in e.items()}

    return representative


def convert(model, specs, path: Path, quantize: str, task: str, fn=None, calibration=None) -> None:
    """Keras' LiteRT export of ``model`` over ``specs`` with built-in operators only, quantized as asked;
    with ``fn``, of ``fn`` (taking ``specs``, a list, positionally) instead of the model's call, by the
    same route Keras' exporter takes (a SavedModel endpoint, then the converter). ``int8-full`` needs
    ``calibration`` (a representative dataset, :func:`_calibration`)."""
    import tensorflow as tf

    target = {"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS]}  # no Flex: the LiteRT runtime alone runs it
    options = {}
    if quantize in ("int8", "float16", "int8-full"):
        options["optimizations"] = [tf.lite.Optimize.DEFAULT]
    if quantize == "float16":
        target["supported_types"] = [tf.float16]
    if quantize == "int8-full":
        if calibration is None:
            raise ExportError(f"--quantize int8-full is offered for the LiteRT exports of "
                              f"{' and '.join(FULL_INTEGER)}, not {task}: use --quantize int8")
        # int8 kernels with calibrated activation ranges where LiteRT has them, float where not (its
        # recurrent loop's state); inputs (ids) and outputs stay as they are
        target["supported_ops"] = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
        options["representative_dataset"] = calibration
    try:
        if fn is None:
            model.export(str(path), format="litert", input_signature=[specs], verbose=False, target_spec=target,
                         **options)
        else:
            _convert_function(model, fn, specs, path, target, options)
    except Exception as e:
        if type(e).__name__ != "ConverterError":
            raise
        raise ExportError(f"--format litert cannot express this {task} model with LiteRT's built-in operators "
                          f"({_first_error(str(e))}); export a SavedModel (the default) or --format onnx") from None


def _convert_function(model, fn, specs: list, path: Path, target: dict, options: dict) -> None:
    import tempfile

    import keras
    import tensorflow as tf

    with tempfile.TemporaryDirectory() as saved:
        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.add_endpoint("serving_default", fn, input_signature=specs)
        archive.write_out(saved, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(saved)
        for key, value in target.items():
            setattr(converter.target_spec, key, value)
        for key, value in options.items():
            setattr(converter, key, value)
        Path(path).write_bytes(converter.convert())


def _first_error(text: str) -> str:
    """The converter's first complaint about an operation (``'tf.TensorListReserve' op requires ...``)."""
    import re

    found = re.search(r"('[\w.]+' op [^\n]*)", text) or re.search(r"error: ([^\n]*)", text)
    return (found.group(1) if found else (text.strip().splitlines() or ["the converter failed"])[0])[:200]


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
    """``({name: (fn(**numpy inputs) -> {output: numpy}, {input: ArraySpec})}, metadata)`` of a LiteRT export:
    the ONNX export's signatures (:data:`seqapps.inference.onnx_runtime.SIGNATURES`) over :class:`RowSession`."""

    path = Path(path)
    meta_path = path / "metadata.json"
    if not meta_path.is_file():
        raise ExportError(f"{path}: not a seqapps export (expected metadata.json beside {MODEL})")
    metadata = json.loads(meta_path.read_text())
    task = metadata.get("task")
    if task not in ADAPTERS:
        raise ExportError(f"{path}: LiteRT exports of {task!r} are not supported by this version of seqapps")
    interp = interpreter(path / MODEL, threads)
    if task == "translation":  # the encoder one text per call, the decoder's step a whole batch per call
        session = {"model": BatchSession(interp), "encoder": RowSession(interpreter(path / ENCODER, threads), "source")}
    elif task == "captioning":  # no loop in either graph: a whole batch per call
        session = {"model": BatchSession(interp), "encoder": BatchSession(interpreter(path / ENCODER, threads))}
    elif task == "forecasting":  # one window per call, whole (its steps are fixed; a 0 is a value)
        session = RowSession(interp, "window", cut=False)
    else:
        session = RowSession(interp, PRIMARY[task]) if task in PRIMARY else BatchSession(interp)
    return onnx_runtime.SIGNATURES[task](path, metadata, session), metadata


class BatchSession:
    """What the ONNX signatures ask of an ONNX Runtime session over a LiteRT graph whose batch is free
    (char_lm's step): ``run`` is one call of the graph."""

    def __init__(self, interp):
        self.runner = interp.get_signature_runner()
        self.lock = threading.Lock()  # an interpreter runs one call at a time

    def get_inputs(self) -> list:
        return [SimpleNamespace(name=name) for name in self.runner.get_input_details()]

    def run(self, output_names, feeds: dict) -> list:
        with self.lock:
            out = self.runner(**{k: np.ascontiguousarray(v) for k, v in feeds.items()})
        return [out[name] for name in output_names]


class RowSession:
    """What the ONNX signatures ask of an ONNX Runtime session (``get_inputs``, ``run``) over a LiteRT
    graph that takes one row per call: ``run`` calls the graph once per row of the batch, each row cut
    to its length (up to its last non-zero id of the ``primary`` input: the padding on the right is
    dropped, as the model's mask drops it), and pads each output's free axes (those that follow the
    row's length: per-step scores, translation's encoder outputs and mask) back to the batch's width
    with zeros (masked by the signatures, as the padding's scores are). A graph with one output gives it
    whatever the ONNX graph named it. With ``cut`` False every row is read whole (forecasting's window)."""

    def __init__(self, interp, primary: str, cut: bool = True):
        self.runner = interp.get_signature_runner()
        self.names = list(self.runner.get_input_details())
        self.outputs = {name: (list(d["shape_signature"]), d["dtype"])
                        for name, d in self.runner.get_output_details().items()}
        self.primary, self.cut = primary, cut
        self.lock = threading.Lock()  # an interpreter runs one call at a time

    def get_inputs(self) -> list:
        return [SimpleNamespace(name=name) for name in self.names]

    def run(self, output_names, feeds: dict) -> list:
        if len(self.outputs) == 1:
            (_,) = output_names  # the graph's one output, whatever the ONNX graph named it
            names = list(self.outputs)
        else:
            names = list(output_names)
        primary = np.asarray(feeds[self.primary])
        width, rows, lengths = primary.shape[1], [], []
        for i in range(primary.shape[0]):
            nonzero = np.flatnonzero(primary[i]) if self.cut else np.arange(width)
            length = int(nonzero[-1]) + 1 if nonzero.size else 1
            with self.lock:
                out = self.runner(**{k: np.ascontiguousarray(feeds[k][i:i + 1, :length]) for k in self.names})
            rows.append([out[name][0] for name in names])
            lengths.append(length)
        results = []
        for j, name in enumerate(names):
            shape, dtype = self.outputs[name]
            free = [axis for axis, d in enumerate(shape[1:]) if d == -1]
            if not rows:
                results.append(np.zeros([0] + [width if d == -1 else d for d in shape[1:]], dtype))
                continue
            padded = [np.pad(row[j], [(0, width - n if axis in free else 0) for axis in range(row[j].ndim)])
                      if row[j].ndim else row[j] for row, n in zip(rows, lengths)]  # a row's scalar: a position
            results.append(np.stack(padded))
        return results


class LiteRTPredictor(onnx_runtime.OnnxPredictor):
    """The ONNX predictor's signatures and helpers over LiteRT sessions (:func:`signatures`)."""

    runtime = "litert"


def predictor_class(task: str) -> type:
    """:class:`LiteRTPredictor` with the task's TensorFlow-free ``Predictions`` mixin (``predict``, ``format``)."""
    return onnx_runtime.predictor_class(task, LiteRTPredictor)


def load(path, threads: int = THREADS) -> LiteRTPredictor:
    sigs, metadata = signatures(path, threads)
    return predictor_class(str(metadata.get("task", "")))(None, sigs, metadata)

"""ONNX exports (fp32, int8 or float16 weights) of a run, answered without TensorFlow.

``python -m seqapps export RUN OUT --format onnx --quantize int8``. ONNX has no string
operators, so an ONNX export's graph takes token ids and the folder carries what turns raw
inputs into them:

    OUT/model.onnx        the model: ids in, the task's numeric outputs out (translation: one
                          decoder step)
    OUT/encoder.onnx      translation and captioning: source ids (pixels) in, the decoder's initial
                          state out
    OUT/tokenizer.json    the tokenizer specification (:mod:`seqapps.inference.tokenizer`)
    OUT/vocabulary.json   the word vocabulary (ids 2.. in order); pos also chars.json (and
                          vector_words.json), char_lm chars.json and state.npz, translation
                          target_vocabulary.json (every id from 0, as its graph joins words)
    OUT/window.json       forecasting: the constants of the window checks (no tokenizer: its inputs are numbers)
    OUT/words.json        word_vectors: its vocabulary (ids 1.. in order)
    OUT/metadata.json     as a SavedModel export's, plus ``format``, ``quantize`` and ``graph``
                          (what runs inside the graph and what runs outside it)

:mod:`seqapps.inference.onnx_runtime` loads it with ONNX Runtime alone. Per task:

- sentiment: the graph holds the embeddings, the n-gram table, the recurrent (or transformer or
  bag) encoder with its loop over time (ONNX ``Loop``), pooling and the softmax; standardizing,
  splitting, the vocabulary lookup and the n-gram hashing run in Python, as does picking the
  label from the probabilities.
- pos: the graph holds the word (and pretrained vector) embeddings, the character encoder of each
  word, the sentence encoder and the tag scores (a CRF's potentials); tokenizing, the cut of long
  words, lower-casing and the word/character lookups run in Python
  (:class:`seqapps.inference.tokenizer.TaggerTokenizer`), the argmax (or Viterbi over the CRF's
  potentials) in NumPy.
- char_lm: the graph is one step of the model (``tokens`` and the state in, ``logits`` and
  ``next.<state>`` out: an LSTM's ``h``/``c``, a transformer's position and key/value ring), since
  the loops over characters stop on inputs (a prime's length, ``length``) and sample; reading from
  the warm-up state (``state.npz``, as the SavedModel holds it), scoring and generating loop in
  NumPy, one graph call per character. A seeded sample uses NumPy's generator, so it differs from
  the SavedModel's; greedy text and scores are the same. ``states`` is not exported.
- translation: two graphs, since decoding loops over steps and beams: ``encoder.onnx`` (``source``
  ids in, the decoder's initial state out: a recurrent decoder's ``s0``/``s1`` with the encoder
  outputs, mask and attention keys; a transformer's mask, cross-attention keys and values, empty
  key/value cache and position) and ``model.onnx``, one decoder step (``tokens`` and that state in,
  ``logits``, ``next.<state>`` for the parts a step changes and ``attention`` out). Standardizing and the
  source lookup (:class:`seqapps.inference.tokenizer.SourceTokenizer`), greedy or beam search in NumPy
  (:func:`seqapps.inference.onnx_runtime.beam_search`: the SavedModel's width, GNMT length penalty,
  banned padding/unknown/start ids and per-row step cap) and joining and detokenizing the target words
  run outside; all three signatures (``serving_default``, ``translate``, ``attention``) are answered.
- captioning: two graphs, as translation: ``encoder.onnx`` (``pixels`` float32 ``[batch, size, size, 3]``
  in [0, 255] in, the decoder's initial state out: the projected feature grid, attention keys, ``h``/``c``)
  and ``model.onnx``, one decoder step. Decoding the image bytes with Pillow
  (:func:`tasks.captioning.predicting.decode_image`, close to the graph's pixels, not equal), greedy or beam
  search in NumPy (unknown and start words banned) and joining the words run outside; ``serving_default``,
  ``beam`` and ``attention`` are answered.
- forecasting: the graph is the whole model (``window`` float32 ``[batch, window, features]`` of raw values
  in, ``forecast`` ``[batch, horizon]`` in the target's units out): the target's transform (log, Box-Cox),
  the standardization, seasonal differences, the encoder with its loop over the window, the head (and
  linear component), the base forecast and the map back. Its inputs are numbers, so there is no tokenizer:
  ``window.json`` holds the constants of the SavedModel signature's checks, run in NumPy before the graph
  in the same order and words (rows within the bound, finite values, none over 1e6 training scales from
  the training mean, target values above 0 for a log or Box-Cox model); encoding a DataFrame's rows
  (``forecast``) is the SavedModel predictor's own Python (:mod:`tasks.forecasting.predicting`).
- word_vectors: the graph is the vector table only (``ids`` int64 ``[batch]`` -> ``vectors`` ``[batch, dim]``, id
  0 the unknown word), read whole once when the export loads: the simplest graph that answers as the SavedModel,
  since the rest is a lookup, one matmul and a sort. ``words.json`` holds the vocabulary (ids 1.. in order); the
  signatures' text checks (same lines), the cut of long words, strip and lower-casing, the lookup,
  unit-normalization, the cosine matmul and the top k (ties: the lower id first, as ``tf.math.top_k``) run in
  NumPy (:mod:`tasks.word_vectors.predicting`, which says where its lower-casing differs from TensorFlow's);
  ``serving_default``, ``neighbours`` and ``analogy`` are answered.
- video_frames: the graph is the whole model over decoded frames (``pixels`` float32 ``[batch, time, size,
  size, 3]`` in [0, 255] and ``mask`` ``[batch, time]`` in, the per-frame ``scores`` and ``probabilities``
  out): the frame encoder over every frame, the recurrent context with its loop over the frames (ONNX
  ``Loop``), the label scores (a CRF's potentials) and the softmax. Decoding each frame's bytes (as
  captioning's, with Pillow) or a GIF's first ``max_length`` frames (counted in its blocks as the graph
  counts them), the SavedModel's bounds and lines, the labels (argmax, or Viterbi in NumPy) and their names
  run outside (:mod:`tasks.video_frames.predicting`); ``serving_default`` and ``gif`` are answered. No file
  is written beside the graph: metadata.json holds the labels, size, ``max_length`` and ``crf``.

Other tasks are refused with a message saying so (:data:`TASKS`).

Quantization (``--quantize``): ``int8`` is ONNX Runtime's post-training dynamic quantization
(``quantize_dynamic``: int8 weights for MatMul, Gather and LSTM, the embedding tables included, with
activations quantized on the fly), loops' bodies included, each graph of the folder; convolutions keep float
arithmetic with their weights stored in float16 (ConvInteger was slower than float and less accurate); ``float16`` stores the weights in
half precision with float32 inputs and outputs; ``none`` keeps float32.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from seqapps.core.errors import ExportError
from seqapps.inference.export_parts import (captioning_functions, char_lm_step, forecasting_graph,
                                            translation_functions, video_frames_graph, word_vectors_graph,
                                            write_sidecar_captioning, write_sidecar_forecasting, write_sidecar_pos,
                                            write_sidecar_sentiment, write_sidecar_translation,
                                            write_sidecar_word_vectors)

FORMATS = ("savedmodel", "onnx", "litert")  # litert: seqapps.inference.litert
QUANTIZE = ("none", "int8", "float16", "int8-full")  # int8-full: LiteRT's calibrated full-integer, pos
TASKS = ("sentiment", "pos", "char_lm", "translation", "captioning", "forecasting",
         "word_vectors", "video_frames")  # tasks with an ONNX adapter below


def write(bundle, out_dir: Path, fmt: str, quantize: str) -> Path:
    """Write ``bundle`` (a :class:`seqapps.inference.bundle.Bundle`) as a ``fmt`` export to ``out_dir``,
    atomically (the same temporary-folder-and-rename as the SavedModel writer)."""
    from seqapps.inference import folders

    if fmt not in FORMATS or fmt == "savedmodel":
        raise ExportError(f"--format must be one of {', '.join(FORMATS)}; got {fmt!r}")
    if quantize not in QUANTIZE:
        raise ExportError(f"--quantize must be one of {', '.join(QUANTIZE)}; got {quantize!r}")
    task = bundle.task.name
    if quantize == "int8-full":
        from seqapps.inference.litert import FULL_INTEGER

        if fmt != "litert" or task not in FULL_INTEGER:
            raise ExportError(
                f"--quantize int8-full (calibrated full-integer) is offered for --format litert exports of "
                f"{' and '.join(FULL_INTEGER)}; "
                + ("ONNX Runtime's static quantization measured slower than --quantize int8 on sentiment (it has "
                   "no int8 LSTM kernel; docs/serving.md)" if fmt == "onnx" else f"for {task} use --quantize int8"
                   + (" (full-integer measured slower and 1.2 points less accurate on SST-2)"
                      if task == "sentiment" else "")))
    if fmt == "litert":
        from seqapps.inference import litert

        litert.check_task(task)
    elif task not in TASKS:
        raise ExportError(f"--format {fmt} is not available for {task} yet (it is for: {', '.join(TASKS)}); "
                          "export a SavedModel (the default)")
    folders.check_target(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    folders.remove_stale(out_dir)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.{os.getpid()}.", suffix=".tmp", dir=out_dir.parent))
    try:
        tmp.chmod(0o777 & ~folders.umask())
        if fmt == "litert":
            graph = litert.write(bundle, tmp, quantize)
        else:
            from seqapps.inference.recurrence import by_lengths

            with by_lengths():  # masked LSTM/GRU layers as ONNX's fused operators, not a Loop
                graph = ADAPTERS[task](bundle, tmp)
            for graph_file in sorted(tmp.glob("*.onnx")):
                _quantize(graph_file, quantize)
        metadata = bundle.metadata()
        metadata.update({"format": fmt, "quantize": quantize, "graph": graph})
        (tmp / "metadata.json").write_text(json.dumps(metadata, indent=2, default=str) + "\n")
        folders.swap_into_place(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


# -- per task: the graph written, the tokenizer beside it ---------------------------------------------
def _sentiment(bundle, folder: Path) -> dict:
    import tensorflow as tf

    cfg, model = bundle.config, bundle.model
    specs = {"tokens": tf.TensorSpec([None, None], tf.int64, name="tokens")}
    if cfg.model.subwords:
        specs["subwords"] = tf.TensorSpec([None, None, None], tf.int64, name="subwords")
    _keras_to_onnx(model, {k: specs[k] for k in _input_names(model)}, folder / "model.onnx", ["probabilities"])
    subwords = write_sidecar_sentiment(bundle, folder)["subwords"]
    return {"inputs": {"tokens": "int64 [batch, time]: word ids (0 padding, 1 unknown)",
                       **({"subwords": "int64 [batch, time, grams]: hashed char n-gram ids (0 padding)"}
                          if subwords else {})},
            "outputs": {"probabilities": "float32 [batch, classes]"},
            "in_graph": "embeddings, n-gram vectors, the encoder with its loop over time, pooling, softmax",
            "outside": "standardizing, splitting, vocabulary lookup and n-gram hashing "
                       "(seqapps.inference.tokenizer), the label from the probabilities"}


def _pos(bundle, folder: Path) -> dict:
    import tensorflow as tf

    cfg, prep, model = bundle.config, bundle.prep, bundle.model
    c = int(prep.max_word_length)
    specs = {"words": tf.TensorSpec([None, None], tf.int64, name="words"),
             "chars": tf.TensorSpec([None, None, c], tf.int64, name="chars"),
             "vectors": tf.TensorSpec([None, None], tf.int64, name="vectors")}
    _keras_to_onnx(model, {k: specs[k] for k in _input_names(model)}, folder / "model.onnx", ["scores"])
    write_sidecar_pos(bundle, folder)
    crf = bool(cfg.model.crf)
    return {"inputs": {"words": "int64 [batch, time]: lower-cased word ids (0 padding, 1 unknown)",
                       "chars": f"int64 [batch, time, {c}]: character ids of each word (0 padding, 1 unknown)",
                       **({"vectors": "int64 [batch, time]: ids into the pretrained vectors (0 padding, 1 unknown)"}
                          if "vectors" in _input_names(model) else {})},
            "outputs": {"scores": "float32 [batch, time, tags, tags]: CRF potentials (previous tag, tag)" if crf
                        else "float32 [batch, time, tags]: tag logits"},
            "in_graph": "word (and pretrained vector) embeddings, the character encoder of each word, the sentence "
                        "encoder with its loop over time, the tag scores" + (" and the CRF potentials" if crf else ""),
            "outside": "tokenizing, the cut of long words, lower-casing and the word/character lookups "
                       "(seqapps.inference.tokenizer.TaggerTokenizer), the padding mask, "
                       + ("Viterbi decoding of the potentials (NumPy)" if crf else "the argmax over tags")
                       + " and the tag names"}


def _char_lm(bundle, folder: Path) -> dict:
    import tensorflow as tf

    step, signature, flat = char_lm_step(bundle, folder)
    _function_to_onnx(tf.function(step, input_signature=signature), signature, folder / "model.onnx")
    return {"inputs": {"tokens": "int64 [batch]: the character read now (ids of chars.json from 1; 0 unknown)",
                       **{k: f"{v.dtype} [batch, {', '.join(map(str, v.shape[1:]))}]: the state before it"
                          for k, v in flat.items()}},
            "outputs": {"logits": "float32 [batch, vocabulary]: the next character's logits",
                        **{f"next.{k}": "the state after it" for k in flat}},
            "in_graph": "one step of the model: the embedding, every layer's cell (or block, with its key/value "
                        "cache) and the logits",
            "outside": "the character lookup, the loops over characters (NumPy, one graph call per character): "
                       "reading the prime or the scored text from the warm-up state (state.npz, the state after "
                       "the warm-up passage as the SavedModel holds it), the log-likelihoods of score, and "
                       "generate's greedy or sampled picks (NumPy's generator seeded by seed: a seeded sample "
                       "differs from the SavedModel's; greedy picks are the same)"}


def _translation(bundle, folder: Path) -> dict:
    import tensorflow as tf

    encoder, decoder, leaves, probe, traced = translation_functions(bundle.model)
    names = list(probe)
    source = tf.TensorSpec([None, None], tf.int64, name="source")
    tokens = tf.TensorSpec([None], tf.int64, name="tokens")
    _function_to_onnx(tf.function(encoder, input_signature=[source]), [source], folder / "encoder.onnx")
    _function_to_onnx(tf.function(decoder, input_signature=[tokens, *leaves]), [tokens, *leaves],
                      folder / "model.onnx")
    carried, attention = traced["carried"], traced["attention"]
    write_sidecar_translation(bundle, folder, names, carried, attention)
    return {"files": {"encoder.onnx": "source ids -> the decoder's initial state",
                      "model.onnx": "one decoding step"},
            "inputs": {"encoder.onnx": {"source": "int64 [batch, time]: source word ids (0 padding, 1 unknown)"},
                       "model.onnx": {"tokens": "int64 [batch]: the previous output token (target ids)",
                                        **{k: f"{probe[k].dtype.name} the state" for k in names}}},
            "outputs": {"encoder.onnx": {k: "the decoder's initial state" for k in names},
                        "model.onnx": {"logits": "float32 [batch, target vocabulary]: the next token's logits",
                                         **{f"next.{k}": "the state after the step" for k in carried},
                                         **({"attention": "float32 [batch, source time]: attention weights"}
                                            if attention else {})}},
            "in_graph": "encoder.onnx: the source embedding and the encoder with its loop over time (the decoder's "
                        "initial state, encoder outputs, mask, attention keys); model.onnx: one step of the "
                        "decoder (target embedding, cell or blocks with their key/value cache, attention, logits)",
            "outside": "standardizing, splitting, the cut of long words and the source vocabulary lookup "
                       "(seqapps.inference.tokenizer.SourceTokenizer), the decoding loop over model.onnx "
                       "(NumPy, one graph call per output token): greedy or beam search with the same width, "
                       "GNMT length penalty, banned tokens (padding, unknown, start) and per-row step cap "
                       "(2 x source words + 10, at most max_output_length) as the SavedModel's, the target "
                       "words joined and detokenized in Python"}


def _captioning(bundle, folder: Path) -> dict:
    import tensorflow as tf

    encoder, decoder, pixels, specs, probe, traced = captioning_functions(bundle)
    names = list(probe)
    _function_to_onnx(tf.function(encoder, input_signature=[pixels]), [pixels], folder / "encoder.onnx")
    _function_to_onnx(tf.function(decoder, input_signature=specs), specs, folder / "model.onnx")
    spec = write_sidecar_captioning(bundle, folder, names, traced)
    carried, attention, size = spec["carried"], spec["attention"], spec["image_size"]
    return {"files": {"encoder.onnx": "pixels -> the decoder's initial state", "model.onnx": "one decoding step"},
            "inputs": {"encoder.onnx": {"pixels": f"float32 [batch, {size}, {size}, 3]: RGB in [0, 255]"},
                       "model.onnx": {"tokens": "int64 [batch]: the previous word id",
                                      **{k: f"{probe[k].dtype.name} the state" for k in names}}},
            "outputs": {"encoder.onnx": {k: "the decoder's initial state" for k in names},
                        "model.onnx": {"logits": "float32 [batch, vocabulary]: the next word's logits",
                                       **{f"next.{k}": "the state after the step" for k in carried},
                                       **({"attention": "float32 [batch, cells]: attention over the feature grid"}
                                          if attention else {})}},
            "in_graph": "encoder.onnx: the image encoder (CNN feature grid), the feature projection and the "
                        "decoder's initial state (and attention keys); model.onnx: one step of the decoder "
                        "(word embedding, attention, recurrent cell, deep output, logits)",
            "outside": "decoding the image bytes, the first frame of a GIF, the JPEG scaling, the bounds and the "
                       "resize to the model's size (Pillow: tasks.captioning.predicting.decode_image; close to, "
                       "not equal to, the SavedModel's pixels), greedy or beam search over model.onnx (NumPy, "
                       "the same width, length penalty, banned unknown and start words and step count as the "
                       "SavedModel's), joining the words"}


def _forecasting(bundle, folder: Path) -> dict:
    import tensorflow as tf

    model = bundle.model
    spec, inputs = forecasting_graph(bundle, None)
    forecast = tf.function(lambda window: {"forecast": model(window, training=False)}, input_signature=[spec])
    _function_to_onnx(forecast, [spec], folder / "model.onnx")
    _captures_to_constants(forecast.get_concrete_function(), folder / "model.onnx")
    write_sidecar_forecasting(bundle, folder)
    return {"inputs": inputs,
            "outputs": {"forecast": f"float32 [batch, {bundle.prep.horizon}]: the forecasts in the target's units"},
            "in_graph": "the whole model: the target's transform (log, Box-Cox), the standardization, seasonal "
                        "differences, the recurrent encoder with its loop over the window, the head (and linear "
                        "component), the base forecast and the map back to the target's units",
            "outside": "the window checks of the SavedModel's signature, in the same order and words (NumPy, "
                       "constants in window.json): rows within the bound, finite values, none too far from the "
                       "training mean, target values above 0 for a log or Box-Cox model"}


def _word_vectors(bundle, folder: Path) -> dict:
    import tensorflow as tf

    fn, spec, graph = word_vectors_graph(bundle)
    _function_to_onnx(tf.function(fn, input_signature=[spec]), [spec], folder / "model.onnx")
    write_sidecar_word_vectors(bundle, folder)
    return graph


def _video_frames(bundle, folder: Path) -> dict:
    import tensorflow as tf

    fn, specs, graph = video_frames_graph(bundle, None)
    _function_to_onnx(tf.function(fn, input_signature=specs), specs, folder / "model.onnx")
    return graph


ADAPTERS = {"sentiment": _sentiment, "pos": _pos, "char_lm": _char_lm, "translation": _translation,
            "captioning": _captioning, "forecasting": _forecasting, "word_vectors": _word_vectors,
            "video_frames": _video_frames}


# -- conversion and quantization ---------------------------------------------------------------------
def _input_names(model) -> list[str]:
    """The Keras model's input names in the order it declares them (a dict input is called by name)."""
    return [t.name for t in model.inputs]


def _keras_to_onnx(model, specs: dict, path: Path, output_names: list[str]) -> None:
    """Keras' own ONNX export (tf2onnx under the TensorFlow backend), with the outputs renamed."""
    import onnx

    with _quiet_tf2onnx():
        model.export(str(path), format="onnx", input_signature=[specs], verbose=False)
    graph = onnx.load(str(path))
    renames = {o.name: new for o, new in zip(graph.graph.output, output_names)}
    for node in graph.graph.node:
        node.output[:] = [renames.get(o, o) for o in node.output]
        node.input[:] = [renames.get(i, i) for i in node.input]
    for output in graph.graph.output:
        output.name = renames.get(output.name, output.name)
    onnx.save(graph, str(path))


@contextlib.contextmanager
def _quiet_tf2onnx():
    """tf2onnx's warnings (its notes on loops it leaves as they are, say) kept out of the export's output."""
    import logging

    logger = logging.getLogger("tf2onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _function_to_onnx(function, signature: list, path: Path) -> None:
    """A ``tf.function`` over ``signature`` as an ONNX graph (tf2onnx, its warnings quiet)."""
    import tf2onnx

    with _quiet_tf2onnx():
        tf2onnx.convert.from_function(function, input_signature=signature, output_path=str(path))


def _captures_to_constants(concrete, path: Path) -> None:
    """The tensors a function captured (the values of a Keras ``Normalization`` given its mean and variance)
    stored in the graph: tf2onnx leaves each as a graph input to be fed."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path))
    fed = {i.name: i for i in graph.graph.input}
    used = {name for node in graph.graph.node for name in node.input}
    for value, inner in zip(concrete.captured_inputs, concrete.graph.internal_captures):
        if inner.name in fed and value.dtype.name != "resource":
            graph.graph.input.remove(fed[inner.name])
            if inner.name in used:
                graph.graph.initializer.append(numpy_helper.from_array(value.numpy(), inner.name))
    onnx.save(graph, str(path))


def _half_conv_weights(path: Path, least: int = 1024) -> None:
    """Stores each top-level ``Conv``'s float32 weights of at least ``least`` numbers in float16, read
    through a ``Cast`` to float32 that ONNX Runtime folds when the session loads: the file holds half the
    bytes, the convolution runs in float32 as before (measured on captioning's EfficientNet-Lite0: 15.4 ->
    7.3 MB, the same latency, features within 1% of float32's)."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    initializers = {i.name: i for i in graph.initializer}
    casts, done = [], set()
    for node in graph.node:
        if node.op_type != "Conv" or len(node.input) < 2 or node.input[1] in done:
            continue
        weight = initializers.get(node.input[1])
        if weight is None or weight.data_type != onnx.TensorProto.FLOAT:
            continue
        values = numpy_helper.to_array(weight)
        if values.size < least:
            continue
        name = weight.name
        graph.initializer.remove(weight)
        graph.initializer.append(numpy_helper.from_array(values.astype(np.float16), f"{name}__float16"))
        casts.append(helper.make_node("Cast", [f"{name}__float16"], [name], to=onnx.TensorProto.FLOAT,
                                      name=f"{name}__cast"))
        done.add(name)
    if casts:
        nodes = casts + list(graph.node)
        del graph.node[:]
        graph.node.extend(nodes)
        onnx.save(model, str(path))


def _quantize(path: Path, how: str) -> None:
    if how == "none":
        return
    import onnx

    if how == "int8":
        import logging

        from onnxruntime.quantization import QuantType, quantize_dynamic
        from onnxruntime.quantization.registry import IntegerOpsRegistry

        out = path.with_name(f"{path.stem}.int8.onnx")
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)  # its advice to pre-process, and tensors it leaves in float (the loop's masks)
        try:
            # convolutions are left out: ONNX Runtime's ConvInteger was 10x slower than the float convolution
            # on an EfficientNet and moved its features 30% (captioning's encoder); they keep half-precision
            # weights instead (_half_conv_weights)
            quantize_dynamic(str(path), str(out), weight_type=QuantType.QInt8, per_channel=False,
                             op_types_to_quantize=[op for op in IntegerOpsRegistry if op != "Conv"],
                             extra_options={"EnableSubgraph": True})
        finally:
            root.setLevel(level)
        _half_conv_weights(out)
        out.replace(path)
    else:
        from onnxruntime.transformers.float16 import convert_float_to_float16

        onnx.save(convert_float_to_float16(onnx.load(str(path)), keep_io_types=True), str(path))

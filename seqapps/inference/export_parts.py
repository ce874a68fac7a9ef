"""What an ONNX export and a LiteRT export of the same run share: the files written beside the graph
(tokenizer specifications and vocabularies) and the one-step functions converted for the decoding loops
that run outside the graph. Used by :mod:`seqapps.inference.formats` (ONNX) and
:mod:`seqapps.inference.litert`; the files are byte for byte the same in both exports."""

from __future__ import annotations

import json
from pathlib import Path


def write_sidecar_sentiment(bundle, folder: Path) -> dict:
    """The files outside sentiment's graph (vocabulary.json, tokenizer.json), for ONNX and LiteRT alike;
    returns the tokenizer's spec."""
    cfg, prep = bundle.config, bundle.prep
    vocabulary = [t for t in prep.vocabulary if t not in ("", "[UNK]")]
    (folder / "vocabulary.json").write_text(json.dumps(vocabulary, ensure_ascii=False) + "\n", encoding="utf-8")
    subwords = ({"buckets": cfg.model.subword_buckets, "min_n": 3, "max_n": 5, "max_grams": 40}
                if cfg.model.subwords else None)
    spec = {"type": "words", "standardize": "seqapps.data.text.standardize", "vocabulary": "vocabulary.json",
            "max_length": int(prep.max_length), "subwords": subwords}
    (folder / "tokenizer.json").write_text(json.dumps(spec, indent=2) + "\n", encoding="utf-8")
    return spec


def write_sidecar_pos(bundle, folder: Path) -> dict:
    """The files outside pos' graph (vocabulary.json, chars.json, vector_words.json with pretrained vectors,
    tokenizer.json), for ONNX and LiteRT alike; returns the tokenizer's spec."""
    cfg, prep = bundle.config, bundle.prep
    files = {"vocabulary": ("vocabulary.json", prep.words), "chars": ("chars.json", prep.chars),
             "vectors": ("vector_words.json", prep.vector_words)}
    files = {key: (name, items) for key, (name, items) in files.items() if key != "vectors" or items}
    for key, (name, items) in files.items():
        (folder / name).write_text(json.dumps(list(items), ensure_ascii=False) + "\n", encoding="utf-8")
    spec = {"type": "tagger", "tokenize": "tasks.pos.data.tokenize", "encode": "tasks.pos.data.TaggerData.encode",
            "vectors": None, **{key: name for key, (name, _) in files.items()},
            "max_word_length": int(prep.max_word_length), "decode": "viterbi" if cfg.model.crf else "argmax"}
    (folder / "tokenizer.json").write_text(json.dumps(spec, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return spec


def char_lm_step(bundle, folder: Path) -> tuple:
    """char_lm's one step of the model for ONNX and LiteRT alike, ``(step, signature, state)``: ``step(tokens,
    *state leaves)`` -> ``{"logits", "next.<leaf>"...}`` with no loop inside (its batch stays free) over
    ``signature`` (TensorSpecs), and the warm-up's flat state; writes the files outside the graph (state.npz,
    chars.json, tokenizer.json) into ``folder``."""
    import numpy as np
    import tensorflow as tf

    from tasks.char_lm.serving import warm_start

    prep, model = bundle.prep, bundle.model
    warm, warm_last = warm_start(model, prep.encode(prep.warmup))
    flat = flat_state(warm)
    names = list(flat)
    signature = [tf.TensorSpec([None], tf.int64, name="tokens")] + [
        tf.TensorSpec([None, *v.shape[1:]], tf.as_dtype(v.dtype), name=k) for k, v in flat.items()]

    def step(tokens, *leaves):
        state = nested_state(dict(zip(names, leaves)))
        logits, new_state, _ = model.step(tf.cast(tokens, tf.int32), state)
        return {"logits": tf.cast(logits, tf.float32), **{f"next.{k}": v for k, v in flat_state(new_state).items()}}

    np.savez(folder / "state.npz", **flat)
    (folder / "chars.json").write_text(json.dumps(list(prep.chars), ensure_ascii=False) + "\n", encoding="utf-8")
    window = model.settings.get("context")
    spec = {"type": "chars", "chars": "chars.json", "state": "state.npz", "state_names": names,
            "warm_last": int(warm_last), "context": int(window) if window else None}
    (folder / "tokenizer.json").write_text(json.dumps(spec, indent=2) + "\n", encoding="utf-8")
    return step, signature, flat


def flat_state(state, prefix: str = "") -> dict:
    """A nest of dicts of tensors as ``{"a.b": leaf}``, in sorted key order."""
    out = {}
    for key in sorted(state):
        if isinstance(state[key], dict):
            out.update(flat_state(state[key], f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = state[key]
    return out


def nested_state(flat: dict) -> dict:
    """:func:`flat_state` undone."""
    out = {}
    for name, value in flat.items():
        *path, last = name.split(".")
        node = out
        for key in path:
            node = node.setdefault(key, {})
        node[last] = value
    return out


def translation_functions(model) -> tuple:
    """translation's two graphs as functions, for ONNX and LiteRT alike: ``(encoder, decoder, leaves, probe,
    traced)``. ``encoder(source)`` -> the decoder's flat initial state; ``decoder(tokens, *leaves)`` -> one step's
    ``logits``, ``next.<leaf>`` for the leaves a step changes and ``attention``; ``leaves``: the state's
    TensorSpecs (batch free, and every axis that follows the source's width); ``probe``: the state of a
    3-word batch of 2; ``traced``: ``carried`` (the leaves a step changes) and ``attention``, once traced."""
    import tensorflow as tf

    # the state's shapes for two source widths: an axis that follows the width is free, as the batch axis
    probe = {w: flat_state(model.initial_state(tf.ones([2, w], tf.int64))) for w in (3, 5)}
    names = list(probe[3])
    leaves = [tf.TensorSpec([None] + [a if a == b else None for a, b in zip(probe[3][k].shape[1:], probe[5][k].shape[1:])],
                            probe[3][k].dtype, name=k) for k in names]
    traced = {"carried": [], "attention": False}

    def encoder(source):
        return flat_state(model.initial_state(source))

    def decoder(tokens, *values):
        flat = dict(zip(names, values))
        logits, new_state, extras = model.step(tf.cast(tokens, tf.int32), nested_state(flat))
        new = flat_state(new_state)
        traced["carried"] = [k for k in names if new[k] is not flat[k]]  # the rest (encoder outputs, masks) only read
        out = {"logits": tf.cast(logits, tf.float32), **{f"next.{k}": new[k] for k in traced["carried"]}}
        if extras and "attention" in extras:
            out["attention"] = tf.cast(extras["attention"], tf.float32)
        traced["attention"] = "attention" in out
        return out

    return encoder, decoder, leaves, probe[3], traced


def captioning_functions(bundle) -> tuple:
    """captioning's two graphs as functions, for ONNX and LiteRT alike: ``(encoder, decoder, pixels, specs,
    probe, traced)``. ``encoder(pixels)`` -> the decoder's flat initial state; ``decoder(tokens, *leaves)`` ->
    one step's ``logits``, ``next.<leaf>`` for the leaves a step changes and ``attention``; ``pixels``: the
    encoder's TensorSpec (float32 ``[batch, size, size, 3]`` in [0, 255]); ``specs``: the decoder's (tokens,
    then the state's leaves, batch free); ``probe``: the state of a batch of 2; ``traced``: ``carried`` and
    ``attention``, once the decoder is traced."""
    import tensorflow as tf

    model, size = bundle.model, int(bundle.config.model.image_size)
    pixels = tf.TensorSpec([None, size, size, 3], tf.float32, name="pixels")
    probe = flat_state(model.initial_state(model.image_features(tf.zeros([2, size, size, 3]))))
    names = list(probe)
    specs = [tf.TensorSpec([None], tf.int64, name="tokens"),
             *[tf.TensorSpec([None, *probe[k].shape[1:]], probe[k].dtype, name=k) for k in names]]
    traced = {"carried": [], "attention": False}

    def encoder(pixels):
        return flat_state(model.initial_state(model.image_features(pixels)))

    def decoder(tokens, *values):
        flat = dict(zip(names, values))
        logits, new_state, extras = model.step(tf.cast(tokens, tf.int32), nested_state(flat))
        new = flat_state(new_state)
        traced["carried"] = [k for k in names if new[k] is not flat[k]]  # the rest (features, keys) only read
        out = {"logits": tf.cast(logits, tf.float32), **{f"next.{k}": new[k] for k in traced["carried"]}}
        if extras and "attention" in extras:
            out["attention"] = tf.cast(extras["attention"], tf.float32)
        traced["attention"] = "attention" in out
        return out

    return encoder, decoder, pixels, specs, probe, traced


def write_sidecar_captioning(bundle, folder: Path, names: list, traced: dict) -> dict:
    """The files outside captioning's graphs (vocabulary.json, tokenizer.json), for ONNX and LiteRT alike;
    returns the tokenizer's spec."""
    from tasks.captioning.data import END, START, UNK

    prep, cfg, model = bundle.prep, bundle.config, bundle.model
    words = list(prep.words)
    (folder / "vocabulary.json").write_text(json.dumps(words, ensure_ascii=False) + "\n", encoding="utf-8")
    spec = {"type": "image", "decode": "tasks.captioning.predicting.decode_image",
            "image_size": int(cfg.model.image_size), "vocabulary": "vocabulary.json", "start_id": words.index(START),
            "end_id": words.index(END), "banned": [i for i, w in enumerate(words) if w in (UNK, START)],
            "max_steps": int(prep.max_length) + 1, "beam_width": int(cfg.model.beam_width),
            "length_penalty": float(cfg.model.length_penalty), "state_names": list(names),
            "carried": list(traced["carried"]), "attention": bool(traced["attention"]), "grid": list(model.grid)}
    (folder / "tokenizer.json").write_text(json.dumps(spec, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return spec


def write_sidecar_translation(bundle, folder: Path, names: list, carried: list, attention: bool) -> dict:
    """The files outside translation's graphs (vocabulary.json, target_vocabulary.json, tokenizer.json), for
    ONNX and LiteRT alike; returns the tokenizer's spec."""
    from seqapps.data.text import PAD, UNK
    from tasks.translation.serving import hypothesis_values

    prep, cfg = bundle.prep, bundle.config
    files = {"vocabulary": [t for t in prep.source_vocab if t not in (PAD, UNK)], "target_vocabulary": prep.target_vocab}
    for key, items in files.items():
        (folder / f"{key}.json").write_text(json.dumps(list(items), ensure_ascii=False) + "\n", encoding="utf-8")
    spec = {"type": "translation", "standardize": "tasks.translation.data.standardize",
            "vocabulary": "vocabulary.json", "target_vocabulary": "target_vocabulary.json",
            "max_length": int(prep.max_length), "max_output_length": int(prep.max_output_length),
            "start_id": int(prep.start_id), "end_id": int(prep.end_id), "banned": [0, 1, int(prep.start_id)],
            "state_names": list(names), "carried": list(carried), "attention": bool(attention),
            "french_spacing": cfg.data.target_lang == "fr",
            # decoding takes bounds.DECODE_VALUES // (beam x this) rows at a time, as the SavedModel
            "hypothesis_values": int(hypothesis_values(bundle.model, len(prep.target_vocab),
                                                       max(int(prep.max_length), 1)))}
    (folder / "tokenizer.json").write_text(json.dumps(spec, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return spec


def write_sidecar_forecasting(bundle, folder: Path) -> dict:
    """The file outside forecasting's graph (window.json: the SavedModel's window checks' constants, float32
    as its graph holds them), for ONNX and LiteRT alike; returns it."""
    from tasks.forecasting.predicting import FAR, window_limits, write_checks

    prep = bundle.prep
    mean, scale = window_limits(prep)
    transform = (prep.space or {}).get("transform", "none")  # tasks.forecasting.space.space_of(prep).transform
    return write_checks(folder, mean, scale, FAR, transform, prep.encoding.target)


def forecasting_graph(bundle, batch) -> tuple:
    """forecasting's graph input (``window`` float32 ``[batch, window, features]``) and its description."""
    import tensorflow as tf

    prep = bundle.prep
    n = len(prep.encoding.features)
    spec = tf.TensorSpec([batch, prep.window, n], tf.float32, name="window")
    rows = "batch" if batch is None else str(batch)
    return spec, {"window": f"float32 [{rows}, {prep.window}, {n}]: raw values in the order of metadata 'features'"}


def word_vectors_graph(bundle) -> tuple:
    """word_vectors' graph (``ids`` int64 ``[batch]`` -> ``{"vectors": float32 [batch, dim]}``: the vector table,
    id 0 the unknown word, as a constant), its input and its description (metadata ``graph``), ONNX and LiteRT
    alike; words.json is written by :func:`write_sidecar_word_vectors`."""
    import keras
    import tensorflow as tf

    from tasks.word_vectors.lm import word_rows

    table = keras.ops.convert_to_numpy(word_rows(bundle.model)).astype("float32")
    spec = tf.TensorSpec([None], tf.int64, name="ids")

    def fn(ids):
        return {"vectors": tf.gather(tf.constant(table), ids)}

    return fn, spec, {
        "inputs": {"ids": "int64 [batch]: word ids (0 a word without a vector, 1.. words.json in order)"},
        "outputs": {"vectors": "float32 [batch, dim]: the rows of the vector table"},
        "in_graph": "the vector table (read whole, once, when the export loads)",
        "outside": "the signatures' text checks, the cut of long words, strip, lower-casing and the lookup "
                   "(words.json), unit-normalization, the cosine matmul and the top k, in NumPy "
                   "(tasks.word_vectors.predicting)"}


def write_sidecar_word_vectors(bundle, folder: Path) -> None:
    """The file outside word_vectors' graph (words.json: the vocabulary, ids 1.. in order), ONNX and LiteRT alike."""
    from tasks.word_vectors.predicting import write_words

    write_words(folder, bundle.prep.words)


def video_frames_graph(bundle, batch) -> tuple:
    """video_frames' graph for ONNX (``batch`` None) and LiteRT (1: the recurrent loop over the frames needs a
    fixed batch) alike: ``(fn, specs, graph)``. ``fn(pixels, mask)``: ``pixels`` float32 ``[batch, time, size,
    size, 3]`` in [0, 255] and ``mask`` float32 ``[batch, time]`` (1 on a video's frames) -> ``{"scores": the
    model's per-frame scores (a CRF's potentials), "probabilities": float32 [batch, time, labels]}``, as the
    SavedModel's ``tag``; ``graph``: its description (metadata ``graph``). No file is written beside it: the
    labels, the image size, ``max_length`` and ``crf`` are in metadata.json."""
    import tensorflow as tf

    model, cfg = bundle.model, bundle.config
    size, crf, labels = int(cfg.model.image_size), bool(cfg.model.crf), len(bundle.prep.labels)
    specs = [tf.TensorSpec([batch, None, size, size, 3], tf.float32, name="pixels"),
             tf.TensorSpec([batch, None], tf.float32, name="mask")]

    def fn(pixels, mask):
        scores = tf.cast(model({"frames": pixels, "mask": mask}, training=False), tf.float32)
        frame_scores = tf.reduce_logsumexp(scores, axis=2) if crf else scores
        return {"scores": scores, "probabilities": tf.nn.softmax(frame_scores, axis=-1)}

    rows = "batch" if batch is None else str(batch)
    return fn, specs, {
        "inputs": {"pixels": f"float32 [{rows}, time, {size}, {size}, 3]: each frame's RGB in [0, 255]",
                   "mask": f"float32 [{rows}, time]: 1 on a video's frames, 0 past its length"},
        "outputs": {"scores": f"float32 [{rows}, time, {labels}, {labels}]: CRF potentials (previous label, label)"
                    if crf else f"float32 [{rows}, time, {labels}]: per-frame label scores",
                    "probabilities": f"float32 [{rows}, time, {labels}]: per-frame label probabilities"},
        "in_graph": "the frame encoder over every frame, the recurrent context with its loop over the frames "
                    "(or the per-frame classifier), the label scores (and CRF potentials) and the softmax"
                    + ("" if batch is None else "; one video per call, at its own length"),
        "outside": "decoding each frame's bytes (or a GIF's first max_length frames, counted in its blocks), the "
                   "bounds and the resize to the model's size (Pillow: tasks.video_frames.predicting; close to, "
                   "not equal to, the SavedModel's pixels), the labels (argmax, or Viterbi over the CRF's "
                   "potentials, in NumPy) and their names" + ("" if batch is None else ", one call per video")}

"""The serving functions of an image-to-text model (encoded image bytes in, a sentence out) and
the Python helpers over them (:class:`CaptionPredictor`).

Image decoding, resizing and normalization, the greedy and beam-search loops over the
model's ``step`` and the joining of words all run in the graph (an ONNX export runs them outside
its graphs: :mod:`tasks.captioning.predicting`). The model gives
``image_features(pixels)``, ``initial_state(features)``, ``step`` and, with attention,
its feature ``grid`` ``(h, w)``. Undecodable items get ``valid=false`` and an empty caption.
"""

from __future__ import annotations

import tensorflow as tf

from seqapps.inference import decoding
from tasks.captioning.data import START, UNK
from seqapps.encoders.images import decode_batch
from seqapps.inference.predictor import Predictor
from seqapps.core.task import Endpoint
from tasks.captioning.predicting import Predictions


def join_caption(joined):
    """Words joined by spaces -> a sentence: single spaces, punctuation and clitics attached."""
    joined = tf.strings.strip(tf.strings.regex_replace(joined, r"\s+", " "))
    return tf.strings.regex_replace(joined, r" ([.,!?;:]|'s|n't)( |$)", r"\1\2")


def caption_endpoints(model, words: list[str], start: int, end: int, max_steps: int, image_size: int,
                      beam_width: int, length_penalty: float = 0.0, attention: bool = True) -> dict[str, Endpoint]:
    """``serving_default`` (greedy), ``beam`` (beam search of ``beam_width``) and, with ``attention``,
    ``attention`` (greedy, with per-word maps over the feature grid) over vocabulary ``words``."""
    vocab = tf.constant(words)
    # a caption never holds the unknown word or a second start: the decoder may not pick them
    step = decoding.banned(model.step, [i for i, w in enumerate(words) if w in (UNK, START)])

    def caption(image, width):
        n = tf.shape(image)[0]  # a batch of 0 runs one blank item (layers such as batch norm need a row)
        pixels, valid = decode_batch(tf.cond(n > 0, lambda: image, lambda: tf.constant([""])), image_size)
        state = model.initial_state(model.image_features(pixels))
        out = decoding.search(step, state, start, end, max_steps, beam_width=width,
                              length_penalty=length_penalty)
        joined, strings = decoding.join_words(vocab, out["tokens"], out["lengths"])
        answer = {"caption": tf.where(valid, join_caption(joined), ""), "valid": valid,
                  "length": tf.where(valid, out["lengths"], 0), "score": tf.where(valid, out["scores"], 0.0),
                  "words": tf.where(tf.expand_dims(valid, -1), strings, "")}  # no words for undecodable items
        if out["extras"].get("attention") is not None:
            maps = out["extras"]["attention"]
            answer["attention"] = maps * tf.cast(valid, maps.dtype)[:, None, None]
        return {k: v[:n] for k, v in answer.items()}

    def pick(width, *keys):
        return lambda image: {k: v for k, v in caption(image, width).items() if k in keys}
    spec = [tf.TensorSpec([None], tf.string, name="image")]
    endpoints = {
        "serving_default": Endpoint(pick(1, "caption", "valid", "length", "score"), spec,
                                    "image bytes (JPEG/PNG/GIF/BMP) -> caption, greedy decoding; "
                                    "valid=false (and an empty caption) for undecodable items"),
        "beam": Endpoint(pick(beam_width, "caption", "valid", "length", "score"), spec,
                         f"image bytes -> caption, beam search of width {beam_width}"),
    }
    if attention:
        def attend(image):
            out = pick(1, "caption", "valid", "length", "words", "attention")(image)
            maps = out["attention"]
            out["attention"] = tf.reshape(maps, tf.concat([tf.shape(maps)[:2], list(model.grid)], 0))
            return out

        endpoints["attention"] = Endpoint(attend, spec, "image bytes -> greedy caption, words "
                                          "[batch, steps] and attention maps [batch, steps, grid_h, grid_w]")
    return endpoints


class CaptionPredictor(Predictions, Predictor):
    """``caption(paths_or_bytes, beam=3)`` and ``attention(...)`` (:class:`tasks.captioning.predicting.Predictions`,
    which an ONNX export's predictor shares) over the SavedModel's signatures."""

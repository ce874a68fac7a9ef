"""The serving functions of a text-to-text encoder-decoder (strings in, strings out) and the
Python helpers over them (:class:`TranslationPredictor`, whose helpers are
:class:`tasks.translation.predicting.Predictions`).

Standardization, vocabulary lookup, the decoding loop over the model's ``step``
(greedy or beam search with a length penalty) and detokenization all run in the graph.
The preprocessing ``prep`` gives ``source_vectorizer()``, ``target_vocab``,
``start_id`` / ``end_id``, ``max_length`` (source tokens read) and
``max_output_length`` (decoding steps at most).
"""

from __future__ import annotations

import tensorflow as tf

from seqapps.core import bounds
from seqapps.inference import decoding
from seqapps.inference.chunks import in_chunks
from tasks.translation.data import detokenize, standardize
from seqapps.inference.predictor import MAX_BEAM, Predictor
from seqapps.inference import checks
from seqapps.core.task import Endpoint
from tasks.translation.predicting import Predictions


def text_decoder(model, prep, french_spacing: bool = False):
    """``decode(text, beam_width, length_penalty)`` -> dict of translation, scores, lengths, words,
    attention ``[batch, output, source]`` (zeros without attention), source ids and lengths."""
    encode, vocab = prep.source_encoder(), tf.constant(prep.target_vocab)  # training's encoding of the sources
    step = decoding.banned(model.step, [0, 1, prep.start_id])  # padding, [UNK] and [START] are never produced

    def decode_rows(text, beam_width, length_penalty):
        ids = encode(text)
        source_lengths = tf.reduce_sum(tf.cast(tf.not_equal(ids, 0), tf.int32), axis=1)
        caps = tf.minimum(prep.max_output_length, 2 * source_lengths + 10)  # each row's own step limit
        row_step, state = decoding.capped(step, model.initial_state(ids), caps, prep.end_id)
        max_steps = tf.reduce_max(tf.concat([caps, [0]], 0)) + 1
        out = decoding.search(row_step, state, prep.start_id, prep.end_id, max_steps,
                              beam_width=beam_width, length_penalty=length_penalty)
        joined, words = decoding.join_words(vocab, out["tokens"], out["lengths"])
        translation = detokenize(joined, french_spacing=french_spacing)
        attention = out["extras"].get("attention")
        if attention is None:
            shape = tf.shape(out["tokens"])
            attention = tf.zeros([shape[0], shape[1], tf.shape(ids)[1]])
        return {"translation": tf.where(source_lengths > 0, translation, ""),  # nothing to translate -> nothing
                "lengths": tf.where(source_lengths > 0, out["lengths"], 0), "scores": out["scores"],
                "words": words, "attention": attention, "source_ids": ids, "source_lengths": source_lengths}

    steps, width = prep.max_output_length + 1, max(int(prep.max_length), 1)
    per_hypothesis = hypothesis_values(model, len(prep.target_vocab), width)
    outputs = {"translation": (tf.string, ()), "lengths": (tf.int32, ()), "scores": (tf.float32, ()),
               "words": (tf.string, (steps,)), "attention": (tf.float32, (steps, width)),
               "source_ids": (tf.int64, (width,)), "source_lengths": (tf.int32, ())}

    def decode(text, beam_width, length_penalty):
        beam_width = checks.in_range(beam_width, "beam_width", low=1, high=MAX_BEAM, what="an integer")
        length_penalty = checks.in_range(length_penalty, "length_penalty")
        # what decoding holds grows with rows x beam (hypothesis_values): a few rows at a time
        rows = bounds.DECODE_VALUES // (tf.cast(beam_width, tf.int64) * per_hypothesis)
        return in_chunks(lambda part: decode_rows(part, beam_width, length_penalty), [text], rows, outputs)
    return decode


def hypothesis_values(model, vocabulary: int, source_width: int) -> int:
    """What decoding holds per hypothesis, in numbers, as :data:`seqapps.core.bounds.DECODE_VALUES` counts
    it: 16 x (the target vocabulary + the source's positions x the model's widest layer). A step holds a
    vocabulary's scores and, per source position, a layer's activations (additive attention's
    ``tanh(keys + query)``: 82 KB per hypothesis at 40 positions x 512 units); several steps' worth are
    alive at once (measured: 1.2 MB per hypothesis for that model, 16 x its 82 KB)."""
    settings = getattr(model, "settings", {})
    widest = max([int(v) for k, v in settings.items() if k.endswith("units") and isinstance(v, int)] or [256])
    return 16 * (vocabulary + source_width * widest)


def source_tokens(text, max_length, width):
    """The standardized source words the model read, ``""``-padded to ``width``."""
    tokens = tf.strings.split(standardize(text))[:, :max_length].to_tensor("")
    return tf.pad(tokens, [[0, 0], [0, width - tf.shape(tokens)[1]]], constant_values="")


def seq2seq_endpoints(model, prep, beam_width: int, length_penalty: float,
                      french_spacing: bool = False) -> dict[str, Endpoint]:
    """``serving_default`` (the default decoding), ``translate`` (beam width and length penalty as
    inputs) and ``attention`` (the weights and the tokens they align)."""
    decode = text_decoder(model, prep, french_spacing)
    text = tf.TensorSpec([None], tf.string, name="text")
    beam = tf.TensorSpec([], tf.int32, name="beam_width")
    penalty = tf.TensorSpec([], tf.float32, name="length_penalty")

    def translate(text, beam_width, length_penalty):
        out = decode(text, beam_width, length_penalty)
        return {"translation": out["translation"], "score": out["scores"]}

    def attention(text, beam_width):
        out = decode(text, beam_width, length_penalty)
        return {"translation": out["translation"], "attention": out["attention"],
                "source_tokens": source_tokens(text, prep.max_length, tf.shape(out["source_ids"])[1]),
                "source_lengths": out["source_lengths"], "output_tokens": out["words"],
                "output_lengths": out["lengths"]}

    def serve(text):
        return translate(text, beam_width, length_penalty)

    name = "greedy" if beam_width == 1 else f"beam {beam_width}, length penalty {length_penalty}"
    return {
        "serving_default": Endpoint(serve, [text],
                                    f"text -> translation (string), score; decoding: {name}"),
        "translate": Endpoint(translate, [text, beam, penalty],
                              f"text, beam_width (1 = greedy .. {MAX_BEAM}), length_penalty (finite) -> translation, "
                              "score; an argument out of range fails the call with 'invalid input: ...'"),
        "attention": Endpoint(attention, [text, beam],
                              "text, beam_width -> translation, attention [batch, output, source], "
                              "source_tokens, source_lengths, output_tokens, output_lengths"),
    }


class TranslationPredictor(Predictions, Predictor):
    """The Python helpers (:class:`tasks.translation.predicting.Predictions`) over a translation SavedModel's
    signatures (``serving_default``, ``translate``, ``attention``)."""

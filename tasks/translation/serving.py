"""The serving functions of a text-to-text encoder-decoder (strings in, strings out) and the
Python helpers over them (:class:`TranslationPredictor`).

Standardization, vocabulary lookup, the decoding loop over the model's ``step``
(greedy or beam search with a length penalty) and detokenization all run in the graph.
The preprocessing ``prep`` gives ``source_vectorizer()``, ``target_vocab``,
``start_id`` / ``end_id``, ``max_length`` (source tokens read) and
``max_output_length`` (decoding steps at most).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from seqapps.inference import decoding
from tasks.translation.data import detokenize, standardize
from seqapps.core.errors import DataError
from seqapps.inference.predictor import Predictor, decode_strings, one_or_many, text_items
from seqapps.inference import checks
from seqapps.core.task import Endpoint


def text_decoder(model, prep, french_spacing: bool = False):
    """``decode(text, beam_width, length_penalty)`` -> dict of translation, scores, lengths, words,
    attention ``[batch, output, source]`` (zeros without attention), source ids and lengths."""
    encode, vocab = prep.source_encoder(), tf.constant(prep.target_vocab)  # training's encoding of the sources
    step = decoding.banned(model.step, [0, 1, prep.start_id])  # padding, [UNK] and [START] are never produced

    def decode(text, beam_width, length_penalty):
        beam_width = checks.in_range(beam_width, "beam_width", low=1, high=checks.MAX_BEAM, what="an integer")
        length_penalty = checks.in_range(length_penalty, "length_penalty")
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
    return decode


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
                              f"text, beam_width (1 = greedy .. {checks.MAX_BEAM}), length_penalty (finite) -> translation, "
                              "score; an argument out of range fails the call with 'invalid input: ...'"),
        "attention": Endpoint(attention, [text, beam],
                              "text, beam_width -> translation, attention [batch, output, source], "
                              "source_tokens, source_lengths, output_tokens, output_lengths"),
    }


class TranslationPredictor(Predictor):
    """The Python helpers over a translation export's signatures (``serving_default``, ``translate``,
    ``attention``): ``translate(texts, beam, length_penalty)`` and ``attention(texts)``."""

    @property
    def decoding_defaults(self) -> tuple[int, float]:
        decoding = self.metadata["decoding"]
        return int(decoding["beam_width"]), float(decoding["length_penalty"])

    def translate(self, texts, beam: int | None = None, length_penalty: float | None = None,
                  batch_size: int = 64) -> list[str]:
        """Translations of ``texts`` (a list of str). ``beam`` 1 is greedy; ``None`` uses the
        export's default width (``model.beam_width``) and length penalty."""
        return one_or_many(texts, [r["translation"] for r in self._run(texts, beam, length_penalty, batch_size)])

    def predict(self, texts, beam: int | None = None) -> list[str]:
        return self.translate(texts, beam=beam)

    def attention(self, texts, beam: int = 1, batch_size: int = 64) -> list[dict]:
        """Per text: ``translation``, ``source_tokens``, ``output_tokens`` and ``weights``
        (numpy ``[output tokens, source tokens]``; zeros for ``attention=none``)."""
        return one_or_many(texts, self._run(texts, beam, None, batch_size, signature="attention"))

    def _run(self, texts, beam, length_penalty, batch_size, signature=None):
        texts = text_items(texts, "texts")
        default_beam, default_penalty = self.decoding_defaults
        if beam is not None and not 1 <= int(beam) <= checks.MAX_BEAM:
            raise DataError(f"beam must be between 1 and {checks.MAX_BEAM}, got {beam}")
        results = []
        for start in range(0, len(texts), batch_size):
            chunk = texts[start:start + batch_size]
            if signature == "attention":
                out = self.call("attention", text=chunk, beam_width=int(beam or 1))
            elif beam is None and length_penalty is None:
                out = self.call(text=chunk)
            else:
                out = self.call("translate", text=chunk, beam_width=int(beam or default_beam),
                                length_penalty=float(default_penalty if length_penalty is None else length_penalty))
            translations = decode_strings(out["translation"])
            for i, translation in enumerate(translations):
                row = {"translation": translation}
                if signature == "attention":
                    n_src, n_out = int(out["source_lengths"][i]), int(out["output_lengths"][i])
                    row.update(source_tokens=decode_strings(out["source_tokens"][i][:n_src]),
                               output_tokens=decode_strings(out["output_tokens"][i][:n_out]),
                               weights=np.asarray(out["attention"][i][:n_out + 1, :n_src]))
                results.append(row)
        return results

    def format(self, inputs, results):
        return [str(r) for r in results]

"""The serving functions of an image-to-text model (encoded image bytes in, a sentence out) and
the Python helpers over them (:class:`CaptionPredictor`).

Image decoding, resizing and normalization, the greedy and beam-search loops over the
model's ``step`` and the joining of words all run in the graph. The model gives
``image_features(pixels)``, ``initial_state(features)``, ``step`` and, with attention,
its feature ``grid`` ``(h, w)``. Undecodable items get ``valid=false`` and an empty caption.
"""

from __future__ import annotations

from pathlib import Path

import tensorflow as tf

from seqapps.inference import decoding
from tasks.captioning.data import START, UNK
from seqapps.inference.image_inputs import image_paths, run_images, size_warning
from seqapps.encoders.images import decode_batch
from seqapps.core.errors import ConfigError
from seqapps.inference.predictor import Predictor, decode_strings
from seqapps.core.task import Endpoint


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


class CaptionPredictor(Predictor):
    """``caption(paths_or_bytes, beam=3)`` -> ``[{"source", "caption", "error", "warning"}]``.

    Items that cannot be read or decoded get ``caption=None`` and an ``error`` saying
    why; the others are captioned all the same.
    """

    @property
    def beam_width(self) -> int:
        return int(self.metadata["decoding"]["beam_width"])

    def _signature(self, beam):
        if beam in (None, 0, 1):
            return "serving_default"
        width = self.beam_width
        if int(beam) != width:
            raise ConfigError(f"this export has greedy decoding (beam=1) and beam search of width {width}; "
                              f"got beam={beam}")
        return "beam"

    def caption(self, items, beam: int | None = None, batch_size: int = 16) -> list[dict]:
        """Per image (a path or bytes; one item gives one dict, a list a list): ``source``,
        ``caption``, ``error`` (why it could not be read or decoded) and ``warning``."""
        signature = self._signature(self.beam_width if beam is None else beam)

        def fill(info, out, row, blob):
            info.update(caption=decode_strings(out["caption"][row:row + 1])[0], warning=size_warning(blob))
        results = run_images(lambda images: self.call(signature, image=images), items, fill, batch_size, "caption")
        return results[0] if isinstance(items, (str, bytes, Path)) else results

    def predict(self, inputs):
        return self.caption(inputs)

    def attention(self, items, batch_size: int = 16) -> list[dict]:
        """Greedy captions with, per word, the attention over the feature grid ``[words, h, w]``."""
        if "attention" not in self.signatures:
            raise ConfigError("this model has no attention (model.attention=none)")

        def fill(info, out, row, blob):
            n = int(out["length"][row])
            info.update(caption=decode_strings(out["caption"][row:row + 1])[0],
                        words=decode_strings(out["words"][row])[:n], attention=out["attention"][row, :n])
        return run_images(lambda images: self.call("attention", image=images), items, fill, batch_size, "caption")

    def cli_predict(self, inputs, input_file):
        inputs = image_paths(inputs, input_file, "caption")
        return self.format(inputs, self.caption(inputs))

    def format(self, inputs, results):
        lines = []
        for r in results:
            if r["error"]:
                lines.append(f"{r['source']}\terror: {r['error']}")
            else:
                lines.append(f"{r['source']}\t{r['caption']}" + (f"\t(warning: {r['warning']})" if r["warning"] else ""))
        return lines

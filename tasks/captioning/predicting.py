"""Captioning's helpers that need no TensorFlow: the predictor's Python methods (:class:`Predictions`,
shared by the SavedModel's :class:`tasks.captioning.serving.CaptionPredictor` and an ONNX export's
predictor), the joining of caption words (:func:`join_caption`, the graph's ``join_caption`` in Python)
and the decoding of image bytes with Pillow (:func:`decode_image`, what an ONNX export runs where the
SavedModel runs :func:`seqapps.encoders.images.decode_one`).
"""

from __future__ import annotations

import io
import re
import warnings
from pathlib import Path

import numpy as np

from seqapps.core.bounds import IMAGE_PIXELS, SHRINK_SIDE
from seqapps.core.errors import ConfigError
from seqapps.inference.image_inputs import image_paths, run_images, size_warning, sniff
from seqapps.inference.predictor import decode_strings

MAX_JPEG_PIXELS = 10_000 * 10_000  # as seqapps.encoders.images.MAX_PIXELS: larger JPEG headers are refused
_SPACES = re.compile(r"\s+", re.ASCII)
_ATTACHED = re.compile(r" ([.,!?;:]|'s|n't)( |$)")


def join_caption(joined: str) -> str:
    """Words joined by spaces -> a sentence: single spaces, punctuation and clitics attached."""
    return _ATTACHED.sub(r"\1\2", _SPACES.sub(" ", joined).strip(" "))


def decode_image(blob: bytes, size: int) -> np.ndarray | None:
    """Encoded JPEG/PNG/GIF/BMP bytes -> float32 ``[size, size, 3]`` in [0, 255], or None when they do not
    decode or are over ``bounds.IMAGE_PIXELS`` (read from the header, before decoding). As the graph's
    ``decode_one``: a large JPEG is decoded at 1/2, 1/4 or 1/8 scale (libjpeg's DCT scaling, Pillow's
    draft mode) when that still covers ``size``, a GIF's first frame only, sides over ``bounds.SHRINK_SIDE``
    subsampled, then an antialiased bilinear resize (Pillow's, in float)."""
    from PIL import Image

    kind = sniff(blob or b"")
    if kind is None:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's decompression-bomb warning: the bounds below decide
            image = Image.open(io.BytesIO(blob), formats=[kind])
            w, h = image.size
            if kind == "JPEG":
                if w * h > MAX_JPEG_PIXELS:
                    return None
                ratio = max([r for r in (1, 2, 4, 8) if min(w, h) // r >= size], default=1)
                if -(-w // ratio) * -(-h // ratio) > IMAGE_PIXELS:
                    return None
                if ratio > 1:
                    image.draft("RGB", (w // ratio, h // ratio))
            elif w * h > IMAGE_PIXELS:
                return None
            pixels = np.asarray(image.convert("RGB"))  # a GIF: its first frame
    except Exception:  # noqa: BLE001 (any failure to decode is an undecodable item, as in the graph)
        return None
    h, w = pixels.shape[:2]
    if not h or not w:
        return None
    pixels = pixels[::-(-h // SHRINK_SIDE), ::-(-w // SHRINK_SIDE)]
    channels = [np.asarray(Image.fromarray(np.ascontiguousarray(pixels[:, :, c], np.float32), "F")
                           .resize((size, size), Image.BILINEAR)) for c in range(3)]
    return np.stack(channels, -1).astype(np.float32)


def decode_images(blobs, size: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`decode_image` over a batch: ``(pixels [batch, size, size, 3], valid [batch])``, black pixels
    where an item did not decode (as :func:`seqapps.encoders.images.decode_batch`)."""
    pixels = np.zeros((len(blobs), size, size, 3), np.float32)
    valid = np.zeros(len(blobs), bool)
    for i, blob in enumerate(blobs):
        decoded = decode_image(blob, size)
        if decoded is not None:
            pixels[i], valid[i] = decoded, True
    return pixels, valid


class Predictions:
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

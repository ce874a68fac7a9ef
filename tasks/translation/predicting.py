"""What translation's predictor says, over any runtime: ``translate(texts, beam, length_penalty)`` from
``serving_default`` / ``translate`` and ``attention(texts)`` from ``attention``. Imports no TensorFlow, so an
ONNX export answers through it too (:mod:`seqapps.inference.onnx_runtime` finds it as
``tasks.<task>.predicting.Predictions``)."""

from __future__ import annotations

import numpy as np

from seqapps.core.errors import DataError
from seqapps.inference.predictor import MAX_BEAM, decode_strings, one_or_many, text_items


class Predictions:
    """A mixin for a :class:`~seqapps.inference.predictor.Predictor` over a translation export's signatures
    (``serving_default``, ``translate``, ``attention``)."""

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
        if beam is not None and not 1 <= int(beam) <= MAX_BEAM:
            raise DataError(f"beam must be between 1 and {MAX_BEAM}, got {beam}")
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

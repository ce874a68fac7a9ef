"""What sentiment's predictor says, over any runtime: labels and probabilities from the ``text``
signature's ``probabilities``. Imports no TensorFlow, so an ONNX export answers through it too
(:mod:`seqapps.inference.onnx_runtime` finds it as ``tasks.<task>.predicting.Predictions``)."""

from __future__ import annotations

import numpy as np

from seqapps.inference.predictor import one_or_many, text_items


class Predictions:
    """A mixin for a :class:`~seqapps.inference.predictor.Predictor` of a text classifier."""

    def predict(self, texts, batch_size: int = 256) -> list[dict]:
        """``[{"label": str, "probability": float, "probabilities": {label: float}}, ...]``
        (one dict for one string)."""
        labels, results, items = self.metadata["labels"], [], text_items(texts, "texts")
        for start in range(0, len(items), batch_size):
            out = self.call(text=items[start:start + batch_size])
            for probs in out["probabilities"]:
                best = int(np.argmax(probs))
                results.append({"label": labels[best], "probability": float(probs[best]),
                                "probabilities": {k: float(p) for k, p in zip(labels, probs)}})
        return one_or_many(texts, results)

    def format(self, inputs, results):
        return [f"{r['label']}\t{r['probability']:.3f}\t{text}" for text, r in zip(inputs, results)]

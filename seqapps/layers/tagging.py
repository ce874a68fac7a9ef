"""Per-token tagging: the masked loss, the token accuracy and the decoding of tag scores.

Targets are tag ids ``1..K`` with ``0`` for padding (the padding value of batched
targets); scores are per-token logits ``[B, T, K]``, or CRF potentials
``[B, T, K, K]`` (:mod:`seqapps.layers.crf`) when ``crf`` is set.
"""

from __future__ import annotations

import keras
from keras import ops

from seqapps.layers.crf import CRFLoss, viterbi_decode


def decode_tags(scores, mask, crf: bool):
    """The best tag ids ``[B, T]`` (``0..K-1``): Viterbi over CRF potentials, else the argmax."""
    if crf:
        return viterbi_decode(scores, mask)[0]
    return ops.cast(ops.argmax(scores, axis=-1), "int32")


@keras.saving.register_keras_serializable(package="seqapps")
class MaskedTagLoss(keras.losses.Loss):
    """Cross-entropy of per-token tag scores; targets ``1..K``, ``0`` = padding (ignored).
    The mean is over real tokens only."""

    def __init__(self, name="tag_loss", reduction="sum_over_batch_size", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, "int32")
        mask = y_true > 0
        losses = keras.losses.sparse_categorical_crossentropy(ops.maximum(y_true - 1, 0), y_pred, from_logits=True)
        losses = ops.where(mask, losses, 0.0)
        return losses

    def get_config(self):
        return {"name": self.name, "reduction": self.reduction}


@keras.saving.register_keras_serializable(package="seqapps")
class TagAccuracy(keras.metrics.Metric):
    """Token accuracy over real tokens (targets ``0`` are padding). ``crf=True`` reads CRF
    potentials and Viterbi-decodes them; otherwise the argmax of per-token scores."""

    def __init__(self, crf: bool = False, name="accuracy", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.crf = crf
        self.correct = self.add_variable((), initializer="zeros", name="correct")
        self.total = self.add_variable((), initializer="zeros", name="total")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = ops.cast(y_true, "int32")
        mask = y_true > 0
        hits = ops.logical_and(mask, ops.equal(decode_tags(y_pred, mask, self.crf) + 1, y_true))
        self.correct.assign_add(ops.cast(ops.sum(ops.cast(hits, "int32")), self.dtype))
        self.total.assign_add(ops.cast(ops.sum(ops.cast(mask, "int32")), self.dtype))

    def result(self):
        return ops.divide_no_nan(self.correct, self.total)

    def reset_state(self):
        self.correct.assign(0.0)
        self.total.assign(0.0)

    def get_config(self):
        return {"crf": self.crf, "name": self.name, "dtype": self.dtype}


def compile_tagger(model, optimizer, crf: bool) -> None:
    """Compile a tagger: the CRF negative log-likelihood or the masked cross-entropy, and token accuracy."""
    model.compile(optimizer=optimizer, loss=CRFLoss() if crf else MaskedTagLoss(), metrics=[TagAccuracy(crf)])

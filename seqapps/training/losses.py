"""Losses the tasks share (in keras.ops, so they train on any backend)."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="seqapps")
class SmoothedTokenLoss(keras.losses.Loss):
    """Cross-entropy of next-word logits ``[batch, time, vocab]`` against ids ``[batch, time]``
    with label smoothing: the target keeps ``1 - label_smoothing`` of the probability and the
    rest is spread evenly over the vocabulary. Id 0 (padding) is ignored and the mean is over
    real words, as ``SparseCategoricalCrossentropy(ignore_class=0)`` averages (Keras' sparse
    losses take no smoothing, and the one-hot ones would build ``[batch, time, vocab]`` targets)."""

    def __init__(self, label_smoothing: float = 0.1, name="smoothed_token_loss", reduction="sum_over_batch_size",
                 dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, "int32")
        log_probs = ops.log_softmax(ops.cast(y_pred, "float32"), axis=-1)
        nll = -ops.squeeze(ops.take_along_axis(log_probs, ops.expand_dims(y_true, -1), axis=-1), -1)
        eps = self.label_smoothing
        losses = (1.0 - eps) * nll - eps * ops.mean(log_probs, axis=-1)
        mask = ops.cast(y_true > 0, "float32")
        # "sum_over_batch_size" divides by every position; rescale so it is the mean over real words
        scale = ops.cast(ops.size(mask), "float32") / ops.maximum(ops.sum(mask), 1.0)
        return losses * mask * scale

    def get_config(self):
        return {"label_smoothing": self.label_smoothing, "name": self.name, "reduction": self.reduction}

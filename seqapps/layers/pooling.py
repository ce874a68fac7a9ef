"""Pooling over time that respects the padding mask."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="seqapps")
class MaskedPooling(keras.layers.Layer):
    """``[batch, time, dim] -> [batch, dim]`` by ``mode``: ``max``, ``mean``, ``sum`` or ``max_mean``
    (max and mean, concatenated). Padded steps never contribute; an all-padding row gives zeros."""

    MODES = ("max", "mean", "sum", "max_mean")

    def __init__(self, mode: str = "max", **kwargs):
        super().__init__(**kwargs)
        if mode not in self.MODES:
            raise ValueError(f"MaskedPooling mode must be one of {', '.join(self.MODES)}, got {mode!r}")
        self.mode = mode
        self.supports_masking = True

    def call(self, x, mask=None):
        if mask is None:
            mask = ops.ones(ops.shape(x)[:2], dtype="bool")
        m = ops.cast(ops.expand_dims(mask, -1), x.dtype)
        count = ops.sum(m, axis=1)
        total = ops.sum(x * m, axis=1)
        if self.mode == "sum":
            return total
        mean = total / ops.maximum(count, 1.0)
        if self.mode == "mean":
            return mean
        big = ops.cast(1e4, x.dtype)
        mx = ops.max(x * m - big * (1.0 - m), axis=1) * ops.cast(count > 0, x.dtype)
        return mx if self.mode == "max" else ops.concatenate([mx, mean], axis=-1)

    def compute_mask(self, x, mask=None):
        return None

    def compute_output_shape(self, shape):
        return (shape[0], shape[-1] * (2 if self.mode == "max_mean" else 1))

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}

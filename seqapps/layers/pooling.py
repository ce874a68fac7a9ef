"""Pooling over time that respects the padding mask."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="seqapps")
class MaskedPooling(keras.layers.Layer):
    """``[batch, time, dim] -> [batch, dim]`` by ``mode``: ``max``, ``mean`` or ``max_mean``
    (both, concatenated). Padded steps never contribute; an all-padding row gives zeros."""

    def __init__(self, mode: str = "max", **kwargs):
        super().__init__(**kwargs)
        if mode not in ("max", "mean", "max_mean"):
            raise ValueError(f"MaskedPooling mode must be max, mean or max_mean, got {mode!r}")
        self.mode = mode
        self.supports_masking = True

    def call(self, x, mask=None):
        if mask is None:
            mask = ops.ones(ops.shape(x)[:2], dtype="bool")
        m = ops.cast(ops.expand_dims(mask, -1), x.dtype)
        count = ops.sum(m, axis=1)
        mean = ops.sum(x * m, axis=1) / ops.maximum(count, 1.0)
        big = ops.cast(1e4, x.dtype)
        mx = ops.max(x * m - big * (1.0 - m), axis=1) * ops.cast(count > 0, x.dtype)
        return {"max": mx, "mean": mean, "max_mean": ops.concatenate([mx, mean], axis=-1)}[self.mode]

    def compute_mask(self, x, mask=None):
        return None

    def compute_output_shape(self, shape):
        return (shape[0], shape[-1] * (2 if self.mode == "max_mean" else 1))

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}

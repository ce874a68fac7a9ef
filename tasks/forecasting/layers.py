"""The forecaster's target transforms and seasonal differencing, as Keras layers in ``keras.ops``.

They live inside the model, so the export reads raw windows and answers in the target's units:

* :class:`TargetTransform` maps the target to the space the network forecasts in and back: ``none``,
  ``log``, or Box-Cox with a fitted ``lam`` (``(y ** lam - 1) / lam``; ``lam == 0`` is the log).
  A multiplicative season and trend become additive in log space, so the change one season ago
  tells the change now in proportion.
* :class:`SeasonalDifference` gives the network the window's seasonal-and-first differences
  ``z[i] - z[i-1] - z[i-s] + z[i-s-1]`` (standardized; the first ``s + 1`` steps, which have no such
  difference, read 0): a trend and a fixed season drop out, so values beyond the training range
  look like the training ones.
* :class:`SeasonalBase` is the forecast an untrained seasonal model gives: the last value plus the
  change over the same steps one season ago (``z[t-1] + z[t-s+k] - z[t-s-1]`` for step ``k``), the
  seasonal random walk (ARIMA(0,1,0)(0,1,0)); the network's output is added to it.

:func:`transform` and :func:`inverse` are the same maps in NumPy (fitting and tests).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

TRANSFORMS = ("none", "log", "boxcox")
MAX_LOG = 80.0      # exp() of more overflows float32: a forecast's log is clipped here
MIN_BASE = 1e-6     # Box-Cox's inverse raises lam * z + 1 to 1 / lam: kept above this


def transform(y, kind: str, lam: float = 0.0) -> np.ndarray:
    """``y`` in the transformed space (NumPy, float64)."""
    y = np.asarray(y, "float64")
    if kind == "none":
        return y
    if kind == "log" or (kind == "boxcox" and lam == 0):
        return np.log(y)
    if kind == "boxcox":
        return (np.power(y, lam) - 1.0) / lam
    raise ValueError(f"unknown transform {kind!r}; expected one of {', '.join(TRANSFORMS)}")


def inverse(z, kind: str, lam: float = 0.0) -> np.ndarray:
    """The inverse of :func:`transform` (NumPy, float64), clipped as the layer clips."""
    z = np.asarray(z, "float64")
    if kind == "none":
        return z
    if kind == "log" or (kind == "boxcox" and lam == 0):
        return np.exp(np.minimum(z, MAX_LOG))
    return np.power(np.maximum(lam * z + 1.0, MIN_BASE), 1.0 / lam)


@keras.saving.register_keras_serializable(package="seqapps")
class TargetTransform(keras.layers.Layer):
    """``y -> z`` (or, with ``inverse``, ``z -> y``) for ``kind`` none, log or boxcox (``lam``)."""

    def __init__(self, kind: str = "none", lam: float = 0.0, inverse: bool = False, **kwargs):
        super().__init__(**kwargs)
        if kind not in TRANSFORMS:
            raise ValueError(f"unknown transform {kind!r}; expected one of {', '.join(TRANSFORMS)}")
        self.kind, self.lam, self.inverse = kind, float(lam), bool(inverse)

    def call(self, x):
        x = ops.cast(x, "float32")
        if self.kind == "none":
            return x
        log = self.kind == "log" or self.lam == 0
        if not self.inverse:
            return ops.log(x) if log else (ops.power(x, self.lam) - 1.0) / self.lam
        if log:
            return ops.exp(ops.minimum(x, MAX_LOG))
        return ops.power(ops.maximum(self.lam * x + 1.0, MIN_BASE), 1.0 / self.lam)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "kind": self.kind, "lam": self.lam, "inverse": self.inverse}


@keras.saving.register_keras_serializable(package="seqapps")
class SeasonalDifference(keras.layers.Layer):
    """``[batch, window]`` -> ``[batch, window]``: ``(z[i] - z[i-1] - z[i-s] + z[i-s-1] - mean) / std``
    where ``i > s``, 0 before."""

    def __init__(self, season: int, mean: float = 0.0, std: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.season, self.mean, self.std = int(season), float(mean), float(std)

    def call(self, z):
        s = self.season
        d = z[:, s + 1:] - z[:, s:-1] - z[:, 1:-s] + z[:, :-s - 1]
        d = (d - self.mean) / self.std
        return ops.concatenate([ops.zeros_like(z[:, :s + 1]), d], axis=1)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "season": self.season, "mean": self.mean, "std": self.std}


@keras.saving.register_keras_serializable(package="seqapps")
class SeasonalBase(keras.layers.Layer):
    """``[batch, window]`` -> ``[batch, horizon]``: ``z[t-1] + z[t-s+k] - z[t-s-1]`` for step ``k``
    (``horizon <= s``), plus ``(k + 1) * drift`` (the training mean of the differences)."""

    def __init__(self, season: int, horizon: int, drift: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.season, self.horizon, self.drift = int(season), int(horizon), float(drift)

    def call(self, z):
        s, h = self.season, self.horizon
        window = ops.shape(z)[1]
        last, before = z[:, -1:], z[:, -s - 1:-s]
        ago = z[:, window - s:window - s + h]
        steps = ops.arange(1, h + 1, dtype="float32")[None, :]
        return last + ago - before + self.drift * steps

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.horizon)

    def get_config(self):
        return {**super().get_config(), "season": self.season, "horizon": self.horizon, "drift": self.drift}

"""Attention over a sequence of encoder states, masking padded steps.

Two scoring functions, both serializable Keras layers with the same call::

    context, weights = attention(query, values, mask=mask)

``query`` is ``[batch, units]`` (one decoder step) or ``[batch, steps, units]``
(every teacher-forced step at once); ``values`` is ``[batch, time, dim]``; ``mask`` is
``[batch, time]`` (True or 1 where a step is real). ``context`` is ``[batch, dim]``
(or ``[batch, steps, dim]``) and ``weights`` ``[batch, time]`` (or
``[batch, steps, time]``); weights on padded steps are exactly 0 and a row with no
real step gets all-zero weights and a zero context.

- :class:`AdditiveAttention` (Bahdanau): ``score = v . tanh(W_q q + W_k values)``.
  ``keys = layer.project_values(values)`` may be computed once per source and passed
  as ``keys=`` at every decoding step to skip re-projecting ``values``.
- :class:`MultiplicativeAttention` (Luong "general"): ``score = (W q) . values``
  (optionally scaled by ``1/sqrt(dim)``).

``make_attention(kind, units)`` builds either, or returns ``None`` for ``"none"``.
"""

from __future__ import annotations

import keras
from keras import ops

from seqapps.core.errors import ConfigError

KINDS = ("additive", "multiplicative", "none")


def _masked_softmax(scores, mask):
    """Softmax over the last axis; masked steps get 0 and fully masked rows all zeros."""
    if mask is None:
        return ops.softmax(scores, axis=-1)
    m = ops.cast(mask, scores.dtype)
    while len(m.shape) < len(scores.shape):
        m = ops.expand_dims(m, -2)  # [batch, time] -> [batch, 1, time] for 3-D queries
    big = ops.cast(-1e4 if scores.dtype == "float16" else -1e9, scores.dtype)
    weights = ops.softmax(scores + (1.0 - m) * big, axis=-1) * m
    return weights / ops.maximum(ops.sum(weights, axis=-1, keepdims=True), ops.cast(1e-9, scores.dtype))


class _Attention(keras.layers.Layer):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True  # masks arrive explicitly through ``mask``; outputs carry none

    def _scores(self, query, values, keys):
        raise NotImplementedError

    def call(self, query, values, mask=None, keys=None):
        single = len(query.shape) == 2
        q = ops.expand_dims(query, 1) if single else query               # [batch, steps, units]
        scores = self._scores(q, values, keys)                           # [batch, steps, time]
        weights = _masked_softmax(scores, mask)
        context = ops.matmul(weights, ops.cast(values, weights.dtype))   # [batch, steps, dim]
        if single:
            return ops.squeeze(context, 1), ops.squeeze(weights, 1)
        return context, weights

    def compute_output_shape(self, query_shape, values_shape, mask_shape=None, keys_shape=None):
        lead = tuple(query_shape[:-1])
        return lead + (values_shape[-1],), lead + (values_shape[1],)

    def compute_mask(self, *args, **kwargs):
        return None


@keras.saving.register_keras_serializable(package="seqapps")
class AdditiveAttention(_Attention):
    """Bahdanau attention: ``v . tanh(W_q q + W_k values)`` with ``units`` hidden units."""

    def __init__(self, units: int = 128, **kwargs):
        super().__init__(**kwargs)
        self.units = int(units)
        self.query_dense = keras.layers.Dense(self.units, use_bias=False, name="query")
        self.key_dense = keras.layers.Dense(self.units, use_bias=True, name="key")
        self.score_dense = keras.layers.Dense(1, use_bias=False, name="score")

    def build(self, query_shape, values_shape=None, mask_shape=None, keys_shape=None):
        self.query_dense.build(tuple(query_shape))
        self.key_dense.build(tuple(values_shape))
        self.score_dense.build((None, self.units))
        self.built = True

    def project_values(self, values):
        """``[batch, time, dim] -> [batch, time, units]``: the per-source part of the score."""
        return self.key_dense(values)

    def _scores(self, q, values, keys):
        keys = self.project_values(values) if keys is None else keys     # [batch, time, units]
        hidden = ops.tanh(ops.expand_dims(self.query_dense(q), 2) + ops.expand_dims(keys, 1))
        return ops.squeeze(self.score_dense(hidden), -1)                  # [batch, steps, time]

    def get_config(self):
        return {**super().get_config(), "units": self.units}


@keras.saving.register_keras_serializable(package="seqapps")
class MultiplicativeAttention(_Attention):
    """Luong "general" attention: ``(W q) . values``; ``scale`` divides by ``sqrt(dim)``."""

    def __init__(self, units: int | None = None, scale: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.units = units  # informational: the projection maps the query onto the values' width
        self.scale = bool(scale)
        self.query_dense = None

    def build(self, query_shape, values_shape=None, mask_shape=None, keys_shape=None):
        self.query_dense = keras.layers.Dense(int(values_shape[-1]), use_bias=False, name="query")
        self.query_dense.build(tuple(query_shape))
        self.built = True

    def project_values(self, values):
        return None  # nothing to precompute: the query is projected instead

    def _scores(self, q, values, keys):
        projected = self.query_dense(q)                                   # [batch, steps, dim]
        scores = ops.matmul(projected, ops.transpose(ops.cast(values, projected.dtype), (0, 2, 1)))
        if self.scale:
            scores = scores / ops.sqrt(ops.cast(ops.shape(values)[-1], scores.dtype))
        return scores

    def get_config(self):
        return {**super().get_config(), "units": self.units, "scale": self.scale}


def make_attention(kind: str, units: int = 128, name: str = "attention"):
    """``additive`` | ``multiplicative`` -> a layer; ``none`` -> ``None`` (no attention)."""
    if kind == "additive":
        return AdditiveAttention(units, name=name)
    if kind == "multiplicative":
        return MultiplicativeAttention(units, name=name)
    if kind == "none":
        return None
    raise ConfigError(f"model.attention must be one of {', '.join(KINDS)}, got {kind!r}")

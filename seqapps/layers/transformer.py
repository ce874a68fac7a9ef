"""Self-attention beside the recurrent cells: multi-head attention, positions, pre-norm blocks.

Scaled dot-product attention, per head: the scores of a query against the keys are
``q . k / sqrt(head_dim)``; keys the query may not see (padding, and with ``causal`` every
later position) get -1e9 before the softmax; the output is the weighted sum of the values,
the heads concatenated and projected back to the width. Scores and the softmax are float32
whatever the compute dtype, so mixed precision does not overflow them.

:class:`TransformerBlock` is pre-norm (LayerNorm before the self-attention, the optional
cross-attention and the feed-forward, a residual around each), the layout small transformers
train most stably with; :func:`transformer_encoder` stacks ``cfg.layers`` of them over
sinusoidal positions and ends with a LayerNorm.

Incremental decoding with a key/value cache
-------------------------------------------
``block.step(x, cache, position, context)`` runs one new position per row: ``x`` is
``[batch, 1, width]``, ``position`` int ``[batch]`` (each row may be at its own position),
``cache`` ``{"key", "value"}`` of ``[batch, slots, width]`` and ``"positions"`` ``[batch, slots]``
(the position each slot holds, -1 for none). The new key and value are written into slot
``position % slots`` (one-hot over the slots, no scatter), so the cache is a ring: the query
attends to the last ``slots`` positions up to its own. While ``position < slots`` this is exactly
the whole prefix through ``call`` with a causal mask, without running it again
(``tests/test_transformer.py`` checks it, and the masks against a NumPy computation); past
that it is a sliding window of ``slots`` positions, which is what a model trained on windows of
that length has seen, when its positions are relative (``alibi``). Every cache leaf has the batch
first, so the decoding loops in :mod:`seqapps.inference.decoding` tile and reorder it for beam search like
any recurrent state.

Positions are either absolute (:class:`SinusoidalPositions` added to the inputs) or relative:
with ``alibi`` the attention scores get ``-slope_h * distance`` (Press et al., ALiBi; one slope
per head), so the same weights read any window of the text the same way.
"""

from __future__ import annotations

import math

import keras
from keras import ops

from seqapps.core.errors import ConfigError

NEG = -1e9
#: what ``model.architecture`` may name in a text task whose encoder is :func:`sequence_encoder`
ARCHITECTURES = ("rnn", "transformer")


def check_heads(width: int, heads: int, key: str = "model.units") -> None:
    """One line at config time when the heads do not divide the width."""
    if heads < 1:
        raise ConfigError(f"model.heads must be >= 1, got {heads}")
    if width % heads:
        raise ConfigError(f"model.heads ({heads}) must divide {key} ({width}): each head gets width / heads "
                          "dimensions")


@keras.saving.register_keras_serializable(package="seqapps")
class SinusoidalPositions(keras.layers.Layer):
    """Adds ``sin``/``cos`` position signals to ``[batch, time, width]`` (Vaswani et al.); no weights, any
    length. ``positions`` (int ``[batch, time]``) gives each step's position, by default ``0..time-1``."""

    def __init__(self, max_wavelength: float = 10000.0, **kwargs):
        super().__init__(**kwargs)
        self.max_wavelength = max_wavelength
        self.supports_masking = True

    def call(self, x, positions=None):
        width = x.shape[-1]
        if positions is None:
            positions = ops.expand_dims(ops.arange(ops.shape(x)[1]), 0)
        angles = ops.cast(ops.expand_dims(positions, -1), "float32") * self._rates(width)
        signal = ops.concatenate([ops.sin(angles), ops.cos(angles)], axis=-1)[..., :width]
        return x + ops.cast(signal, x.dtype)

    def _rates(self, width: int):
        half = (width + 1) // 2
        return ops.exp(ops.arange(half, dtype="float32") * (-math.log(self.max_wavelength) / max(half, 1)))

    def get_config(self):
        return {**super().get_config(), "max_wavelength": self.max_wavelength}


@keras.saving.register_keras_serializable(package="seqapps")
class MultiHeadAttention(keras.layers.Layer):
    """``heads`` heads of scaled dot-product attention from ``query`` ``[batch, tq, *]`` to
    ``context`` ``[batch, tk, *]`` (itself when absent), out ``[batch, tq, width]``.

    ``key_mask`` bool ``[batch, tk]``: False keys are never attended to; ``causal``: a query at
    position i sees keys at positions <= i. ``return_weights`` also returns the attention
    ``[batch, heads, tq, tk]``. A query with no key to see gets zeros."""

    def __init__(self, heads: int, width: int, dropout: float = 0.0, alibi: bool = False, **kwargs):
        super().__init__(**kwargs)
        check_heads(width, heads)
        self.heads, self.width, self.dropout, self.alibi = heads, width, dropout, alibi
        self.head_dim = width // heads
        same = {"dtype": self.dtype_policy}  # sublayers follow this layer's policy (mixed precision, reloaded)
        self.query = keras.layers.Dense(width, name="query", **same)
        self.key = keras.layers.Dense(width, name="key", **same)
        self.value = keras.layers.Dense(width, name="value", **same)
        self.output_dense = keras.layers.Dense(width, name="output", **same)
        self.weights_dropout = keras.layers.Dropout(dropout, **same)

    def build(self, query_shape, context_shape=None):
        context_shape = query_shape if context_shape is None else context_shape
        self.query.build(query_shape)
        self.key.build(context_shape)
        self.value.build(context_shape)
        self.output_dense.build((*query_shape[:-1], self.width))
        self.built = True

    def call(self, query, context=None, key_mask=None, causal=False, training=None, return_weights=False):
        context = query if context is None else context
        tq, tk = ops.shape(query)[1], ops.shape(context)[1]
        allowed = _allowed(key_mask, causal, tq, tk)
        bias = None
        if self.alibi:  # query i, key j: distance i - j (its size without the causal mask)
            distance = ops.expand_dims(ops.arange(tq), 1) - ops.expand_dims(ops.arange(tk), 0)
            bias = self._distance_bias(ops.abs(distance)[None])
        out, weights = self.attend(self.query(query), self.key(context), self.value(context), allowed, training,
                                   bias)
        return (out, weights) if return_weights else out

    def _distance_bias(self, distance):
        """``[b, tq, tk]`` distances -> ALiBi's ``-slope_h * distance`` ``[b, heads, tq, tk]``."""
        slopes = 2.0 ** (-8.0 * ops.arange(1, self.heads + 1, dtype="float32") / self.heads)
        return -slopes[None, :, None, None] * ops.cast(distance, "float32")[:, None]

    def attend(self, q, k, v, allowed=None, training=None, bias=None):
        """Projected ``q`` ``[b, tq, width]``, ``k``/``v`` ``[b, tk, width]``; ``allowed`` bool, broadcastable
        to ``[b, heads, tq, tk]`` (None: everything); ``bias`` float32 added to the scores
        -> (``[b, tq, width]``, weights ``[b, heads, tq, tk]``)."""
        q, k, v = self._split(q), self._split(k), self._split(v)
        scores = ops.einsum("bhqd,bhkd->bhqk", ops.cast(q, "float32"), ops.cast(k, "float32"))
        scores = scores / math.sqrt(self.head_dim)
        if bias is not None:
            scores = scores + bias
        if allowed is not None:
            scores = ops.where(allowed, scores, NEG)
        weights = ops.softmax(scores, axis=-1)
        if allowed is not None:  # a query that may see nothing (an all-padding row) reads nothing
            weights = weights * ops.cast(ops.any(allowed, axis=-1, keepdims=True), weights.dtype)
        mixed = ops.einsum("bhqk,bhkd->bhqd", ops.cast(self.weights_dropout(weights, training=training), v.dtype), v)
        batch, steps = ops.shape(mixed)[0], ops.shape(mixed)[2]
        mixed = ops.reshape(ops.transpose(mixed, (0, 2, 1, 3)), (batch, steps, self.width))
        return self.output_dense(mixed), weights

    def step(self, query, cache: dict, position):
        """Causal self-attention for one new position: ``query`` ``[b, 1, *]`` at int ``position`` ``[b]``;
        ``cache`` ``{"key", "value"}`` ``[b, slots, width]``, ``"positions"`` int ``[b, slots]`` (the ring of
        the module docstring) -> (``[b, 1, width]``, the updated cache, weights ``[b, heads, 1, slots]``)."""
        if not self.built:
            self.build(tuple(query.shape))
        slots = ops.shape(cache["key"])[1]
        position = ops.cast(position, "int32")
        hot = ops.one_hot(position % slots, slots, dtype="float32")  # [b, slots]
        write = ops.cast(ops.expand_dims(hot, -1), cache["key"].dtype)
        k = cache["key"] * (1 - write) + write * ops.cast(self.key(query), cache["key"].dtype)
        v = cache["value"] * (1 - write) + write * ops.cast(self.value(query), cache["value"].dtype)
        now = ops.expand_dims(position, 1)
        stored = ops.where(hot > 0, now, ops.cast(cache["positions"], "int32"))
        seen = ops.logical_and(stored >= 0, ops.logical_and(stored <= now, stored > now - slots))  # [b, slots]
        bias = self._distance_bias(ops.expand_dims(now - stored, 1)) if self.alibi else None
        out, weights = self.attend(self.query(query), k, v, _heads_and_queries(seen), bias=bias)
        return out, {"key": k, "value": v, "positions": stored}, weights

    def _split(self, x):
        """``[b, t, width]`` -> ``[b, heads, t, head_dim]``."""
        batch, steps = ops.shape(x)[0], ops.shape(x)[1]
        return ops.transpose(ops.reshape(x, (batch, steps, self.heads, self.head_dim)), (0, 2, 1, 3))

    def get_config(self):
        return {**super().get_config(), "heads": self.heads, "width": self.width, "dropout": self.dropout,
                "alibi": self.alibi}


def _heads_and_queries(mask):
    """``[b, tk]`` -> ``[b, 1, 1, tk]``, by ``expand_dims`` rather than ``mask[:, None, None, :]``: LiteRT's
    converter takes ExpandDims with a free batch and key length, not a strided slice adding axes."""
    return ops.expand_dims(ops.expand_dims(mask, 1), 1)


def _allowed(key_mask, causal: bool, tq, tk):
    allowed = None
    if key_mask is not None:
        allowed = _heads_and_queries(ops.cast(key_mask, "bool"))
    if causal:
        lower = ops.expand_dims(ops.arange(tq), 1) >= ops.expand_dims(ops.arange(tk), 0)
        allowed = lower[None, None] if allowed is None else ops.logical_and(allowed, lower[None, None])
    return allowed


@keras.saving.register_keras_serializable(package="seqapps")
class TransformerBlock(keras.layers.Layer):
    """One pre-norm block: ``x + attention(norm(x))``, then (``cross``) ``x + attention(norm(x), context)``,
    then ``x + feed_forward(norm(x))`` (``ff_units`` ReLU units back to ``width``); ``dropout`` on each branch
    and on the attention weights. ``causal`` self-attention sees only earlier positions; ``alibi`` gives
    it relative positions (see the module docstring)."""

    def __init__(self, width: int, heads: int, ff_units: int, dropout: float = 0.0, causal: bool = False,
                 cross: bool = False, alibi: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.width, self.heads, self.ff_units, self.dropout = width, heads, ff_units, dropout
        self.causal, self.cross, self.alibi = causal, cross, alibi
        same = {"dtype": self.dtype_policy}  # sublayers follow this layer's policy (mixed precision, reloaded)
        self.self_norm = keras.layers.LayerNormalization(epsilon=1e-5, name="self_norm", **same)
        self.self_attention = MultiHeadAttention(heads, width, dropout, alibi=alibi, name="self_attention", **same)
        if cross:
            self.cross_norm = keras.layers.LayerNormalization(epsilon=1e-5, name="cross_norm", **same)
            self.cross_attention = MultiHeadAttention(heads, width, dropout, name="cross_attention", **same)
        self.ff_norm = keras.layers.LayerNormalization(epsilon=1e-5, name="ff_norm", **same)
        self.ff_inner = keras.layers.Dense(ff_units, activation="relu", name="ff_inner", **same)
        self.ff_outer = keras.layers.Dense(width, name="ff_outer", **same)
        self.branch_dropout = keras.layers.Dropout(dropout, **same)

    def build(self, x_shape, context_shape=None):
        for norm in (self.self_norm, self.ff_norm):
            norm.build(x_shape)
        self.self_attention.build(x_shape)
        if self.cross:
            self.cross_norm.build(x_shape)
            self.cross_attention.build(x_shape, context_shape)
        self.ff_inner.build(x_shape)
        self.ff_outer.build((*x_shape[:-1], self.ff_units))
        self.built = True

    def call(self, x, context=None, x_mask=None, context_mask=None, training=None, return_weights=False):
        a, weights = self.self_attention(self.self_norm(x), key_mask=x_mask, causal=self.causal,
                                         training=training, return_weights=True)
        x = x + self.branch_dropout(a, training=training)
        if self.cross:
            c = self.cross_attention(self.cross_norm(x), context, key_mask=context_mask, training=training)
            x = x + self.branch_dropout(c, training=training)
        x = x + self.branch_dropout(self._feed_forward(x, training), training=training)
        return (x, weights) if return_weights else x

    def _feed_forward(self, x, training=None):
        return self.ff_outer(self.branch_dropout(self.ff_inner(self.ff_norm(x)), training=training))

    def context_keys(self, context):
        """The cross-attention's keys and values of an encoder output, computed once per source."""
        return {"key": self.cross_attention.key(context), "value": self.cross_attention.value(context)}

    def step(self, x, cache: dict, position, context_keys=None, context_mask=None):
        """One new position (``x`` ``[b, 1, width]``) through the block at inference, reading and updating
        its self-attention ``cache``; cross-attention reads ``context_keys`` (:meth:`context_keys`) under
        ``context_mask`` ``[b, tk]``. -> (``[b, 1, width]``, the new cache, ``{"self": weights}`` and, with
        cross-attention, ``"cross"``: its weights ``[b, heads, 1, tk]``)."""
        if not self.built:  # the first call may be a step (build() makes every weight at once)
            self.build(tuple(x.shape), None if context_keys is None else tuple(context_keys["key"].shape))
        a, cache, weights = self.self_attention.step(self.self_norm(x), cache, position)
        x, seen = x + a, {"self": weights}
        if self.cross:
            allowed = None if context_mask is None else _heads_and_queries(ops.cast(context_mask, "bool"))
            q = self.cross_attention.query(self.cross_norm(x))
            c, seen["cross"] = self.cross_attention.attend(q, context_keys["key"], context_keys["value"], allowed)
            x = x + c
        return x + self._feed_forward(x), cache, seen

    def empty_cache(self, batch, slots: int, dtype="float32") -> dict:
        zeros = ops.zeros((batch, slots, self.width), dtype=dtype)
        return {"key": zeros, "value": zeros, "positions": -ops.ones((batch, slots), dtype="int32")}

    def get_config(self):
        return {**super().get_config(), "width": self.width, "heads": self.heads, "ff_units": self.ff_units,
                "dropout": self.dropout, "causal": self.causal, "cross": self.cross, "alibi": self.alibi}


def sequence_encoder(x, mask, cfg, *, name: str = "encoder", return_sequences: bool = True):
    """The encoder ``cfg.architecture`` names over ``[batch, time, dim]`` and its mask: the recurrent
    stack (``rnn``, its cell ``cfg.cell``) or :func:`transformer_encoder` (``transformer``, always one
    output per step)."""
    if getattr(cfg, "architecture", "rnn") == "transformer":
        return transformer_encoder(x, mask, cfg, name=name)
    from seqapps.layers.recurrent import recurrent_stack

    return recurrent_stack(x, cfg, return_sequences=return_sequences, name=name, mask=mask)


def transformer_encoder(x, mask, cfg, *, causal: bool = False, name: str = "transformer", return_weights=False):
    """``[batch, time, dim]`` embeddings and their ``[batch, time]`` mask -> ``[batch, time, cfg.units]``:
    a projection to the width when ``dim`` differs, sinusoidal positions, ``cfg.layers`` pre-norm blocks
    (``cfg.heads`` heads, ``cfg.ff_units`` feed-forward units, 0 meaning 4 x width, ``cfg.dropout``) and a
    final LayerNorm. With ``return_weights``, also each block's self-attention weights (a list)."""
    width = cfg.units
    check_heads(width, cfg.heads)
    if x.shape[-1] != width:
        x = keras.layers.Dense(width, name=f"{name}_projection")(x)
    x = SinusoidalPositions(name=f"{name}_positions")(x)
    weights = []
    for i in range(cfg.layers):
        block = TransformerBlock(width, cfg.heads, cfg.ff_units or 4 * width, cfg.dropout, causal=causal,
                                 name=f"{name}_{i + 1}")
        x, w = block(x, x_mask=mask, return_weights=True)
        weights.append(w)
    x = keras.layers.LayerNormalization(epsilon=1e-5, name=f"{name}_norm")(x)
    return (x, weights) if return_weights else x

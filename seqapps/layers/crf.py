"""A linear-chain conditional random field as a serializable Keras 3 layer.

The layer turns per-token emission scores ``[batch, time, tags]`` into *pairwise
potentials* ``[batch, time, tags, tags]``: ``potentials[b, t, i, j]`` is the score of
tag ``j`` at step ``t`` after tag ``i`` at step ``t - 1``::

    emission[b, t, j] + (start[j] if t == 0 else transitions[i, j]) + (end[j] if t is the last real step)

so the score of a whole tag path is the sum of one entry per real step, and the loss
(:class:`CRFLoss`, the negative log-likelihood by the forward algorithm) and the decoder
(:func:`viterbi_decode`) are plain functions of those potentials. That keeps the usual
``model.compile(loss=CRFLoss())`` / ``model.save`` / ``keras.saving.load_model`` workflow:
no gold tags as model inputs, no custom ``train_step``.

Padding: masks are right-padded (real steps first). The step-0 row of the potentials
does not depend on ``i``; padded steps are ignored by the loss and the decoder, a
sequence of length 0 has log-likelihood 0 and decodes to nothing. Gold tag ids in the
loss are ``1..tags`` with ``0`` for padding (the padding value of batched targets), so
the mask of the loss is ``y_true > 0`` and must agree with the mask the layer saw.

Everything is written with ``keras.ops`` (``ops.scan`` for the recursions), so it runs
inside ``tf.function`` and in exported SavedModels.
"""

from __future__ import annotations

import keras
from keras import ops

NEG = -1e9  # "impossible" in log space; finite so that 0 * NEG stays 0


def _right_padded_mask(mask, shape):
    if mask is None:
        return ops.ones(shape, dtype="bool")
    return ops.cast(mask, "bool")


def crf_potentials(emissions, transitions, start, end, mask=None):
    """``[B, T, K]`` emissions -> ``[B, T, K, K]`` pairwise potentials (see the module docstring)."""
    emissions = ops.cast(emissions, "float32")
    shape = ops.shape(emissions)
    mask = _right_padded_mask(mask, shape[:2])
    steps = shape[1]
    first = ops.expand_dims(ops.expand_dims(ops.expand_dims(ops.arange(steps) == 0, 0), -1), -1)  # [1,T,1,1]
    edge = ops.where(first, ops.expand_dims(ops.expand_dims(start, 0), 0)[None], transitions[None, None])
    following = ops.concatenate([mask[:, 1:], ops.zeros_like(mask[:, :1])], axis=1)
    last = ops.logical_and(mask, ops.logical_not(following))  # [B, T]
    end_term = ops.cast(last, "float32")[:, :, None] * end[None, None, :]  # [B, T, K]
    return edge + ops.expand_dims(emissions + end_term, 2)


def _time_major(x):
    return ops.moveaxis(x, 1, 0)


def _steps(potentials, mask):
    """One time-major tensor ``[T, B, K + 1, K]``: the potentials with the mask as an extra row
    (``ops.scan`` on the TensorFlow backend takes a single input of unknown length only)."""
    m = ops.cast(mask, potentials.dtype)[:, :, None, None] * ops.ones_like(potentials[:, :, :1, :])
    return _time_major(ops.concatenate([potentials, m], axis=2))


def _unpack(step):
    return step[:, :-1, :], step[:, -1, 0] > 0.5


def _init(potentials):
    """Log-space start vector: all mass on row 0 (step 0 does not depend on the previous tag)."""
    batch, tags = ops.shape(potentials)[0], ops.shape(potentials)[2]
    row = ops.where(ops.arange(tags) == 0, 0.0, NEG)
    return ops.broadcast_to(ops.cast(row, potentials.dtype)[None], (batch, tags))


def crf_log_partition(potentials, mask=None):
    """``log Z`` per sequence ``[B]`` by the forward algorithm; 0 for length-0 sequences."""
    mask = _right_padded_mask(mask, ops.shape(potentials)[:2])

    def step(alpha, inputs):
        pot, m = _unpack(inputs)
        new = ops.logsumexp(alpha[:, :, None] + pot, axis=1)
        alpha = ops.where(m[:, None], new, alpha)
        return alpha, alpha

    alpha, _ = ops.scan(step, _init(potentials), _steps(potentials, mask))
    log_z = ops.logsumexp(alpha, axis=-1)
    return ops.where(ops.any(mask, axis=1), log_z, 0.0)


def crf_path_score(potentials, tags, mask=None):
    """Score ``[B]`` of the tag paths ``tags`` (``[B, T]`` ids in ``0..K-1``) over real steps."""
    mask = _right_padded_mask(mask, ops.shape(potentials)[:2])
    tags = ops.cast(tags, "int32")
    previous = ops.concatenate([ops.zeros_like(tags[:, :1]), tags[:, :-1]], axis=1)
    rows = ops.take_along_axis(potentials, previous[:, :, None, None], axis=2)[:, :, 0, :]  # [B, T, K]
    picked = ops.take_along_axis(rows, tags[:, :, None], axis=2)[:, :, 0]  # [B, T]
    return ops.sum(ops.where(mask, picked, 0.0), axis=1)


def crf_log_likelihood(potentials, tags, mask=None):
    """``log p(tags | x)`` per sequence ``[B]``."""
    return crf_path_score(potentials, tags, mask) - crf_log_partition(potentials, mask)


def viterbi_decode(potentials, mask=None):
    """Best tag path ``[B, T]`` (int32 ids in ``0..K-1``, ``-1`` on padded steps) and its score ``[B]``."""
    shape = ops.shape(potentials)
    mask = _right_padded_mask(mask, shape[:2])
    tags = shape[2]
    identity = ops.broadcast_to(ops.arange(tags, dtype="int32")[None], (shape[0], tags))

    def forward(carry, inputs):
        delta, _ = carry
        pot, m = _unpack(inputs)
        scores = delta[:, :, None] + pot                      # [B, K(prev), K(next)]
        best = ops.cast(ops.argmax(scores, axis=1), "int32")  # [B, K]
        delta = ops.where(m[:, None], ops.max(scores, axis=1), delta)
        back = ops.where(m[:, None], best, identity)          # padding passes the tag through
        return (delta, back), (delta, back)

    (delta, _), (_, backs) = ops.scan(forward, (_init(potentials), identity), _steps(potentials, mask))
    last = ops.cast(ops.argmax(delta, axis=-1), "int32")  # [B]

    def backward(tag, back):
        # ``tag`` is the tag at this step; the tag one step earlier is back[tag]
        return ops.take_along_axis(back, tag[:, None], axis=1)[:, 0], tag

    _, path = ops.scan(backward, last, backs, reverse=True)  # [T, B]
    path = ops.where(mask, ops.moveaxis(path, 0, 1), -1)
    score = ops.where(ops.any(mask, axis=1), ops.max(delta, axis=-1), 0.0)
    return path, score


@keras.saving.register_keras_serializable(package="seqapps")
class CRF(keras.layers.Layer):
    """Linear-chain CRF over ``num_tags`` tags: emissions ``[B, T, K]`` (and their mask)
    in, pairwise potentials ``[B, T, K, K]`` out. Train with :class:`CRFLoss`, decode with
    :func:`viterbi_decode` (or :meth:`decode`)."""

    def __init__(self, num_tags: int, **kwargs):
        kwargs.setdefault("dtype", "float32")  # the recursions stay in float32 under mixed precision
        super().__init__(**kwargs)
        if int(num_tags) < 1:
            raise ValueError(f"CRF needs at least one tag, got num_tags={num_tags}")
        self.num_tags = int(num_tags)
        self.supports_masking = True

    def build(self, input_shape):
        k = self.num_tags
        if input_shape[-1] is not None and input_shape[-1] != k:
            raise ValueError(f"CRF expects emissions with {k} scores per step, got shape {input_shape}")
        self.transitions = self.add_weight(shape=(k, k), initializer="glorot_uniform", name="transitions")
        self.start = self.add_weight(shape=(k,), initializer="zeros", name="start")
        self.end = self.add_weight(shape=(k,), initializer="zeros", name="end")

    def call(self, emissions, mask=None):
        return crf_potentials(emissions, self.transitions, self.start, self.end, mask)

    def compute_mask(self, inputs, mask=None):
        return None  # the loss reads the padding from the targets; see the module docstring

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.num_tags, self.num_tags)

    def decode(self, emissions, mask=None):
        """Viterbi tag ids ``[B, T]`` (``-1`` on padding) straight from emissions."""
        return viterbi_decode(self(emissions, mask=mask), mask)[0]

    def get_config(self):
        return {**super().get_config(), "num_tags": self.num_tags}


@keras.saving.register_keras_serializable(package="seqapps")
class CRFLoss(keras.losses.Loss):
    """Negative log-likelihood of gold tags under :class:`CRF` potentials.

    ``y_true``: ``[B, T]`` tag ids ``1..K``, ``0`` = padding; ``y_pred``: the potentials.
    Per-sequence values, averaged over the batch by default.
    """

    def __init__(self, name="crf_loss", reduction="sum_over_batch_size", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, "int32")
        mask = y_true > 0
        return -crf_log_likelihood(ops.cast(y_pred, "float32"), ops.maximum(y_true - 1, 0), mask)

    def get_config(self):
        return {"name": self.name, "reduction": self.reduction}

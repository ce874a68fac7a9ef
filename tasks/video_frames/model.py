"""A per-frame video labeller: a frame encoder over every frame, then context, then a label per frame.

``build_frame_tagger(m, num_labels)`` returns a functional ``keras.Model``
``{"frames": float [B, T, size, size, 3] in [0, 255], "mask": [B, T]} -> scores [B, T, K]``
(CRF potentials ``[B, T, K, K]`` when ``m.crf``):

- the frame encoder (``m.encoder``): ``small_cnn`` with ``m.cnn_filters`` (trained), or a
  pretrained one from :func:`seqapps.encoders.build_encoder` (frozen unless
  ``m.encoder_trainable``); its feature grid is flattened -- the position of things in
  the frame matters -- and projected to ``m.feature_units``;
- ``m.architecture=rnn``: the shared recurrent factory over the frames (bidirectional
  for offline labelling, ``m.bidirectional=false`` for online, causal labelling);
  ``m.architecture=frame``: the one-to-one baseline, a hidden layer on each frame alone;
- a dense layer scoring each label per frame, and the CRF when ``m.crf``.
"""

from __future__ import annotations

import keras
from keras import ops

from seqapps.encoders import build_encoder, small_cnn
from seqapps.layers import recurrent_stack
from seqapps.layers.crf import CRF

ARCHITECTURES = ("rnn", "frame")


@keras.saving.register_keras_serializable(package="seqapps")
class FoldTime(keras.layers.Layer):
    """``[B, T, ...]`` -> ``[B * T, ...]``: every frame of every video as one batch for the frame encoder."""

    def call(self, x):
        return ops.reshape(x, (-1, *x.shape[2:]))

    def compute_output_shape(self, shape):
        return (None, *shape[2:])


@keras.saving.register_keras_serializable(package="seqapps")
class UnfoldTime(keras.layers.Layer):
    """``[B * T, F]`` back to ``[B, T, F]``, with ``B`` and ``T`` read from ``reference`` ``[B, T, ...]``."""

    def call(self, x, reference):
        shape = ops.shape(reference)
        return ops.reshape(x, (shape[0], shape[1], x.shape[-1]))

    def compute_output_shape(self, x_shape, reference_shape):
        return (reference_shape[0], reference_shape[1], x_shape[-1])


def frame_encoder(m) -> keras.Model:
    """One frame ``[size, size, 3]`` -> a feature vector ``[m.feature_units]``."""
    size = m.image_size
    if m.encoder == "small_cnn":
        grid = small_cnn(size, filters=tuple(m.cnn_filters), name="frame_cnn")
    else:
        grid = build_encoder(m.encoder, m.encoder_weights, size)
        grid.trainable = bool(m.encoder_trainable)
    image = keras.Input((size, size, 3), name="frame")
    x = keras.layers.Flatten(name="grid")(grid(image))
    x = keras.layers.Dense(m.feature_units, activation="relu", name="features")(x)
    return keras.Model(image, x, name="frame_encoder")


def build_frame_tagger(m, num_labels: int, name: str = "frame_tagger") -> keras.Model:
    frames = keras.Input((None, m.image_size, m.image_size, 3), name="frames")
    mask_input = keras.Input((None,), name="mask")
    x = frame_encoder(m)(FoldTime(name="fold_time")(frames))
    x = UnfoldTime(name="unfold_time")(x, frames)
    x = keras.layers.Dropout(m.feature_dropout, name="feature_dropout")(x)
    mask = ops.greater(mask_input, 0.5)
    if m.architecture == "frame":
        x = keras.layers.Dense(m.units, activation="relu", name="per_frame")(x)
        if m.dropout:
            x = keras.layers.Dropout(m.dropout, name="per_frame_dropout")(x)
    else:
        x = recurrent_stack(x, m, return_sequences=True, name="context", mask=mask)
    scores = keras.layers.Dense(num_labels, dtype="float32", name="scores")(x)
    out = CRF(num_labels, name="crf")(scores, mask=mask) if m.crf else scores
    return keras.Model({"frames": frames, "mask": mask_input}, out, name=name)

"""Words read from their spelling, and the word features of a tagger.

:class:`CharWordEncoder` turns each word's characters into one vector (a char CNN with
max pooling, or a char BiLSTM), so words never seen in training still carry their
prefixes, suffixes, case and digits. :func:`word_features` joins a trained word
embedding, optional frozen pretrained vectors and that character encoding.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from seqapps.core.errors import ConfigError

CHAR_ENCODERS = ("cnn", "rnn", "none")


@keras.saving.register_keras_serializable(package="seqapps")
class CharWordEncoder(keras.layers.Layer):
    """Character ids ``[B, T, C]`` (0 = padding) -> one vector per word ``[B, T, F]``.

    ``kind="cnn"``: embedding, a width-``kernel`` convolution, max over the word's
    characters; ``kind="rnn"``: embedding and a masked BiLSTM (``features`` units in total).
    Words are encoded independently of each other and of the batch's padding.
    """

    def __init__(self, num_chars: int, dim: int = 32, features: int = 64, kernel: int = 3, kind: str = "cnn",
                 **kwargs):
        super().__init__(**kwargs)
        if kind not in ("cnn", "rnn"):
            raise ConfigError(f"model.char_encoder must be cnn, rnn or none, got {kind!r}")
        self.num_chars, self.dim, self.features, self.kernel, self.kind = num_chars, dim, features, kernel, kind
        self.embedding = keras.layers.Embedding(num_chars, dim, name="embedding")
        if kind == "cnn":
            self.encoder = keras.layers.Conv1D(features, kernel, padding="same", activation="tanh", name="conv")
        else:
            self.encoder = keras.layers.Bidirectional(keras.layers.LSTM(max(1, features // 2)), name="bilstm")

    def build(self, input_shape):
        c = input_shape[-1]
        self.embedding.build((None, c))
        self.encoder.build((None, c, self.dim))

    def call(self, chars):
        shape = ops.shape(chars)
        flat = ops.reshape(chars, (-1, shape[-1]))
        mask = flat > 0
        x = self.embedding(flat)
        if self.kind == "cnn":
            h = self.encoder(x)
            h = ops.max(ops.where(mask[:, :, None], h, -2.0), axis=1)  # tanh > -2: masked steps never win
            h = ops.where(ops.any(mask, axis=1)[:, None], h, 0.0)
        else:
            h = self.encoder(x, mask=mask)
        return ops.reshape(h, (shape[0], shape[1], self.output_features))

    @property
    def output_features(self) -> int:
        return self.features if self.kind == "cnn" else 2 * max(1, self.features // 2)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:2], self.output_features)

    def get_config(self):
        return {**super().get_config(), "num_chars": self.num_chars, "dim": self.dim, "features": self.features,
                "kernel": self.kernel, "kind": self.kind}


def word_features(m, vocab_size: int, num_chars: int, max_word_length: int, vectors=None):
    """The inputs and per-word features of a word-level model configured by ``m`` (a model config
    with ``embedding_dim``, ``char_encoder``, ``char_dim``, ``char_features``, ``char_kernel``).

    ``words`` (ids, 0 padding, 1 unknown) feed a trained embedding of ``vocab_size + 2`` rows;
    ``chars`` ``[B, T, max_word_length]`` the :class:`CharWordEncoder` (unless ``char_encoder``
    is ``none``); ``vectors`` (``(count, dim)``) adds a ``vectors`` input read by a ``word_vectors``
    embedding of ``count + 2`` rows, frozen unless ``m.word_vectors_trainable``. Returns ``(inputs, features, frozen layer or None)``.
    """
    if m.char_encoder not in CHAR_ENCODERS:
        raise ConfigError(f"model.char_encoder must be cnn, rnn or none, got {m.char_encoder!r}")
    words = keras.Input((None,), dtype="int64", name="words")
    chars = keras.Input((None, max_word_length), dtype="int64", name="chars")
    inputs = {"words": words, "chars": chars}
    parts = [keras.layers.Embedding(vocab_size + 2, m.embedding_dim, name="word_embedding")(words)]
    frozen = None
    if vectors is not None:  # pretrained vectors: frozen, unseen words keep what they were given
        inputs["vectors"] = keras.Input((None,), dtype="int64", name="vectors")
        frozen = keras.layers.Embedding(vectors[0] + 2, vectors[1], name="word_vectors",
                                        trainable=bool(getattr(m, "word_vectors_trainable", False)))
        parts.append(frozen(inputs["vectors"]))
    if m.char_encoder != "none":
        parts.append(CharWordEncoder(num_chars + 2, m.char_dim, m.char_features, m.char_kernel, m.char_encoder,
                                     name="char_encoder")(chars))
    x = keras.layers.Concatenate(name="word_features")(parts) if len(parts) > 1 else parts[0]
    return inputs, x, frozen


def set_frozen_vectors(layer, matrix) -> None:
    """Load ``matrix`` ``[count, dim]`` into the vectors' embedding built by :func:`word_features`
    (rows 0 and 1, padding and unknown, stay zero)."""
    layer.set_weights([np.concatenate([np.zeros((2, matrix.shape[1]), np.float32), matrix])])

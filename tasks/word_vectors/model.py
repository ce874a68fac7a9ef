"""Skip-gram with negative sampling (Mikolov et al. 2013), in keras.ops.

Each word has two vectors: ``vectors`` (the ones written out) and ``contexts``. For a (center,
context) pair from a window of the text and ``K`` words drawn from the unigram distribution raised to
3/4, the model scores ``vectors[center] . contexts[candidate]`` for the true context and the ``K``
negatives; the loss is the logistic loss of telling them apart (1 for the context, 0 for the rest).
"""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="seqapps")
class SkipGram(keras.layers.Layer):
    """``(center [B], candidates [B, 1 + K])`` ids -> logits ``[B, 1 + K]``; id 0 is the unknown word."""

    def __init__(self, vocab_size: int, dim: int, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size, self.dim = int(vocab_size), int(dim)

    def build(self, *shapes):
        # word2vec's initialisation: small uniform word vectors, zero context vectors
        scale = 0.5 / self.dim
        self.vectors = self.add_weight(name="vectors", shape=(self.vocab_size, self.dim),
                                       initializer=keras.initializers.RandomUniform(-scale, scale))
        self.contexts = self.add_weight(name="contexts", shape=(self.vocab_size, self.dim), initializer="zeros")
        self.built = True

    def call(self, center, candidates):
        w = ops.take(self.vectors, center, axis=0)              # [B, dim]
        c = ops.take(self.contexts, candidates, axis=0)         # [B, 1 + K, dim]
        return ops.sum(c * ops.expand_dims(w, 1), axis=-1)

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size, "dim": self.dim}


def build_skip_gram(vocab_size: int, dim: int, negatives: int) -> keras.Model:
    center = keras.Input((), dtype="int64", name="center")
    candidates = keras.Input((1 + negatives,), dtype="int64", name="candidates")
    logits = SkipGram(vocab_size, dim, name="skip_gram")(center, candidates)
    logits = keras.layers.Activation("linear", dtype="float32", name="logits")(logits)
    return keras.Model({"center": center, "candidates": candidates}, logits, name="word_vectors")

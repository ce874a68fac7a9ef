"""The encoder-decoder transformer translator (Vaswani et al.), pre-norm, beside the recurrent Seq2Seq.

Encoder: source embeddings (scaled by sqrt(width)) + sinusoidal positions -> ``layers`` self-attention
blocks over the unpadded source -> LayerNorm. Decoder: target embeddings + positions -> ``layers``
blocks of causal self-attention, cross-attention to the encoder output and feed-forward -> LayerNorm
-> logits. Training runs the decoder over the whole shifted target at once (teacher forcing);
:meth:`TransformerSeq2Seq.step` decodes one token per call with a key/value cache per block
(:meth:`seqapps.layers.transformer.TransformerBlock.step`), so the exported greedy and beam search
loops never run the prefix again. The interface is :class:`tasks.translation.model.Seq2Seq`'s, so the
serving functions (strings in, strings out, attention weights) are the same.
"""

from __future__ import annotations

import math

import keras
from keras import ops

from seqapps.layers.transformer import SinusoidalPositions, TransformerBlock, check_heads
from seqapps.models.base import SettingsModel


@keras.saving.register_keras_serializable(package="seqapps")
class TransformerSeq2Seq(SettingsModel):
    """``call({"source", "target_in"})`` -> next-token logits ``[batch, time, target_vocab]``.

    ``initial_state(source)`` encodes the source once: the source ``mask``, each decoder block's
    cross-attention keys and values, its empty self-attention cache (``max_target_length`` slots)
    and the ``position`` ``[batch]``. ``step(tokens, state)`` -> ``(logits [batch, vocab], new state,
    {"attention": [batch, source time]})`` (the last block's cross-attention, averaged over heads).
    """

    def __init__(self, source_vocab_size: int, target_vocab_size: int, units: int = 256, layers: int = 3,
                 heads: int = 4, ff_units: int = 0, embedding_dropout: float = 0.1, dropout: float = 0.1,
                 max_target_length: int = 51, **kwargs):
        super().__init__(**kwargs)
        check_heads(int(units), int(heads))
        self.settings = dict(source_vocab_size=int(source_vocab_size), target_vocab_size=int(target_vocab_size),
                             units=int(units), layers=int(layers), heads=int(heads), ff_units=int(ff_units),
                             embedding_dropout=float(embedding_dropout), dropout=float(dropout),
                             max_target_length=int(max_target_length))
        width, ff = int(units), int(ff_units) or 4 * int(units)
        self.width, self.scale = width, math.sqrt(width)
        self.source_embedding = keras.layers.Embedding(int(source_vocab_size), width, name="source_embedding")
        self.target_embedding = keras.layers.Embedding(int(target_vocab_size), width, name="target_embedding")
        self.positions = SinusoidalPositions(name="positions")
        self.source_dropout = keras.layers.Dropout(embedding_dropout, name="source_dropout")
        self.target_dropout = keras.layers.Dropout(embedding_dropout, name="target_dropout")
        self.encoder_blocks = [TransformerBlock(width, int(heads), ff, dropout, name=f"encoder_{i + 1}")
                               for i in range(int(layers))]
        self.decoder_blocks = [TransformerBlock(width, int(heads), ff, dropout, causal=True, cross=True,
                                                name=f"decoder_{i + 1}") for i in range(int(layers))]
        self.encoder_norm = keras.layers.LayerNormalization(epsilon=1e-5, name="encoder_norm")
        self.decoder_norm = keras.layers.LayerNormalization(epsilon=1e-5, name="decoder_norm")
        self.logits_layer = keras.layers.Dense(int(target_vocab_size), dtype="float32", name="logits")
        self._build_parts()

    def _build_parts(self):
        """Create every weight now, so a reloaded model has them before any call."""
        shape = (None, None, self.width)
        self.source_embedding.build((None, None))
        self.target_embedding.build((None, None))
        for block in self.encoder_blocks:
            block.build(shape)
        for block in self.decoder_blocks:
            block.build(shape, shape)
        self.encoder_norm.build(shape)
        self.decoder_norm.build(shape)
        self.logits_layer.build(shape)
        self.built = True

    def _embed(self, embedding, ids, positions=None):
        vectors = embedding(ids)
        return self.positions(vectors * ops.cast(self.scale, vectors.dtype), positions=positions)

    def encode(self, source, training=False):
        """Source ids -> (encoder output ``[batch, time, width]``, mask)."""
        mask = ops.not_equal(source, 0)
        x = self.source_dropout(self._embed(self.source_embedding, source), training=training)
        for block in self.encoder_blocks:
            x = block(x, x_mask=mask, training=training)
        return self.encoder_norm(x), mask

    def call(self, inputs, training=False):
        values, mask = self.encode(inputs["source"], training)
        y = self.target_dropout(self._embed(self.target_embedding, inputs["target_in"]), training=training)
        for block in self.decoder_blocks:  # targets are right-padded: causal attention never reads the padding
            y = block(y, context=values, context_mask=mask, training=training)
        return self.logits_layer(self.decoder_norm(y))

    def initial_state(self, source, training=False):
        values, mask = self.encode(source, training)
        batch = ops.shape(source)[0]
        state = {"mask": mask, "position": ops.zeros((batch,), dtype="int32")}
        for i, block in enumerate(self.decoder_blocks):
            keys = block.context_keys(values)
            cache = block.empty_cache(batch, self.settings["max_target_length"], dtype=values.dtype)
            state.update({f"context_key_{i}": keys["key"], f"context_value_{i}": keys["value"], f"cache_{i}": cache})
        return state

    def step(self, tokens, state, training=False):
        position = state["position"]
        y = self._embed(self.target_embedding, ops.expand_dims(tokens, 1), ops.expand_dims(position, 1))
        new_state, seen = {**state, "position": position + 1}, None
        for i, block in enumerate(self.decoder_blocks):
            y, new_state[f"cache_{i}"], seen = block.step(
                y, state[f"cache_{i}"], position,
                {"key": state[f"context_key_{i}"], "value": state[f"context_value_{i}"]}, state["mask"])
        logits = self.logits_layer(self.decoder_norm(y))[:, 0]
        return logits, new_state, {"attention": ops.mean(seen["cross"], axis=1)[:, 0]}

"""The causal (decoder-only) character transformer, beside the recurrent CharLanguageModel.

Embedding -> ``layers`` pre-norm blocks of causal self-attention with ALiBi relative positions
-> LayerNorm -> logits. It trains on windows of ``context`` characters (``train.bptt``); at
inference :meth:`CharTransformer.step` reads one character at a time with a ring key/value cache
of ``context`` slots per block (:mod:`seqapps.layers.transformer`), so priming, scoring and
sampling read texts of any length through a sliding window of the last ``context`` characters,
and nothing before it (a longer prime is, in effect, cut to its last ``context`` characters).
The interface is the recurrent model's (``initial_state(batch)``, ``step``), so the exported
generate/score/states signatures are the same code; ``"h"`` in the state is each block's output
at the newest character (what ``states`` records).
"""

from __future__ import annotations

import keras
from keras import ops

from seqapps.layers.transformer import TransformerBlock, check_heads
from seqapps.models.base import SettingsModel


@keras.saving.register_keras_serializable(package="seqapps")
class CharTransformer(SettingsModel):
    """``call(ids [batch, time])`` -> logits ``[batch, time, vocab]`` (causal).

    ``initial_state(batch)``: ``{"position": [batch], "h": [batch, layers, units], "cache_i": ...}``;
    ``step(ids [batch], state)`` -> ``(logits [batch, vocab], new state, {})``; with ``record=True`` the
    extras hold ``"attention"`` ``[batch, layers, heads, context]``, each head's weights on the characters
    0, 1, ... context-1 back from this one (and empty ``"gates"``)."""

    def __init__(self, vocab_size: int, units: int = 128, layers: int = 4, heads: int = 4, ff_units: int = 0,
                 dropout: float = 0.0, context: int = 128, **kwargs):
        super().__init__(**kwargs)
        check_heads(int(units), int(heads))
        self.settings = dict(vocab_size=int(vocab_size), units=int(units), layers=int(layers), heads=int(heads),
                             ff_units=int(ff_units), dropout=float(dropout), context=int(context))
        width = int(units)
        self.embedding = keras.layers.Embedding(int(vocab_size), width, name="embedding")
        self.embedding_dropout = keras.layers.Dropout(float(dropout), name="embedding_dropout")
        self.blocks = [TransformerBlock(width, int(heads), int(ff_units) or 4 * width, float(dropout), causal=True,
                                        alibi=True, name=f"block_{i + 1}") for i in range(int(layers))]
        self.norm = keras.layers.LayerNormalization(epsilon=1e-5, name="norm")
        self.logits_layer = keras.layers.Dense(int(vocab_size), dtype="float32", name="logits")
        self.embedding.build((None, None))
        for block in self.blocks:
            block.build((None, None, width))
        self.norm.build((None, None, width))
        self.logits_layer.build((None, width))
        self.built = True

    def call(self, tokens, training=False):
        x = self.embedding_dropout(self.embedding(tokens), training=training)
        for block in self.blocks:
            x = block(x, training=training)
        return self.logits_layer(self.norm(x))

    def initial_state(self, batch_size):
        s = self.settings
        state = {"position": ops.zeros((batch_size,), dtype="int32"),
                 "h": ops.zeros((batch_size, s["layers"], s["units"]))}
        for i, block in enumerate(self.blocks):
            state[f"cache_{i}"] = block.empty_cache(batch_size, s["context"], dtype=block.compute_dtype)
        return state

    def step(self, tokens, state, training=False, record=False):
        position = state["position"]
        x = self.embedding(ops.expand_dims(tokens, 1))
        new_state, hidden, weights = {"position": position + 1}, [], []
        for i, block in enumerate(self.blocks):
            x, new_state[f"cache_{i}"], seen = block.step(x, state[f"cache_{i}"], position)
            hidden.append(ops.cast(x[:, 0], "float32"))
            weights.append(seen["self"][:, :, 0])
        new_state["h"] = ops.stack(hidden, axis=1)
        extras = {}
        if record:  # what inspect reads; generating and scoring never pay for it
            # the weights by distance back from this character (0: itself) rather than by cache slot
            stored = new_state["cache_0"]["positions"]  # every block's ring holds the same positions
            context = self.settings["context"]
            distance = ops.where(stored >= 0, ops.expand_dims(position, 1) - stored, context)  # none: out of range
            back = ops.one_hot(distance, context, dtype="float32")  # [b, slots, context]
            extras["attention"] = ops.einsum("blhs,bsd->blhd", ops.stack(weights, axis=1), back)
            # the recurrent model's gate activations; blocks have none
            extras["gates"] = ops.zeros((ops.shape(tokens)[0], self.settings["layers"], 0, self.settings["units"]))
        return self.logits_layer(self.norm(x))[:, 0], new_state, extras

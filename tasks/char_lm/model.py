"""The character language model: embedding -> stacked unidirectional recurrent layers -> logits.

Training runs the fused recurrent layers over windows of text; with ``batch_size`` set
they are stateful (truncated BPTT: the state is carried from one window to the next,
see :mod:`tasks.char_lm.streams`). Serving never touches that carried state:
:meth:`CharLanguageModel.step` steps the layers' cells one character at a time with an
explicit state, for any batch size.
"""

from __future__ import annotations

import types

import keras
from keras import ops

from seqapps.core.errors import ConfigError
from seqapps.layers import recurrent_layer, state_size
from seqapps.layers.recurrent import cell_gates
from seqapps.models.base import SettingsModel


@keras.saving.register_keras_serializable(package="seqapps")
class CharLanguageModel(SettingsModel):
    """``call(ids [batch, time])`` -> logits ``[batch, time, vocab]``.

    ``initial_state(batch)`` is the zero state ``{"h": [batch, layers, units]}`` (plus
    ``"c"`` for LSTM); ``step(ids [batch], state)`` -> ``(logits [batch, vocab], new state, {})``;
    ``step(..., record=True)`` also returns ``{"gates": [batch, layers, gates, units]}``, the cells'
    gate activations at this character (:func:`seqapps.layers.recurrent.cell_gates`).
    ``batch_size`` > 0 makes the recurrent layers stateful with that batch size.
    """

    def __init__(self, vocab_size: int, cell: str = "lstm", units: int = 256, layers: int = 1,
                 embedding_dim: int = 64, dropout: float = 0.0, recurrent_dropout: float = 0.0,
                 batch_size: int = 0, **kwargs):
        super().__init__(**kwargs)
        if int(layers) < 1:
            raise ConfigError(f"model.layers must be >= 1, got {layers}")
        self.settings = dict(vocab_size=int(vocab_size), cell=cell, units=int(units), layers=int(layers),
                             embedding_dim=int(embedding_dim), dropout=float(dropout),
                             recurrent_dropout=float(recurrent_dropout), batch_size=int(batch_size or 0))
        s = types.SimpleNamespace(**self.settings, bidirectional=False)
        self.is_lstm = state_size(s) == 2
        stateful = s.batch_size > 0
        self.embedding = keras.layers.Embedding(s.vocab_size, s.embedding_dim, name="embedding")
        self.rnns = [recurrent_layer(s, return_sequences=True, stateful=stateful, name=f"rnn_{i + 1}")
                     for i in range(s.layers)]
        self.dropouts = [keras.layers.Dropout(s.dropout, name=f"rnn_{i + 1}_dropout") for i in range(s.layers)]
        self.logits_layer = keras.layers.Dense(s.vocab_size, dtype="float32", name="logits")
        # build every part now (stateful layers need their batch size), so a reloaded model has its weights
        self.embedding.build((None, None))
        width = s.embedding_dim
        for layer in self.rnns:
            layer.build((s.batch_size or None, None, width))
            width = s.units
        self.logits_layer.build((None, s.units))
        self.built = True

    @property
    def cells(self):
        return [layer.cell for layer in self.rnns]

    def initial_state(self, batch_size):
        zeros = ops.zeros((batch_size, self.settings["layers"], self.settings["units"]))
        return {"h": zeros, "c": zeros} if self.is_lstm else {"h": zeros}

    def step(self, tokens, state, training=False, record=False):
        x = self.embedding(tokens)
        hs, cs, opened = [], [], []
        for i, (cell, drop) in enumerate(zip(self.cells, self.dropouts)):
            carried = [state["h"][:, i], state["c"][:, i]] if self.is_lstm else [state["h"][:, i]]
            if record:
                opened.append(cell_gates(cell, x, carried))
            x, new = cell(x, carried, training=training)
            hs.append(new[0])
            if self.is_lstm:
                cs.append(new[1])
            if self.settings["dropout"]:
                x = drop(x, training=training)
        new_state = {"h": ops.stack(hs, axis=1)}
        if self.is_lstm:
            new_state["c"] = ops.stack(cs, axis=1)
        return self.logits_layer(x), new_state, ({"gates": ops.stack(opened, axis=1)} if record else {})

    def call(self, tokens, training=False):
        x = self.embedding(tokens)
        for layer, drop in zip(self.rnns, self.dropouts):
            x = layer(x, training=training)
            if self.settings["dropout"]:
                x = drop(x, training=training)
        return self.logits_layer(x)

    def reset_states(self):
        """Zero the carried state of stateful layers (a no-op otherwise)."""
        for layer in self.rnns:
            if layer.stateful:
                layer.reset_state()

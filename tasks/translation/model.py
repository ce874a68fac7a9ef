"""The encoder-decoder translator: a recurrent encoder, then a decoder with Luong-style attention.

Encoder: embedding -> the shared recurrent stack (bidirectional by default); its final
states, forward and backward side by side, start the decoder. Decoder: one recurrent
layer of the encoder's width over the target embeddings, then attention over the
encoder outputs with the decoder state as the query (``attention``: additive,
multiplicative or none), ``tanh(W [state; context])`` and the output layer. Attention
reads the decoder state after its step, so training runs the decoder as one fused
recurrent layer while :meth:`Seq2Seq.step` steps its cell.

Padding (id 0) is masked explicitly: the embeddings attach no Keras mask, so the logits
carry none and the loss is weighted by the sample weights alone.
"""

from __future__ import annotations

import types

import keras
from keras import ops

from seqapps.core.errors import ConfigError
from seqapps.layers import recurrent_layer, state_size
from seqapps.layers.attention import make_attention
from seqapps.models.base import SettingsModel


@keras.saving.register_keras_serializable(package="seqapps")
class Seq2Seq(SettingsModel):
    """``call({"source", "target_in"})`` -> next-token logits ``[batch, time, target_vocab]``.

    ``initial_state(source)`` encodes the source ids ``[batch, time]`` once and returns the
    decoder's state: ``s0`` (and ``s1`` for LSTM), plus ``values`` (encoder outputs),
    ``mask`` and, for additive attention, the projected ``keys``. ``step(tokens, state)``
    -> ``(logits [batch, vocab], new state, {"attention": [batch, source time]})``.
    """

    def __init__(self, source_vocab_size: int, target_vocab_size: int, cell: str = "gru", units: int = 256,
                 layers: int = 1, bidirectional: bool = True, embedding_dim: int = 256,
                 embedding_dropout: float = 0.1, dropout: float = 0.0, recurrent_dropout: float = 0.0,
                 attention: str = "additive", attention_units: int = 512, output_dropout: float = 0.2, **kwargs):
        super().__init__(**kwargs)
        if int(layers) < 1:
            raise ConfigError(f"model.layers must be >= 1, got {layers}")
        self.settings = dict(
            source_vocab_size=int(source_vocab_size), target_vocab_size=int(target_vocab_size), cell=cell,
            units=int(units), layers=int(layers), bidirectional=bool(bidirectional), embedding_dim=int(embedding_dim),
            embedding_dropout=float(embedding_dropout), dropout=float(dropout),
            recurrent_dropout=float(recurrent_dropout), attention=attention, attention_units=int(attention_units),
            output_dropout=float(output_dropout))
        s = types.SimpleNamespace(**self.settings)
        self.n_states = state_size(s)
        self.width = s.units * (2 if s.bidirectional else 1)
        self.source_embedding = keras.layers.Embedding(s.source_vocab_size, s.embedding_dim, name="source_embedding")
        self.source_dropout = keras.layers.Dropout(s.embedding_dropout, name="source_dropout")
        self.encoders = [recurrent_layer(s, return_sequences=True, return_state=i == s.layers - 1,
                                         name=f"encoder_{i + 1}") for i in range(s.layers)]
        self.encoder_dropouts = [keras.layers.Dropout(s.dropout, name=f"encoder_{i + 1}_dropout")
                                 for i in range(s.layers)]
        self.target_embedding = keras.layers.Embedding(s.target_vocab_size, s.embedding_dim, name="target_embedding")
        self.target_dropout = keras.layers.Dropout(s.embedding_dropout, name="target_dropout")
        self.decoder = recurrent_layer(s, units=self.width, return_sequences=True, bidirectional=False,
                                       name="decoder")
        self.attention = make_attention(attention, s.attention_units, name="attention")
        self.combine = keras.layers.Dense(self.width, activation="tanh", name="combine") \
            if self.attention is not None else None
        self.output_dropout = keras.layers.Dropout(s.output_dropout, name="output_dropout")
        self.logits_layer = keras.layers.Dense(s.target_vocab_size, dtype="float32", name="logits")
        self._build_parts(s)

    def _build_parts(self, s):
        """Create every weight now, so a reloaded model has them before any call."""
        self.source_embedding.build((None, None))
        self.target_embedding.build((None, None))
        width = s.embedding_dim
        for layer in self.encoders:
            layer.build((None, None, width))
            width = self.width
        self.decoder.build((None, None, s.embedding_dim))
        if self.attention is not None:
            self.attention.build((None, self.width), (None, None, self.width))
            self.combine.build((None, 2 * self.width))
        self.logits_layer.build((None, self.width))
        self.built = True

    @property
    def decoder_cell(self):
        return self.decoder.cell

    def encode(self, source, training=False):
        """Source ids -> (encoder outputs [batch, time, width], mask, the decoder's initial states)."""
        mask = ops.not_equal(source, 0)
        x = self.source_dropout(self.source_embedding(source), training=training)
        for layer, drop in zip(self.encoders, self.encoder_dropouts):
            out = layer(x, mask=mask, training=training)
            x, states = (out[0], out[1:]) if isinstance(out, (list, tuple)) else (out, None)
            if self.settings["dropout"]:
                x = drop(x, training=training)
        n = self.n_states
        if self.settings["bidirectional"]:  # [fw states..., bw states...] -> forward and backward side by side
            states = [ops.concatenate([states[j], states[n + j]], axis=-1) for j in range(n)]
        return x, mask, list(states[:n])

    def initial_state(self, source, training=False):
        values, mask, states = self.encode(source, training)
        state = {f"s{j}": s for j, s in enumerate(states)}
        if self.attention is not None:
            state.update(values=values, mask=mask)
            keys = self.attention.project_values(values)
            if keys is not None:
                state["keys"] = keys
        return state

    def _head(self, h, context, training):
        if self.attention is not None:
            h = self.combine(ops.concatenate([h, context], axis=-1))
        return self.logits_layer(self.output_dropout(h, training=training))

    def step(self, tokens, state, training=False):
        x = self.target_dropout(self.target_embedding(tokens), training=training)
        carried = [state[f"s{j}"] for j in range(self.n_states)]
        out, new = self.decoder_cell(x, carried, training=training)
        new_state = {**state, **{f"s{j}": s for j, s in enumerate(new)}}
        extras, context = {}, None
        if self.attention is not None:
            context, weights = self.attention(out, state["values"], mask=state["mask"], keys=state.get("keys"))
            extras = {"attention": weights}
        return self._head(out, context, training), new_state, extras

    def call(self, inputs, training=False):
        source, target = inputs["source"], inputs["target_in"]
        values, mask, states = self.encode(source, training)
        y = self.target_dropout(self.target_embedding(target), training=training)
        # targets are right-padded: the outputs at real steps need no mask (and the logits then carry none)
        h = self.decoder(y, initial_state=states, training=training)
        context = None
        if self.attention is not None:
            context, _ = self.attention(h, values, mask=mask)
        return self._head(h, context, training)

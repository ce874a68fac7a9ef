"""The image captioner: a CNN encoder's feature grid, then a recurrent decoder that attends over it.

Show, Attend and Tell (``attention=additive|multiplicative``), or Show and Tell
(``attention=none``: the pooled image vector starts the decoder and nothing else is
read). One :meth:`ImageCaptioner.step` serves both teacher-forced training (``call``
unrolls it over the given tokens) and the greedy / beam-search loops of the export.

Scheduled sampling (Bengio et al., 2015, ``scheduled_sampling > 0``): in training, each
decoder input after the first is, with probability ``sampling_rate``, the model's own
greedy guess from the step before instead of the reference word, so the decoder learns to
go on from its own mistakes as it must at inference. :class:`SamplingRamp` raises the rate
from 0 to ``scheduled_sampling`` over the first half of the epochs.
"""

from __future__ import annotations

import types

import keras
from keras import ops

from seqapps.encoders import build_encoder
from seqapps.core.errors import ConfigError
from seqapps.layers import recurrent_cell
from seqapps.layers.attention import make_attention
from seqapps.models.base import SettingsModel

@keras.saving.register_keras_serializable(package="seqapps")
class ImageCaptioner(SettingsModel):
    """Encoder + attentive recurrent decoder; ``step`` is the one decoding step used both by
    teacher-forced training (``call``) and by the greedy/beam loops of the export.

    ``call({"features" | "image", "tokens"})`` -> logits ``[batch, time, vocab]``: cached
    encoder features ``[batch, cells, channels]`` or pixels ``[batch, size, size, 3]``.
    """

    def __init__(self, vocab_size: int, encoder: str = "small_cnn", encoder_weights: str = "none",
                 encoder_trainable: bool = True, image_size: int = 64, cell: str = "lstm", units: int = 256,
                 embedding_dim: int = 128, feature_units: int = 256, attention: str = "additive",
                 attention_units: int = 128, dropout: float = 0.3, recurrent_dropout: float = 0.0,
                 context_dropout: float = 0.0, scheduled_sampling: float = 0.0, load_weights: bool = True,
                 **kwargs):
        super().__init__(**kwargs)
        self.settings = dict(vocab_size=int(vocab_size), encoder=encoder, encoder_weights=encoder_weights,
                             encoder_trainable=bool(encoder_trainable), image_size=int(image_size), cell=cell,
                             units=int(units), embedding_dim=int(embedding_dim), feature_units=int(feature_units),
                             attention=attention, attention_units=int(attention_units), dropout=float(dropout),
                             recurrent_dropout=float(recurrent_dropout), context_dropout=float(context_dropout),
                             scheduled_sampling=float(scheduled_sampling))
        s = types.SimpleNamespace(**self.settings)
        self.encoder = build_encoder(encoder, encoder_weights if load_weights else "none", s.image_size)
        self.encoder.trainable = s.encoder_trainable
        _, gh, gw, channels = self.encoder.output_shape
        if not gh or not gw:
            raise ConfigError(f"{encoder} at image size {image_size} gives no fixed feature grid")
        self.grid = (int(gh), int(gw))
        self.channels = int(channels)
        self.is_lstm = cell == "lstm"
        self.feature_proj = keras.layers.Dense(s.feature_units, activation="relu", name="feature_proj")
        self.init_h = keras.layers.Dense(s.units, activation="tanh", name="init_h")
        self.init_c = keras.layers.Dense(s.units, name="init_c") if self.is_lstm else None
        self.embedding = keras.layers.Embedding(s.vocab_size, s.embedding_dim, name="embedding")
        self.attention = make_attention(attention, s.attention_units, name="attention")
        self.cell = recurrent_cell(s, name="decoder_cell")
        self.deep_output = keras.layers.Dense(s.embedding_dim, activation="tanh", name="deep_output")
        self.drop = keras.layers.Dropout(s.dropout, name="dropout")
        # on the attended image context, so the decoder cannot lean on a few feature channels
        self.context_drop = keras.layers.Dropout(s.context_dropout, name="context_dropout")
        self.logits_layer = keras.layers.Dense(s.vocab_size, name="logits", dtype="float32")
        # only with scheduled sampling, so the default model's weights stay as they were
        self.sampling_rate = self.seed_generator = None
        if s.scheduled_sampling > 0:
            self.sampling_rate = self.add_weight(shape=(), initializer="zeros", trainable=False, name="sampling_rate")
            self.seed_generator = keras.random.SeedGenerator(0, name="sampling_seed")
        # build every part now, so a reloaded model has its weights before any call
        context = s.feature_units if self.attention is not None else 0
        self.feature_proj.build((None, None, self.channels))
        self.init_h.build((None, s.feature_units))
        if self.init_c is not None:
            self.init_c.build((None, s.feature_units))
        self.embedding.build((None,))
        if self.attention is not None:
            self.attention.build((None, s.units), (None, None, s.feature_units))
        self.cell.build((None, s.embedding_dim + context))
        self.deep_output.build((None, s.units + context + s.embedding_dim))
        self.logits_layer.build((None, s.embedding_dim))
        self.built = True

    # pieces the serving functions use
    def image_features(self, pixels):
        """Pixels [batch, size, size, 3] in [0, 255] -> [batch, cells, channels]."""
        grid = self.encoder(pixels, training=False)  # batch norm stays in inference mode when fine-tuning
        return ops.reshape(grid, (-1, self.grid[0] * self.grid[1], self.channels))

    def initial_state(self, features):
        """Encoder features -> the decoder's state dict (recurrent state plus the constants it reads)."""
        feats = self.feature_proj(ops.cast(features, "float32"))
        mean = ops.mean(feats, axis=1)
        state = {"h": self.init_h(mean), "features": feats}
        if self.is_lstm:
            state["c"] = self.init_c(mean)
        if self.attention is not None:
            keys = self.attention.project_values(feats)
            if keys is not None:
                state["keys"] = keys
        return state

    def step(self, tokens, state, training=False):
        """One word: tokens [batch] + state -> (logits [batch, vocab], new state, {"attention": [batch, cells]})."""
        emb = self.drop(self.embedding(tokens), training=training)
        h = state["h"]
        extras = {}
        if self.attention is not None:
            context, weights = self.attention(h, state["features"], keys=state.get("keys"))
            context = self.context_drop(context, training=training)
            x = ops.concatenate([emb, context], axis=-1)
            extras = {"attention": weights}
        else:
            x = emb
        carried = [h, state["c"]] if self.is_lstm else [h]
        out, new = self.cell(x, carried, training=training)
        new_state = dict(state, h=new[0])
        if self.is_lstm:
            new_state["c"] = new[1]
        parts = [out, context, emb] if self.attention is not None else [out, emb]
        hidden = self.deep_output(ops.concatenate(parts, axis=-1))
        return self.logits_layer(self.drop(hidden, training=training)), new_state, extras

    def call(self, inputs, training=False):
        features = inputs["features"] if "features" in inputs else self.image_features(inputs["image"])
        tokens = inputs["tokens"]
        state = self.initial_state(features)
        steps = tokens.shape[1]
        if steps is None:
            raise ValueError("ImageCaptioner needs a fixed number of teacher-forced steps")
        outputs = []
        for t in range(steps):
            token = tokens[:, t]
            if training and self.sampling_rate is not None and t > 0:
                token = self._sampled(token, outputs[-1])
            logits, state, _ = self.step(token, state, training)
            outputs.append(logits)
        return ops.stack(outputs, axis=1)

    def _sampled(self, token, previous_logits):
        """The reference ``token`` [batch], or with probability ``sampling_rate`` the greedy
        guess of the step before (padding stays padding; no gradient flows through the guess)."""
        guess = ops.cast(ops.argmax(ops.stop_gradient(previous_logits), axis=-1), token.dtype)
        draw = keras.random.uniform(ops.shape(token), seed=self.seed_generator)
        pick = ops.logical_and(draw < ops.cast(self.sampling_rate, draw.dtype), token > 0)
        return ops.where(pick, guess, token)

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config.setdefault("load_weights", False)  # the saved weights follow
        return cls(**config)


class SamplingRamp(keras.callbacks.Callback):
    """Sets the captioner's scheduled-sampling rate at the start of each epoch: linear from 0
    at the first epoch to ``peak`` at epoch ``epochs // 2``, then ``peak``. (Half-way, not at
    the end: early stopping usually ends training before the last epoch.)"""

    def __init__(self, peak: float, epochs: int):
        super().__init__()
        self.peak, self.epochs, self.full_at = float(peak), int(epochs), max(1, int(epochs) // 2)

    def get_config(self):  # task callbacks are described by class and config (seqapps.training.prepared)
        return {"peak": self.peak, "epochs": self.epochs}

    def rate(self, epoch: int) -> float:
        return self.peak * min(1.0, epoch / self.full_at)

    def on_epoch_begin(self, epoch, logs=None):
        self.model.sampling_rate.assign(self.rate(epoch))

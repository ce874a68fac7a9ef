"""A word-level language model on unlabeled text (``word_vectors`` with ``model.objective=lm``) and a text
task's encoder started from it (``model.encoder_from=RUN_DIR``): ULMFiT's "pretrain, then fine-tune".

The language model reads each line of the text as one sequence of words (ids: 0 padding, 1 a word without
a row, ``2..`` the vocabulary's words, most frequent first): the word embedding (``model.dim`` wide), then
``model.layers`` recurrent layers (``model.cell``, ``model.units``) that predict the next word; with
``model.bidirectional`` (the default) a second stack reads each line from its end and predicts the word
before, as ELMo pairs a forward and a backward model, and both share the embedding and the softmax. Each
direction is laid out as the matching direction of the downstream encoder's ``Bidirectional`` layers
(a backward layer reads the reversed, masked sequence and its outputs are turned back to text order),
so its weights drop into the encoder as they are.

:func:`start_encoder` copies a trained model into a text task's encoder: the embedding rows of the words
both vocabularies hold (and the unknown word's row), and every recurrent layer's kernels. A bidirectional
encoder's layers above the first read both directions' outputs (``2 x units``); the weights that read the
other direction start at zero, so before fine-tuning each direction computes what its language model
does. :class:`EncoderGate` and :class:`UnfreezeEncoder` keep the started encoder frozen for the first
``train.unfreeze_epochs`` epochs (ULMFiT's gradual unfreezing, in two stages: the head, then all).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from seqapps.core.errors import ConfigError
from seqapps.data import text as textlib
from seqapps.layers.recurrent import LAYERS

OBJECTIVES = ("skipgram", "lm")
PAD, UNKNOWN = 0, 1  # the language model's ids; a word's id is its index in the vocabulary + 2
LINE_BUFFER = 10_000  # training lines held for shuffling


# -- the language model ------------------------------------------------------------------------------
@keras.saving.register_keras_serializable(package="seqapps")
class TextOrder(keras.layers.Layer):
    """A backward layer's outputs ``[batch, time, units]`` (last word first) turned back to text order."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, x):
        return keras.ops.flip(x, axis=1)


def _direction(x, mask, m, backward: bool, name: str):
    """``m.layers`` unidirectional layers over ``x`` in text order (a backward layer reads from the end)."""
    for i in range(m.layers):
        layer = LAYERS[m.cell](m.units, return_sequences=True, go_backwards=backward,
                               recurrent_dropout=m.recurrent_dropout, name=f"{name}_{i + 1}")
        x = layer(x, mask=mask)
        if backward:  # outputs come last word first, as Bidirectional's backward layer gives them
            x = TextOrder(name=f"{name}_{i + 1}_order")(x)
        if m.dropout:
            x = keras.layers.Dropout(m.dropout, name=f"{name}_{i + 1}_dropout")(x)
    return x


def build_lm(m, vocab_size: int) -> keras.Model:
    """``tokens [batch, time]`` -> next-word logits ``{"forward": [batch, time, vocab]}`` (and ``"backward"``:
    the previous word's, with ``m.bidirectional``); ``vocab_size`` counts the padding and unknown ids."""
    tokens = keras.Input((None,), dtype="int64", name="tokens")
    mask = keras.ops.not_equal(tokens, PAD)
    x = keras.layers.Embedding(vocab_size, m.dim, name="embedding")(tokens)
    if m.dropout:
        x = keras.layers.Dropout(m.dropout, name="embedding_dropout")(x)
    logits = keras.layers.Dense(vocab_size, dtype="float32", name="logits")
    outputs = {"forward": keras.layers.Identity(name="forward")(logits(_direction(x, mask, m, False, "forward")))}
    if m.bidirectional:
        outputs["backward"] = keras.layers.Identity(name="backward")(
            logits(_direction(x, mask, m, True, "backward")))
    return keras.Model(tokens, outputs, name="word_lm")


def lm_loss():
    """Cross-entropy of the next (previous) word, over the positions that have one (padding ignored)."""
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=PAD)


def word_table(words) -> tf.lookup.StaticHashTable:
    """word -> its language-model id (``2..``; 1 for any other word)."""
    return tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(
        tf.constant(list(words)), tf.range(2, len(words) + 2, dtype=tf.int64)), default_value=UNKNOWN)


def lm_datasets(cfg, prep, splits):
    """Batches of lines as ``(tokens, {"forward": next ids, "backward": previous ids})``, 0 where there is
    no word to predict; lines are cut to ``data.max_length`` words and shuffled (``LINE_BUFFER`` held)."""
    from seqapps.core.errors import DataError

    table, t = word_table(prep.words), cfg.train
    bidirectional = cfg.model.bidirectional

    def encode(lines):
        ids = table.lookup(textlib.words(lines))[:, :cfg.data.max_length]
        tokens = ids.to_tensor(PAD)
        targets = {"forward": tf.pad(tokens[:, 1:], [[0, 0], [0, 1]])}
        if bidirectional:
            targets["backward"] = tf.pad(tokens[:, :-1], [[0, 0], [1, 0]])
        return tokens, targets

    def make(stream, training):
        if stream.n == 0:
            raise DataError(f"{cfg.data.source}: the {stream.role} split has no lines; raise data.val_fraction")
        ds = tf.data.Dataset.from_generator(stream.rows, output_signature=tf.TensorSpec([], tf.string))
        if training:
            ds = ds.shuffle(LINE_BUFFER, seed=t.seed)
        ds = ds.batch(t.batch_size).map(encode, num_parallel_calls=tf.data.AUTOTUNE)
        return ds.prefetch(tf.data.AUTOTUNE)

    return make(splits.train, True), make(splits.val, False)


def word_rows(model: keras.Model):
    """The unknown word's row, then one row per vocabulary word (the word_vectors ids' order)."""
    if any(layer.name == "skip_gram" for layer in model.layers):
        return model.get_layer("skip_gram").vectors
    return model.get_layer("embedding").embeddings[UNKNOWN:]


# -- starting a text task's encoder from it -------------------------------------------------------------
class LanguageModelRun:
    """A trained language model's settings (``model`` of its config), words and weights, from its run directory."""

    def __init__(self, spec: str):
        path = Path(spec).expanduser()
        self.path = path
        info, config = path / "run.json", path / "config.json"
        if not (info.is_file() and config.is_file()):
            raise ConfigError(f"model.encoder_from={spec}: not a run directory (no run.json and config.json); "
                              "expected a language-model run (train word_vectors --set model.objective=lm)")
        task = json.loads(info.read_text()).get("task")
        self.model_cfg = json.loads(config.read_text()).get("model", {})
        if task != "word_vectors" or self.model_cfg.get("objective", "skipgram") != "lm":
            raise ConfigError(f"model.encoder_from={spec}: a {task} run"
                              f"{' of skip-gram vectors' if task == 'word_vectors' else ''}, not a language model; "
                              "train one with: train word_vectors --set model.objective=lm (or read vectors "
                              "with model.word_vectors)")
        if not (path / "best.keras").is_file() or not (path / "words.txt").is_file():
            raise ConfigError(f"model.encoder_from={spec}: the run has no checkpoint yet (best.keras); "
                              "train it at least one epoch")

    def check(self, m) -> None:
        """One line naming each setting the encoder ``m`` (a text task's model config) differs in."""
        if getattr(m, "architecture", "rnn") != "rnn":
            raise ConfigError(f"model.encoder_from needs the recurrent encoder (model.architecture=rnn); "
                              f"got {m.architecture}")
        lm = self.model_cfg
        wrong = [f"model.{key}={getattr(m, key)} (the language model's: {lm.get(key)})"
                 for key in ("cell", "units", "layers") if getattr(m, key) != lm.get(key)]
        if m.bidirectional and not lm.get("bidirectional"):
            wrong.append("model.bidirectional=true (the language model reads forward only; train it with "
                         "model.bidirectional=true)")
        if wrong:
            raise ConfigError(f"model.encoder_from={self.path}: the encoder does not match the language model: "
                              + "; ".join(wrong))

    @property
    def dim(self) -> int:
        return int(self.model_cfg["dim"])

    def weights(self) -> tuple[list[str], np.ndarray, dict]:
        """(its words, its embedding ``[2 + words, dim]``, each direction's layers' weights)."""
        model = keras.saving.load_model(self.path / "best.keras", compile=False)
        words = textlib.load_lines(self.path / "words.txt")
        layers = {d: [model.get_layer(f"{d}_{i + 1}").get_weights() for i in range(int(self.model_cfg["layers"]))]
                  for d in ("forward", "backward") if any(layer.name == f"{d}_1" for layer in model.layers)}
        return words, keras.ops.convert_to_numpy(model.get_layer("embedding").embeddings), layers


def start_encoder(model: keras.Model, vocabulary: list[str], spec: str, m, name: str = "encoder",
                  embedding: str = "embedding", verbose: bool = True) -> dict:
    """Copy the language model of run ``spec`` into ``model`` (built with ``m``, its recurrent stack named
    ``name_1..``, its word embedding ``embedding`` over ``vocabulary``: padding, unknown, words): the rows of
    the words both know and the unknown row (the others keep their fresh start), then every recurrent layer.
    Prints and returns the coverage."""
    lm = LanguageModelRun(spec)
    lm.check(m)
    words, table, layers = lm.weights()
    index = {w: i + 2 for i, w in enumerate(words)}
    target = model.get_layer(embedding)
    rows = keras.ops.convert_to_numpy(target.embeddings).copy()
    if rows.shape[1] != table.shape[1]:
        raise ConfigError(f"model.encoder_from={spec}: the word embedding is {rows.shape[1]} wide, the language "
                          f"model's {table.shape[1]}")
    known = [(i, index[w]) for i, w in enumerate(vocabulary) if i >= 2 and w in index]
    if known:
        mine, theirs = zip(*known)
        rows[list(mine)] = table[list(theirs)]
    rows[UNKNOWN] = table[UNKNOWN]
    target.embeddings.assign(rows)
    for i in range(m.layers):
        layer = model.get_layer(f"{name}_{i + 1}")
        if m.bidirectional:
            _assign(layer.forward_layer, layers["forward"][i], 0, i > 0)
            _assign(layer.backward_layer, layers["backward"][i], 1, i > 0)
        else:
            _assign(layer, layers["forward"][i], 0, False)
    words_total = max(len(vocabulary) - 2, 0)
    coverage = {"words": words_total, "covered": len(known), "layers": m.layers}
    if verbose:
        share = len(known) / words_total if words_total else 0.0
        print(f"encoder from {spec}: {len(known):,} of {words_total:,} vocabulary words ({share:.1%}) have the "
              f"language model's rows (the others start fresh); {m.layers} {m.cell} layer(s) of {m.units} units"
              f"{' in both directions' if m.bidirectional else ''} copied", file=sys.stderr)
    return coverage


def _assign(layer, weights, half: int, both: bool) -> None:
    """``weights`` (kernel, recurrent kernel, bias...) into ``layer``; with ``both`` the layer reads both
    directions' outputs and ``weights`` fill the kernel rows of direction ``half`` (the others zero)."""
    kernel, *rest = weights
    if both:
        full = np.zeros((2 * kernel.shape[0], kernel.shape[1]), kernel.dtype)
        full[half * kernel.shape[0]:(half + 1) * kernel.shape[0]] = kernel
        kernel = full
    layer.set_weights([kernel, *rest])


# -- gradual unfreezing --------------------------------------------------------------------------------
@keras.saving.register_keras_serializable(package="seqapps")
class EncoderGate(keras.layers.Layer):
    """The identity, whose gradient is let through only while ``open`` is 1: with 0 nothing before it
    learns (Adam moves no weight whose gradients have all been zero)."""

    def build(self, input_shape):
        self.open = self.add_weight(name="open", shape=(), initializer="ones", trainable=False)
        self.built = True

    def call(self, x, mask=None):
        gate = keras.ops.cast(self.open, x.dtype)
        return gate * x + (1 - gate) * keras.ops.stop_gradient(x)

    def compute_mask(self, x, mask=None):
        return mask


class UnfreezeEncoder(keras.callbacks.Callback):
    """Shuts the model's :class:`EncoderGate` for the first ``epochs`` epochs and opens it after (set as each
    epoch starts, so a resumed run gets the state of the epoch it resumes; checkpoints hold the gate as their
    epoch had it, which serving never reads)."""

    def __init__(self, epochs: int = 0, layer: str = "encoder_gate"):
        super().__init__()
        self.epochs, self.layer = int(epochs), layer

    def get_config(self):
        return {"epochs": self.epochs, "layer": self.layer}

    def on_epoch_begin(self, epoch, logs=None):
        self.model.get_layer(self.layer).open.assign(1.0 if epoch >= self.epochs else 0.0)

"""pos — many-to-many, aligned: a sentence in, one part-of-speech tag per word out.

Each word is represented by a (lower-cased) word embedding and a character-level
encoding of its spelling (a char CNN with max pooling, or a char BiLSTM), so words
never seen in training are tagged from their prefixes, suffixes, case and digits. The
shared recurrent stack (a bidirectional LSTM by default) reads the sentence; a dense
layer scores the tags of every word, decoded either independently (softmax) or jointly
by a linear-chain CRF with Viterbi decoding (``--set model.crf=true``).

Serving (both in the exported graph):

- ``serving_default``: ``text: tf.string [batch]`` raw sentences, tokenized in the graph
  by :func:`tokenize`;
- ``tag_tokens``: ``tokens: tf.string [batch, time]`` pre-tokenized sentences, padded
  with ``""`` on the right.

Both return ``tokens`` and ``tags`` (``tf.string [batch, time]``, padded with ``""``),
``lengths`` (``int32 [batch]``) and ``in_vocabulary`` (``bool [batch, time]``: the
word's lower-cased form was in the training vocabulary).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from seqapps.config import Config, DataConfig, ModelConfig, TrainConfig
from seqapps.data.conllu import TAGSETS
from seqapps.data.pipeline import bucketed_batches
from seqapps.data.tagged import (TaggerData, load_tagged_sentences, pad_tokens, token_lengths, tokenize,
                                 word_vectors_file)
from seqapps.data.vectors import read_vectors
from seqapps.errors import ConfigError, DataError
from seqapps.layers import recurrent_stack
from seqapps.layers.crf import CRF, CRFLoss, viterbi_decode
from seqapps.metrics import format_tagging, tagging_report
from seqapps.presets import Preset
from seqapps.predict import Predictor
from seqapps.registry import register
from seqapps.task import Endpoint, Task

# -- configuration ------------------------------------------------------------------------


@dataclasses.dataclass
class PosData(DataConfig):
    tagset: str = "upos"        # upos | xpos (CoNLL-U column); other formats have one tag column
    vocab_size: int = 50000     # most frequent lower-cased training words kept
    min_count: int = 1          # words seen fewer times in training are out of vocabulary
    max_word_length: int = 16   # characters per word; longer words keep their first and last 8


@dataclasses.dataclass
class PosModel(ModelConfig):
    units: int = 128
    embedding_dim: int = 100
    char_encoder: str = "cnn"   # cnn | rnn | none
    char_dim: int = 32
    char_features: int = 64     # CNN filters, or BiLSTM units in total
    char_kernel: int = 3
    embedding_dropout: float = 0.33
    word_dropout: float = 0.25  # alpha: a training word seen c times reads as unknown with p = alpha / (alpha + c)
    dropout: float = 0.33
    crf: bool = False
    word_vectors: str = ""      # a word2vec/GloVe text file: frozen vectors beside the trained embedding


@dataclasses.dataclass
class PosTrain(TrainConfig):
    epochs: int = 30
    batch_size: int = 32
    learning_rate: float = 2e-3
    patience: int = 5


@dataclasses.dataclass
class PosConfig(Config):
    data: PosData = dataclasses.field(default_factory=PosData)
    model: PosModel = dataclasses.field(default_factory=PosModel)
    train: PosTrain = dataclasses.field(default_factory=PosTrain)


# -- model pieces ------------------------------------------------------------------------------


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


@keras.saving.register_keras_serializable(package="seqapps")
class MaskedTagLoss(keras.losses.Loss):
    """Cross-entropy of per-token tag scores; targets ``1..K``, ``0`` = padding (ignored).
    The mean is over real tokens only."""

    def __init__(self, name="tag_loss", reduction="sum_over_batch_size", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, "int32")
        mask = y_true > 0
        losses = keras.losses.sparse_categorical_crossentropy(ops.maximum(y_true - 1, 0), y_pred, from_logits=True)
        losses = ops.where(mask, losses, 0.0)
        return losses

    def get_config(self):
        return {"name": self.name, "reduction": self.reduction}


@keras.saving.register_keras_serializable(package="seqapps")
class TagAccuracy(keras.metrics.Metric):
    """Token accuracy over real tokens (targets ``0`` are padding). ``crf=True`` reads CRF
    potentials and Viterbi-decodes them; otherwise the argmax of per-token scores."""

    def __init__(self, crf: bool = False, name="accuracy", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.crf = crf
        self.correct = self.add_variable((), initializer="zeros", name="correct")
        self.total = self.add_variable((), initializer="zeros", name="total")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = ops.cast(y_true, "int32")
        mask = y_true > 0
        predicted = viterbi_decode(y_pred, mask)[0] if self.crf else ops.cast(ops.argmax(y_pred, axis=-1), "int32")
        hits = ops.logical_and(mask, ops.equal(predicted + 1, y_true))
        self.correct.assign_add(ops.cast(ops.sum(ops.cast(hits, "int32")), self.dtype))
        self.total.assign_add(ops.cast(ops.sum(ops.cast(mask, "int32")), self.dtype))

    def result(self):
        return ops.divide_no_nan(self.correct, self.total)

    def reset_state(self):
        self.correct.assign(0.0)
        self.total.assign(0.0)

    def get_config(self):
        return {"crf": self.crf, "name": self.name, "dtype": self.dtype}


def _vector_dim(prep, m) -> int:
    """The vectors' width: from the matrix when fitted, else (resuming) from the file's first row."""
    matrix = prep.vector_matrix if prep.vector_matrix is not None else read_vectors(word_vectors_file(m.word_vectors), limit=1)[1]
    return int(matrix.shape[1])


# -- predictor ------------------------------------------------------------------------------


class PosPredictor(Predictor):
    def analyze(self, inputs, batch_size: int = 128) -> list[dict]:
        """``[{"tokens": [...], "tags": [...], "in_vocabulary": [...]}, ...]`` for raw strings
        (tokenized in the graph) or token lists (tagged as given); batches by length."""
        results = [None] * len(inputs)
        groups = {"serving_default": [], "tag_tokens": []}
        for i, item in enumerate(inputs):
            if isinstance(item, str):
                groups["serving_default"].append(i)
            elif isinstance(item, (list, tuple)) and all(isinstance(t, str) for t in item):
                groups["tag_tokens"].append(i)
            else:
                raise DataError(f"input {i}: expected a sentence (str) or a list of tokens, got {type(item).__name__}")
        for signature, idx in groups.items():
            idx = sorted(idx, key=lambda i: len(inputs[i]))
            for start in range(0, len(idx), batch_size):
                chunk = idx[start:start + batch_size]
                if signature == "serving_default":
                    out = self.call(signature, text=[inputs[i] for i in chunk])
                else:
                    # "" would read as padding: a real empty token is passed as one space
                    rows = [[t if t else " " for t in inputs[i]] for i in chunk]
                    width = max([len(r) for r in rows] + [1])
                    out = self.call(signature, tokens=np.array([r + [""] * (width - len(r)) for r in rows],
                                                               dtype=object))
                for row, i in enumerate(chunk):
                    n = int(out["lengths"][row])
                    tokens = [t.decode("utf-8", "replace") for t in out["tokens"][row][:n]]
                    if signature == "tag_tokens":
                        tokens = list(inputs[i])
                    results[i] = {"tokens": tokens,
                                  "tags": [t.decode("utf-8") for t in out["tags"][row][:n]],
                                  "in_vocabulary": [bool(k) for k in out["in_vocabulary"][row][:n]]}
        return results

    def predict(self, inputs, batch_size: int = 128) -> list[list[tuple[str, str]]]:
        """One ``[(word, tag), ...]`` list per input (a sentence string or a token list)."""
        return [list(zip(r["tokens"], r["tags"])) for r in self.analyze(list(inputs), batch_size)]

    def format(self, inputs, results):
        return [" ".join(f"{w}/{t}" for w, t in pairs) for pairs in results]


# -- the task --------------------------------------------------------------------------------


@register
class Pos(Task):
    name = "pos"
    topology = "many-to-many (aligned)"
    description = "sentence -> one part-of-speech tag per word (char-aware BiRNN, optional CRF)"
    default_data = "ud_english_ewt"
    config_class = PosConfig
    monitor, monitor_mode = "val_accuracy", "max"
    predictor_class = PosPredictor
    prep_class = TaggerData
    choices = {"data.tagset": TAGSETS, "model.char_encoder": ("cnn", "rnn", "none")}
    presets = (
        # EWT's 22k training tokens leave 16% of test tokens unseen: a CRF, strong rare-word dropout, weight
        # averaging and frozen count vectors from the other datasets' unlabeled English text (no EWT text)
        Preset("ewt", "CRF, word dropout 2, EMA 0.99, count vectors from unlabeled text, up to 30 epochs",
               ("train.epochs=30", "train.patience=5", "model.crf=true", "model.word_dropout=2.0", "train.ema=0.99",
                "model.word_vectors=count:sst2+anki_fra_eng+tinyshakespeare", "train.backup_every=0"),
               data="ud_english_ewt"),
        Preset("atis", "task defaults, up to 15 epochs", ("train.epochs=15", "train.patience=3",
                                                         "train.backup_every=0"), data="ud_english_atis"),
    )

    def load_data(self, cfg, data_dir=None):
        return load_tagged_sentences(cfg.data, self.name, data_dir)

    def datasets(self, cfg, prep, splits):
        def make(sentences, shuffle):
            sentences = [(w, t) for w, t in sentences if w]
            lengths = np.array([len(w) for w, _ in sentences], dtype=np.int64)
            tokens = tf.ragged.constant([w for w, _ in sentences], dtype=tf.string).to_tensor("")
            feats = prep.encode(pad_tokens(tokens), tf.constant(lengths))
            feats = {k: tf.RaggedTensor.from_tensor(v, lengths=lengths) for k, v in feats.items()}
            tags = tf.ragged.constant(prep.tag_ids([t for _, t in sentences]), dtype=tf.int32)
            ds = bucketed_batches(feats, tags, lengths, cfg.train.batch_size, shuffle=shuffle, seed=cfg.train.seed)
            if shuffle and cfg.model.word_dropout > 0:
                # rare words are dropped most often: they are the ones that look like unseen words
                counts = Counter(w.lower() for words, _ in sentences for w in words)
                alpha = cfg.model.word_dropout
                rates = tf.constant([0.0, 0.0] + [alpha / (alpha + counts.get(w, 0) + 1e-9) for w in prep.words],
                                    tf.float32)

                def drop(x, y):
                    words = x["words"]
                    hit = tf.random.uniform(tf.shape(words)) < tf.gather(rates, words)
                    return {**x, "words": tf.where(hit, tf.ones_like(words), words)}, y
                ds = ds.map(drop)
            return ds
        return make(splits.train, True), make(splits.val, False)

    def build_model(self, cfg, prep):
        m = cfg.model
        if m.char_encoder not in ("cnn", "rnn", "none"):
            raise ConfigError(f"model.char_encoder must be cnn, rnn or none, got {m.char_encoder!r}")
        words = keras.Input((None,), dtype="int64", name="words")
        chars = keras.Input((None, prep.max_word_length), dtype="int64", name="chars")
        inputs = {"words": words, "chars": chars}
        parts = [keras.layers.Embedding(len(prep.words) + 2, m.embedding_dim, name="word_embedding")(words)]
        vectors = None
        if prep.vector_words:  # frozen pretrained vectors: unseen words keep what they were given
            inputs["vectors"] = keras.Input((None,), dtype="int64", name="vectors")
            vectors = keras.layers.Embedding(len(prep.vector_words) + 2, _vector_dim(prep, m), trainable=False,
                                             name="word_vectors")
            parts.append(vectors(inputs["vectors"]))
        if m.char_encoder != "none":
            parts.append(CharWordEncoder(len(prep.chars) + 2, m.char_dim, m.char_features, m.char_kernel,
                                         m.char_encoder, name="char_encoder")(chars))
        x = keras.layers.Concatenate(name="word_features")(parts) if len(parts) > 1 else parts[0]
        x = keras.layers.Dropout(m.embedding_dropout, name="embedding_dropout")(x)
        mask = ops.not_equal(words, 0)
        x = recurrent_stack(x, m, return_sequences=True, name="encoder", mask=mask)
        scores = keras.layers.Dense(len(prep.tags), dtype="float32", name="scores")(x)
        out = CRF(len(prep.tags), name="crf")(scores, mask=mask) if m.crf else scores
        model = keras.Model(inputs, out, name="pos_tagger")
        if vectors is not None and prep.vector_matrix is not None:
            matrix = prep.vector_matrix
            vectors.set_weights([np.concatenate([np.zeros((2, matrix.shape[1]), np.float32), matrix])])
        return model

    def compile(self, model, cfg, optimizer, prep):
        crf = cfg.model.crf
        model.compile(optimizer=optimizer, loss=CRFLoss() if crf else MaskedTagLoss(), metrics=[TagAccuracy(crf)])

    def endpoints(self, model, prep, cfg):
        tags = tf.constant(prep.tags)
        crf = cfg.model.crf

        def tag(tokens, lengths):
            tokens = pad_tokens(tokens)
            lengths = tf.cast(lengths, tf.int32)
            feats = prep.encode(tokens, lengths)
            out = model(feats, training=False)
            mask = tf.sequence_mask(lengths, tf.shape(tokens)[1])
            ids = viterbi_decode(out, mask)[0] if crf else tf.argmax(out, axis=-1, output_type=tf.int32)
            return {"tokens": tf.where(mask, tokens, ""),
                    "tags": tf.where(mask, tf.gather(tags, tf.maximum(ids, 0)), ""),
                    "lengths": lengths,
                    "in_vocabulary": tf.logical_and(mask, feats["words"] > 1)}

        def serve_text(text):
            ragged = tokenize(text)
            return tag(ragged.to_tensor(""), ragged.row_lengths())

        def serve_tokens(tokens):
            return tag(tokens, token_lengths(tokens))

        outputs = "tokens, tags (tf.string [batch, time], padded with ''), lengths (int32 [batch]), in_vocabulary"
        return {
            "serving_default": Endpoint(serve_text, [tf.TensorSpec([None], tf.string, name="text")],
                                        f"raw sentences, tokenized in the graph -> {outputs}"),
            "tag_tokens": Endpoint(serve_tokens, [tf.TensorSpec([None, None], tf.string, name="tokens")],
                                   f"pre-tokenized sentences padded with '' -> {outputs}"),
        }

    def trackables(self, prep):
        return [layer for layer in prep.lookups if layer is not None]

    def metadata(self, prep):
        return {"tags": prep.tags, "vocabulary_size": len(prep.words), "characters": len(prep.chars),
                "word_vectors": len(prep.vector_words),
                "max_word_length": prep.max_word_length,
                "tokenizer": " ".join(tokenize.__doc__.split("\n", 1)[1].split())}

    def evaluate(self, predictor, examples, cfg, out_dir=None, plot=False):
        examples = [(w, t) for w, t in examples if w]
        results = predictor.analyze([w for w, _ in examples])
        report = tagging_report([t for _, t in examples], [r["tags"] for r in results],
                                predictor.metadata["tags"], oov=[[not k for k in r["in_vocabulary"]]
                                                                 for r in results])
        if out_dir is not None:
            from seqapps.viz import plot_confusion

            Path(out_dir).mkdir(parents=True, exist_ok=True)
            plot_confusion(report["confusion_matrix"]["matrix"], report["confusion_matrix"]["labels"],
                           Path(out_dir) / "confusion.png", title="POS confusion matrix")
        return report

    def format_metrics(self, metrics):
        return format_tagging(metrics)

    tiny_overrides = ["model.units=8", "model.embedding_dim=8", "model.char_dim=4", "model.char_features=8",
                      "train.epochs=1", "train.patience=0"]

    def sample_inputs(self, rng, n, metadata, signature="serving_default"):
        from seqapps.testing import random_texts

        texts = random_texts(rng, n)
        if signature == "tag_tokens":  # token lists; an inner "" is a token, trailing ones are padding
            return [{"tokens": [t if rng.random() > 0.1 else "" for t in s.split()]} for s in texts]
        return [{"text": t} for t in texts]

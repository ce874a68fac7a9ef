"""sentiment — many-to-one: a text in, a label and class probabilities out.

Word embedding (``model.word_vectors``: started from pretrained vectors, frozen unless
``model.word_vectors_trainable``) plus hashed character n-gram vectors -> the shared recurrent stack (bidirectional LSTM by default) -> masked
max+mean pooling over time -> dropout -> softmax. Text vectorization lives in the
exported graph, so the export takes raw strings.

``--set model.encoder_from=RUN_DIR`` starts the word embedding and the recurrent stack from a word-level
language model (a ``word_vectors`` run with ``model.objective=lm``: :mod:`tasks.word_vectors.lm`), frozen
for the first ``train.unfreeze_epochs`` epochs.

``--set model.architecture=transformer`` replaces the recurrent stack by ``model.layers``
pre-norm self-attention blocks of width ``model.units`` (``model.heads`` heads, ``model.ff_units``
feed-forward units, sinusoidal positions, padding masked), pooled the same way.

``--set model.architecture=bag`` is the one-to-one, fastText-style baseline: the masked
mean (``model.bag_pooling=sum``: sum) of the same word vectors, then ``model.layers``
dense layers of ``model.units`` (ReLU, ``model.dropout``) -> dropout -> softmax; word
order plays no part (``cell``, ``bidirectional`` and ``pooling`` are not used). The
inputs, the export and its signatures are the same for both architectures.
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from seqapps.core.config import (AT_LEAST_0, AT_LEAST_1, FRACTION, Config, DataConfig, ModelConfig, TrainConfig,
                            TransformerConfig)
from seqapps.core import bounds
from seqapps.data import text as textlib
from seqapps.inference.chunks import in_chunks
from tasks.sentiment.data import TextClassificationData, load_labelled_stream
from seqapps.core.errors import ConfigError, DataError
from seqapps.data.streaming import bucketed_stream, chunked
from seqapps.layers import MaskedPooling
from seqapps.layers.bag import BAG_POOLING, bag_of_vectors
from seqapps.layers.transformer import ARCHITECTURES, sequence_encoder
from seqapps.layers.subwords import SubwordEmbedding, dense_char_ngram_ids
from seqapps.analysis.metrics import classification_report, format_classification
from seqapps.core.presets import Preset
from seqapps.inference.predictor import Predictor, SelfAttentionMaps
from tasks.sentiment.predicting import Predictions
from tasks.word_vectors.lm import EncoderGate, LanguageModelRun, UnfreezeEncoder, start_encoder
from seqapps.core.registry import register
from seqapps.inference.self_attention import self_attention_endpoint
from seqapps.core.task import Endpoint, Task


@dataclasses.dataclass
class SentimentData(DataConfig):
    text_column: str = ""       # empty: the first of sentence, text, review, content
    label_column: str = ""      # empty: the first of label, sentiment, class, polarity
    label_names: list[str] = dataclasses.field(default_factory=list)  # names for integer labels 0..k-1
    vocab_size: int = 20000


@dataclasses.dataclass
class SentimentModel(TransformerConfig, ModelConfig):
    architecture: str = "rnn"   # rnn (the recurrent stack) | transformer (self-attention) | bag (no word order)
    bag_pooling: str = "mean"   # bag: mean | sum of the word vectors
    units: int = 64             # rnn: units per direction; transformer: the width; bag: the MLP's width
    embedding_dim: int = 128
    embedding_dropout: float = 0.3
    word_dropout: float = 0.0   # drop whole words (their embedding) during training
    subwords: bool = True       # add hashed character n-gram vectors (unseen words get one too)
    subword_buckets: int = 30000
    subword_dim: int = 0        # > 0: the n-gram table's width, its mean projected to embedding_dim (a faster step)
    pooling: str = "max_mean"   # rnn: last | max | mean | max_mean; transformer: max | mean | max_mean
    head_dropout: float = 0.5
    # a word2vec/GloVe/fastText text file, word2vec's binary format, a word_vectors run directory or
    # count:DATASETS: the word embedding starts from these vectors (and takes their width)
    word_vectors: str = ""
    word_vectors_trainable: bool = False  # fine-tune the vectors; false: they stay as read
    # a language-model run (word_vectors with model.objective=lm, the same cell, units and layers): the word
    # embedding (its rows of the words both know) and the recurrent layers start from it
    encoder_from: str = ""


@dataclasses.dataclass
class SentimentTrain(TrainConfig):
    epochs: int = 3
    batch_size: int = 64
    patience: int = 2
    unfreeze_epochs: int = 0    # with model.encoder_from: the started encoder stays frozen this many epochs

@dataclasses.dataclass
class SentimentConfig(Config):
    data: SentimentData = dataclasses.field(default_factory=SentimentData)
    model: SentimentModel = dataclasses.field(default_factory=SentimentModel)
    train: SentimentTrain = dataclasses.field(default_factory=SentimentTrain)


class SentimentPredictor(SelfAttentionMaps, Predictions, Predictor):
    """``predict(texts)`` (:class:`tasks.sentiment.predicting.Predictions`) and ``self_attention(texts)``."""


#: n-grams per word in a training batch (char_ngram_ids keeps at most this many)
SUBWORD_GRAMS = 40


def chunk_rows(model, max_length: int) -> int:
    """Rows answered at once by the export: as many as keep the n-gram vectors gathered for their
    mean within ``bounds.SUBWORD_VALUES`` numbers (every row, without n-grams)."""
    layers = [layer for layer in model.layers if isinstance(layer, SubwordEmbedding)]
    if not layers:
        return bounds.ROWS
    return max(1, bounds.SUBWORD_VALUES // (max_length * SUBWORD_GRAMS * layers[0].dim))


def _pad_time(x, width, value):
    """``x`` [batch, time, ...] padded with ``value`` to ``width`` time steps."""
    pad = tf.maximum(0, tf.cast(width, tf.int32) - tf.shape(x)[1])
    return tf.pad(x, tf.concat([[[0, 0], [0, pad]], tf.zeros([tf.rank(x) - 2, 2], tf.int32)], 0),
                  constant_values=value)


@register
class Sentiment(Task):
    name = "sentiment"
    topology = "many-to-one"
    description = "text -> label and class probabilities"
    default_data = "sst2"
    config_class = SentimentConfig
    monitor, monitor_mode = "val_accuracy", "max"
    predictor_class = SentimentPredictor
    prep_class = TextClassificationData
    choices = {"model.architecture": (*ARCHITECTURES, "bag"), "model.bag_pooling": BAG_POOLING}
    ranges = {"model.subword_buckets": AT_LEAST_1, "model.subword_dim": AT_LEAST_0, "model.word_dropout": FRACTION,
              "model.head_dropout": FRACTION, "train.unfreeze_epochs": AT_LEAST_0}
    presets = (Preset("sst2", "batch 256, Adam 2e-3 with cosine decay, a 32-wide n-gram table, 3 epochs, best by dev "
                      "accuracy", ("train.batch_size=256", "train.learning_rate=0.002", "train.decay=cosine",
                                   "model.subword_dim=32"), data="sst2"),
               Preset("bag", "the one-to-one baseline: the defaults with the bag encoder (mean of the word + "
                      "subword vectors, one ReLU layer of 64)", ("model.architecture=bag",)))

    def validate(self, cfg):
        super().validate(cfg)
        m = cfg.model
        if m.architecture == "transformer" and m.pooling == "last":
            raise ConfigError("model.pooling=last reads a recurrent layer's final state; the transformer "
                              "pools its outputs: max, mean or max_mean")
        if m.encoder_from:
            if m.word_vectors:
                raise ConfigError("model.word_vectors and model.encoder_from both start the word embedding; "
                                  "set one (a language model's run brings its own word vectors)")
            LanguageModelRun(m.encoder_from).check(m)  # a wrong run or a mismatch fails before a run starts
        elif cfg.train.unfreeze_epochs:
            raise ConfigError("train.unfreeze_epochs keeps an encoder started from model.encoder_from frozen; "
                              "set model.encoder_from too")

    def load_data(self, cfg, data_dir=None):
        """Streamed splits (:class:`tasks.sentiment.data.LabelledStream`); the fitting pass runs
        (or is read from its cache) here, so bad data fails before anything is written."""
        return load_labelled_stream(cfg.data, self.name, data_dir)

    def encoder(self, cfg, prep, pipeline: bool = False):
        """``encode(text, width=None) -> (model inputs, words)`` for a batch of raw texts: the one
        function training (in tf.data) and the export's signatures both run. With ``width``, the
        time axis is padded to ``width`` and the n-gram axis to its maximum (fixed batch shapes).

        The word ids come from the export's TextVectorization layer, or, with ``pipeline`` (inside
        tf.data, where Keras layers need the TensorFlow backend), from the same vocabulary's lookup
        table in plain TF ops; the two give the same ids (tests/data/test_streaming.py)."""
        if pipeline:
            ragged = prep.ragged_ids()

            def vectorizer(text):
                return ragged(text).to_tensor(0)
        else:
            vectorizer = prep.vectorizer()

        def encode(text, width=None):
            words = textlib.clip_and_pad(textlib.words(text).to_tensor(""), prep.max_length, pad_value="")
            tokens = textlib.clip_and_pad(vectorizer(text), prep.max_length)
            if width is not None:
                words, tokens = _pad_time(words, width, ""), _pad_time(tokens, width, 0)
            inputs = {"tokens": tokens}
            if cfg.model.subwords:
                grams = dense_char_ngram_ids(words, cfg.model.subword_buckets)
                if width is not None:
                    grams = tf.pad(grams, [[0, 0], [0, 0], [0, SUBWORD_GRAMS - tf.shape(grams)[2]]])
                    grams = tf.ensure_shape(grams, [None, None, SUBWORD_GRAMS])
                inputs["subwords"] = grams
            return inputs, words

        return encode

    def datasets(self, cfg, prep, splits):
        encode, index = self.encoder(cfg, prep, pipeline=True), prep.label_ids()
        longest = splits.info["fit"]["longest"]
        max_length = prep.max_length

        def make(stream, training):
            def rows():
                return chunked(((text, index[label]) for text, label in stream.rows()), (object, np.int32))

            def lengths(text, y):
                return tf.minimum(textlib.words(text).row_lengths(), max_length)

            return bucketed_stream(
                rows, (tf.TensorSpec([], tf.string), tf.TensorSpec([], tf.int32)), lengths,
                lambda text, y, width: (encode(text, width)[0], y), cfg.train.batch_size, stream.n,
                longest[stream.role], shuffle=training, buffer=cfg.data.shuffle_buffer, seed=cfg.train.seed,
                full=cfg.train.fills_batches())

        if splits.val.n == 0:
            raise DataError(f"{cfg.data.source}: the validation split is empty; raise data.val_fraction")
        return make(splits.train, True), make(splits.val, False)

    def build_model(self, cfg, prep):
        m = cfg.model
        tokens = keras.Input(shape=(None,), dtype="int64", name="tokens")
        inputs = {"tokens": tokens}
        mask = keras.ops.not_equal(tokens, 0)  # passed explicitly: every layer below sees the same padding
        vectors = prep.word_vectors(m.word_vectors, cfg.train.seed)
        width = m.embedding_dim if vectors is None else vectors.shape[1]
        if m.encoder_from:
            width = LanguageModelRun(m.encoder_from).dim
        embedding = keras.layers.Embedding(len(prep.vocabulary), width, name="embedding",
                                           trainable=vectors is None or m.word_vectors_trainable)
        x = embedding(tokens)
        if vectors is not None:
            embedding.set_weights([vectors])
        if m.subwords:  # the word's embedding plus the mean of its n-grams' vectors
            inputs["subwords"] = keras.Input(shape=(None, None), dtype="int64", name="subwords")
            x = keras.layers.Add(name="word_vectors")(
                [x, SubwordEmbedding(m.subword_dim or width, m.subword_buckets,
                                 width if m.subword_dim else 0, name="subword_embedding")(inputs["subwords"])])
        if m.word_dropout:
            x = keras.layers.Dropout(m.word_dropout, noise_shape=(None, None, 1), name="word_dropout")(x)
        x = keras.layers.Dropout(m.embedding_dropout, name="embedding_dropout")(x)
        if m.architecture == "bag":
            x = bag_of_vectors(x, mask, m.bag_pooling, m.units, m.layers, m.dropout, name="bag")
        else:
            x = sequence_encoder(x, mask, m, return_sequences=m.pooling != "last")
            if m.encoder_from and cfg.train.unfreeze_epochs:  # nothing before it learns while it is shut
                x = EncoderGate(name="encoder_gate")(x)
            if m.pooling != "last":
                x = MaskedPooling(m.pooling, name="pooling")(x, mask=mask)
        x = keras.layers.Dropout(m.head_dropout, name="head_dropout")(x)
        probs = keras.layers.Dense(len(prep.labels), activation="softmax", dtype="float32", name="probabilities")(x)
        model = keras.Model(inputs, probs, name="sentiment")
        if m.encoder_from:
            start_encoder(model, prep.vocabulary, m.encoder_from, m)
        return model

    def compile(self, model, cfg, optimizer, prep):
        model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])

    def callbacks(self, cfg, prep):
        frozen = cfg.model.encoder_from and cfg.train.unfreeze_epochs
        return [UnfreezeEncoder(cfg.train.unfreeze_epochs)] if frozen else []

    def endpoints(self, model, prep, cfg):
        encode, labels = self.encoder(cfg, prep), tf.constant(prep.labels)

        def answer(text):
            probs = model(encode(text)[0], training=False)
            return {"label": tf.gather(labels, tf.argmax(probs, axis=-1)), "probabilities": probs}

        rows = chunk_rows(model, prep.max_length)

        def serve(text):  # n-gram vectors are [rows, words, grams, dim] before their mean: a few rows at a time
            return in_chunks(answer, [text], rows, {"label": (tf.string, ()),
                                                    "probabilities": (tf.float32, (None,))})

        return {"serving_default": Endpoint(serve, [tf.TensorSpec([None], tf.string, name="text")],
                                            "text -> label (string) and probabilities [batch, classes]"),
                "self_attention": self_attention_endpoint(model, encode)}

    def trackables(self, prep):
        return [prep.vectorizer()]

    def metadata(self, prep):
        return {"labels": prep.labels, "vocabulary_size": len(prep.vocabulary), "max_length": prep.max_length}

    def evaluate(self, predictor, examples, cfg, out_dir=None, plot=False):
        texts, gold = examples
        labels = predictor.metadata["labels"]
        unknown = sorted(set(gold) - set(labels))
        if unknown:
            raise DataError(f"the data has labels {unknown[:5]} this model was not trained on (its labels: "
                            f"{', '.join(labels)}); map them, or set data.label_names for integer labels")
        predicted = [r["label"] for r in predictor.predict(texts)]
        report = classification_report(gold, predicted, labels)
        if out_dir is not None:
            from seqapps.analysis.plots import plot_report_confusion, plot_self_attention_examples

            plot_report_confusion(report, out_dir)
            if plot:
                report["self_attention_plots"] = plot_self_attention_examples(predictor, list(texts), out_dir)
        return report

    def format_metrics(self, metrics):
        return format_classification(metrics)

    tiny_overrides = ["model.units=8", "model.embedding_dim=8", "model.subword_buckets=500", "train.epochs=1"]

    def sample_inputs(self, rng, n, metadata, signature="serving_default"):
        from seqapps.core.testing import random_texts

        return [{"text": t} for t in random_texts(rng, n)]

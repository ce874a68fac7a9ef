"""sentiment — many-to-one: a text in, a label and class probabilities out.

Word embedding plus hashed character n-gram vectors -> the shared recurrent stack (bidirectional LSTM by default) -> masked
max+mean pooling over time -> dropout -> softmax. Text vectorization lives in the
exported graph, so the export takes raw strings.

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
from seqapps.data import text as textlib
from tasks.sentiment.data import TextClassificationData, load_labelled_texts
from seqapps.core.errors import ConfigError, DataError
from seqapps.data.pipeline import bucketed_batches
from seqapps.layers import MaskedPooling
from seqapps.layers.bag import BAG_POOLING, bag_of_vectors
from seqapps.layers.transformer import ARCHITECTURES, sequence_encoder
from seqapps.layers.subwords import SubwordEmbedding, char_ngram_ids, dense_char_ngram_ids
from seqapps.analysis.metrics import classification_report, format_classification
from seqapps.core.presets import Preset
from seqapps.inference.predictor import Predictor, SelfAttentionMaps, one_or_many, text_items
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


@dataclasses.dataclass
class SentimentTrain(TrainConfig):
    epochs: int = 3
    batch_size: int = 64
    patience: int = 2


@dataclasses.dataclass
class SentimentConfig(Config):
    data: SentimentData = dataclasses.field(default_factory=SentimentData)
    model: SentimentModel = dataclasses.field(default_factory=SentimentModel)
    train: SentimentTrain = dataclasses.field(default_factory=SentimentTrain)


class SentimentPredictor(SelfAttentionMaps, Predictor):
    def predict(self, texts: list[str], batch_size: int = 256) -> list[dict]:
        """``[{"label": str, "probability": float, "probabilities": {label: float}}, ...]``
        (one dict for one string)."""
        labels, results, items = self.metadata["labels"], [], text_items(texts, "texts")
        for start in range(0, len(items), batch_size):
            out = self.call(text=items[start:start + batch_size])
            for probs in out["probabilities"]:
                best = int(np.argmax(probs))
                results.append({"label": labels[best], "probability": float(probs[best]),
                                "probabilities": {k: float(p) for k, p in zip(labels, probs)}})
        return one_or_many(texts, results)

    def format(self, inputs, results):
        return [f"{r['label']}\t{r['probability']:.3f}\t{text}" for text, r in zip(inputs, results)]


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
              "model.head_dropout": FRACTION}
    presets = (Preset("sst2", "batch 256, Adam 2e-3 with cosine decay, a 32-wide n-gram table, 3 epochs, best by dev "
                      "accuracy", ("train.batch_size=256", "train.learning_rate=0.002", "train.decay=cosine",
                                   "model.subword_dim=32"), data="sst2"),
               Preset("bag", "the one-to-one baseline: the defaults with the bag encoder (mean of the word + "
                      "subword vectors, one ReLU layer of 64; SST-2 test 0.8292)", ("model.architecture=bag",)))

    def validate(self, cfg):
        super().validate(cfg)
        m = cfg.model
        if m.architecture == "transformer" and m.pooling == "last":
            raise ConfigError("model.pooling=last reads a recurrent layer's final state; the transformer "
                              "pools its outputs: max, mean or max_mean")

    def load_data(self, cfg, data_dir=None):
        return load_labelled_texts(cfg.data, self.name, data_dir)

    def features(self, cfg, prep, texts, labels):
        """Ragged model inputs ``{"tokens", "subwords"}`` and label ids for raw texts."""
        ids, y = prep.encode(texts, labels)
        features = {"tokens": ids}
        if cfg.model.subwords:
            words = textlib.words(np.asarray(texts, dtype=object))[:, :prep.max_length]
            features["subwords"] = char_ngram_ids(words, cfg.model.subword_buckets)
        return features, y

    def datasets(self, cfg, prep, splits):
        def make(split, shuffle):
            features, y = self.features(cfg, prep, *split)
            return bucketed_batches(features, y, features["tokens"].row_lengths().numpy(), cfg.train.batch_size,
                                    shuffle=shuffle, seed=cfg.train.seed, full=cfg.train.fills_batches())
        return make(splits.train, True), make(splits.val, False)

    def build_model(self, cfg, prep):
        m = cfg.model
        tokens = keras.Input(shape=(None,), dtype="int64", name="tokens")
        inputs = {"tokens": tokens}
        mask = keras.ops.not_equal(tokens, 0)  # passed explicitly: every layer below sees the same padding
        x = keras.layers.Embedding(len(prep.vocabulary), m.embedding_dim, name="embedding")(tokens)
        if m.subwords:
            inputs["subwords"] = keras.Input(shape=(None, None), dtype="int64", name="subwords")
            x = keras.layers.Add(name="word_vectors")(
                [x, SubwordEmbedding(m.subword_dim or m.embedding_dim, m.subword_buckets,
                                 m.embedding_dim if m.subword_dim else 0, name="subword_embedding")(inputs["subwords"])])
        if m.word_dropout:
            x = keras.layers.Dropout(m.word_dropout, noise_shape=(None, None, 1), name="word_dropout")(x)
        x = keras.layers.Dropout(m.embedding_dropout, name="embedding_dropout")(x)
        if m.architecture == "bag":
            x = bag_of_vectors(x, mask, m.bag_pooling, m.units, m.layers, m.dropout, name="bag")
        else:
            x = sequence_encoder(x, mask, m, return_sequences=m.pooling != "last")
            if m.pooling != "last":
                x = MaskedPooling(m.pooling, name="pooling")(x, mask=mask)
        x = keras.layers.Dropout(m.head_dropout, name="head_dropout")(x)
        probs = keras.layers.Dense(len(prep.labels), activation="softmax", dtype="float32", name="probabilities")(x)
        return keras.Model(inputs, probs, name="sentiment")

    def compile(self, model, cfg, optimizer, prep):
        model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])

    def endpoints(self, model, prep, cfg):
        vectorizer, labels = prep.vectorizer(), tf.constant(prep.labels)

        def encode(text):
            """The model's inputs for raw texts, and the words they are (padded with "")."""
            words = textlib.clip_and_pad(textlib.words(text).to_tensor(""), prep.max_length, pad_value="")
            ids = {"tokens": textlib.clip_and_pad(vectorizer(text), prep.max_length)}
            if cfg.model.subwords:
                ids["subwords"] = dense_char_ngram_ids(words, cfg.model.subword_buckets)
            return ids, words

        def serve(text):
            probs = model(encode(text)[0], training=False)
            return {"label": tf.gather(labels, tf.argmax(probs, axis=-1)), "probabilities": probs}

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

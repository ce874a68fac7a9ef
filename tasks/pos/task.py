"""pos — many-to-many, aligned: a sentence in, one part-of-speech tag per word out.

Each word is represented by a (lower-cased) word embedding and a character-level
encoding of its spelling (a char CNN with max pooling, or a char BiLSTM), so words
never seen in training are tagged from their prefixes, suffixes, case and digits. The
shared recurrent stack (a bidirectional LSTM by default) reads the sentence; a dense
layer scores the tags of every word, decoded either independently (softmax) or jointly
by a linear-chain CRF with Viterbi decoding (``--set model.crf=true``).
``--set model.architecture=transformer`` reads the sentence with ``model.layers`` pre-norm
self-attention blocks instead (width ``model.units``, ``model.heads`` heads), over the same
character-aware word representation and with the same heads.

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

import keras
import tensorflow as tf
from keras import ops

from seqapps.core.config import Config, DataConfig, ModelConfig, TrainConfig, TransformerConfig
from tasks.pos.conllu import TAGSETS
from seqapps.data.streaming import bucketed_stream, chunked
from tasks.pos.data import SEP, TaggerData, load_tagged_sentences, tokenize, word_vectors_file
from seqapps.data.vectors import read_vectors
from tasks.pos.word_dropout import rare_word_dropout
from seqapps.core.errors import DataError
from seqapps.layers.char_words import CHAR_ENCODERS, set_frozen_vectors, word_features
from seqapps.layers.crf import CRF
from seqapps.layers.tagging import compile_tagger
from seqapps.layers.transformer import ARCHITECTURES, sequence_encoder
from seqapps.analysis.metrics import format_tagging, tagging_report
from seqapps.core.presets import Preset
from seqapps.inference.predictor import Predictor, SelfAttentionMaps
from tasks.pos.predicting import Predictions
from seqapps.core.registry import register
from tasks.pos.serving import tagger_endpoints, tagger_features
from seqapps.core.task import Task

# -- configuration ------------------------------------------------------------------------


@dataclasses.dataclass
class PosData(DataConfig):
    tagset: str = "upos"        # upos | xpos (CoNLL-U column); other formats have one tag column
    vocab_size: int = 50000     # most frequent lower-cased training words kept
    min_count: int = 1          # words seen fewer times in training are out of vocabulary
    max_word_length: int = 16   # characters per word; longer words keep their first and last 8


@dataclasses.dataclass
class PosModel(TransformerConfig, ModelConfig):
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
    # a word2vec/GloVe/fastText text file, word2vec's binary format, a word_vectors run directory or
    # count:DATASETS: vectors beside the trained embedding (every word of the file, so unseen words have one)
    word_vectors: str = ""
    word_vectors_trainable: bool = False  # fine-tune those vectors; false: they stay as read


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


def _vector_dim(prep, m) -> int:
    """The vectors' width: from the matrix when fitted, else (resuming) from the file's first row."""
    matrix = prep.vector_matrix if prep.vector_matrix is not None else read_vectors(word_vectors_file(m.word_vectors), limit=1)[1]
    return int(matrix.shape[1])


# -- predictor ------------------------------------------------------------------------------


class PosPredictor(SelfAttentionMaps, Predictions, Predictor):
    """``analyze``, ``predict`` and ``format`` (:mod:`tasks.pos.predicting`, shared with the ONNX
    export's predictor) and ``self_attention``."""


def encode_sentences(prep):
    """``encode(words, tags, width) -> (features, tag ids)`` for a batch of training sentences, each
    given as its words and its tags joined by :data:`tasks.pos.data.SEP`: the words padded with
    ``""`` to ``width`` and encoded by :func:`tasks.pos.serving.tagger_features`, as the export's
    signatures encode their tokens; tags to ids ``1..K`` (``0``: padding, or a tag the training split
    lacks), as :meth:`TaggerData.tag_ids` gives them."""
    table = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(
        tf.constant(prep.tags, tf.string), tf.range(1, len(prep.tags) + 1, dtype=tf.int32)), default_value=0)

    def encode(words, tags, width):
        tokens = tf.strings.split(words, SEP)
        _, _, features, _ = tagger_features(prep.encode, _pad_to(tokens.to_tensor(""), width, ""), tokens.row_lengths())
        ids = tf.ragged.map_flat_values(table.lookup, tf.strings.split(tags, SEP)).to_tensor(0)
        return features, _pad_to(ids, width, 0)

    return encode


def _pad_to(x, width, value):
    """``[batch, time]`` padded with ``value`` to ``width`` time steps."""
    return tf.pad(x, [[0, 0], [0, tf.maximum(0, tf.cast(width, tf.int32) - tf.shape(x)[1])]], constant_values=value)


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
    choices = {"data.tagset": TAGSETS, "model.char_encoder": CHAR_ENCODERS, "model.architecture": ARCHITECTURES}
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
        """Streamed splits (:class:`tasks.pos.data.TaggedStream`); the fitting pass runs (or is read
        from its cache) here, so bad data fails before anything is written."""
        return load_tagged_sentences(cfg.data, self.name, data_dir)

    def datasets(self, cfg, prep, splits):
        """Batches ``(features, tag ids)`` made in tf.data on the streamed sentences: bucketed by
        length, each batch encoded by :meth:`TaggerData.encode` as the export's signatures encode their
        tokens (:func:`encode_sentences`); rare training words read as unknown (``model.word_dropout``)."""
        fit = splits.info.get("fit")
        if fit is None:  # sentences given as lists (not streamed)
            from tasks.pos.data import in_memory_fit

            fit = {**in_memory_fit(splits.train, cfg.data), "longest": {
                role: max((len(w) for w, _ in getattr(splits, role)), default=0) for role in ("train", "val")}}
        encode = encode_sentences(prep)

        def make(stream, role):
            n, training = len(stream), role == "train"
            if n == 0:
                raise DataError(f"{cfg.data.source}: the {'training' if training else 'validation'} split "
                                "has no sentences; raise data.val_fraction or give a dev file")
            longest = max(fit["longest"][role], 1)

            def rows():
                return chunked(((SEP.join(w), SEP.join(t)) for w, t in stream if w), (object, object))

            ds = bucketed_stream(rows, (tf.TensorSpec([], tf.string), tf.TensorSpec([], tf.string)),
                                 lambda words, tags: tf.strings.split(words, SEP).row_lengths(), encode,
                                 cfg.train.batch_size, n, longest, shuffle=training, buffer=cfg.data.shuffle_buffer,
                                 seed=cfg.train.seed, full=cfg.train.fills_batches())
            if training and cfg.model.word_dropout > 0:  # rare training words read as unknown most often
                ds = rare_word_dropout(ds, None, prep.words, cfg.model.word_dropout, counts=dict(map(tuple, fit["words"])))
            return ds
        return make(splits.train, "train"), make(splits.val, "val")

    def build_model(self, cfg, prep):
        m = cfg.model
        vectors = (len(prep.vector_words), _vector_dim(prep, m)) if prep.vector_words else None
        inputs, x, frozen = word_features(m, len(prep.words), len(prep.chars), prep.max_word_length, vectors)
        x = keras.layers.Dropout(m.embedding_dropout, name="embedding_dropout")(x)
        mask = ops.not_equal(inputs["words"], 0)
        x = sequence_encoder(x, mask, m)
        scores = keras.layers.Dense(len(prep.tags), dtype="float32", name="scores")(x)
        out = CRF(len(prep.tags), name="crf")(scores, mask=mask) if m.crf else scores
        model = keras.Model(inputs, out, name="pos_tagger")
        if frozen is not None and prep.vector_matrix is not None:
            set_frozen_vectors(frozen, prep.vector_matrix)
        return model

    def compile(self, model, cfg, optimizer, prep):
        compile_tagger(model, optimizer, cfg.model.crf)

    def endpoints(self, model, prep, cfg):
        return tagger_endpoints(model, prep.encode, prep.tags, cfg.model.crf)

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
            from seqapps.analysis.plots import plot_report_confusion, plot_self_attention_examples

            plot_report_confusion(report, out_dir, title="POS confusion matrix")
            if plot:
                report["self_attention_plots"] = plot_self_attention_examples(
                    predictor, [" ".join(w) for w, _ in examples], out_dir)
        return report

    def format_metrics(self, metrics):
        return format_tagging(metrics)

    tiny_overrides = ["model.units=8", "model.embedding_dim=8", "model.char_dim=4", "model.char_features=8",
                      "train.epochs=1", "train.patience=0"]

    def sample_inputs(self, rng, n, metadata, signature="serving_default"):
        from seqapps.core.testing import random_texts

        texts = random_texts(rng, n)
        if signature == "tag_tokens":  # token lists; an inner "" is a token, trailing ones are padding
            return [{"tokens": [t if rng.random() > 0.1 else "" for t in s.split()]} for s in texts]
        return [{"text": t} for t in texts]

"""translation — many-to-many sequence to sequence: a sentence in, its translation out.

The model is :class:`tasks.translation.model.Seq2Seq`: a recurrent encoder (bidirectional GRU by
default) whose final states start a decoder that attends over the encoder outputs
(``model.attention``: additive, multiplicative or none); ``--set model.architecture=transformer``
makes it :class:`tasks.translation.transformer.TransformerSeq2Seq` (``model.layers`` encoder and decoder blocks of
width ``model.units``, ``model.heads`` heads, decoding with a key/value cache). The export takes raw strings
and returns strings: standardization, vocabulary lookup, the decoding loop over the
model's ``step`` (greedy or beam search with a length penalty) and detokenization all
run inside the graph.

Config keys of note: ``data.source_lang`` / ``data.target_lang`` pick the direction
(``data.source`` is the dataset); ``data.max_length`` source tokens are read (longer
inputs are truncated); ``data.max_output_length`` caps the output steps;
``model.beam_width`` / ``model.length_penalty`` are the export's default decoding.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import keras
import tensorflow as tf

from seqapps.core.config import FRACTION, Config, DataConfig, ModelConfig, Range, TrainConfig, TransformerConfig
from tasks.translation.data import (ParallelVocab, fits, load_parallel, pair_lengths, training_source_keys,
                                    unseen_sources)
from seqapps.data.streaming import bucketed_stream, chunked
from seqapps.core.errors import ConfigError, DataError
from seqapps.analysis.metrics import format_translation, length_buckets, score_translations
from seqapps.layers.transformer import ARCHITECTURES
from seqapps.training.losses import SmoothedTokenLoss
from tasks.translation.model import Seq2Seq
from tasks.translation.transformer import TransformerSeq2Seq
from seqapps.core.presets import Preset
from seqapps.core.registry import register
from tasks.translation.serving import TranslationPredictor, seq2seq_endpoints
from seqapps.core.task import Task

@dataclasses.dataclass
class TranslationData(DataConfig):
    source_lang: str = "fr"          # language translated from (a column / feature / file suffix)
    target_lang: str = "en"          # language translated into
    columns: list[str] = dataclasses.field(default_factory=list)  # languages of a pairs file's columns
    split_by: str = ""               # language whose sentence's MD5 assigns the split (default: target)
    source_vocab_size: int = 8000
    target_vocab_size: int = 6000
    max_length: int = 40             # source tokens read; longer inputs are truncated
    max_output_length: int = 50      # decoding steps at most (end token included)
    lowercase_target: bool = False   # targets keep their case by default (BLEU is cased)


@dataclasses.dataclass
class TranslationModel(TransformerConfig, ModelConfig):
    cell: str = "gru"                # the benchmarked cell; fewer gates than LSTM, faster on CPU
    units: int = 256                 # encoder units per direction; the decoder has the encoder's width
    embedding_dim: int = 256
    embedding_dropout: float = 0.1
    attention: str = "additive"      # additive | multiplicative | none
    attention_units: int = 512       # additive attention's hidden size
    output_dropout: float = 0.2
    beam_width: int = 4              # the export's default decoding; 1 = greedy
    # source / target word vectors (a word2vec/GloVe/fastText text file, word2vec's binary format, a
    # word_vectors run directory or count:DATASETS): the embeddings start from them and take their width
    word_vectors: str = ""
    target_word_vectors: str = ""
    word_vectors_trainable: bool = False  # fine-tune the vectors; false: they stay as read
    length_penalty: float = 0.6      # GNMT alpha for beam search; 0 = none


@dataclasses.dataclass
class TranslationTrain(TrainConfig):
    epochs: int = 5                  # the benchmarked recipe: 5 passes, rate 2e-3 falling to 0 on a cosine
    batch_size: int = 128
    learning_rate: float = 2e-3
    decay: str = "cosine"
    patience: int = 2
    label_smoothing: float = 0.0     # share of each target word's probability spread over the vocabulary


@dataclasses.dataclass
class TranslationConfig(Config):
    data: TranslationData = dataclasses.field(default_factory=TranslationData)
    model: TranslationModel = dataclasses.field(default_factory=TranslationModel)
    train: TranslationTrain = dataclasses.field(default_factory=TranslationTrain)


@register
class Translation(Task):
    name = "translation"
    topology = "many-to-many (encoder-decoder)"
    description = "sentence -> translated sentence (attention, beam search in the export)"
    default_data = "anki_fra_eng"
    config_class = TranslationConfig
    monitor, monitor_mode = "val_loss", "min"
    predictor_class = TranslationPredictor
    prep_class = ParallelVocab
    choices = {"model.architecture": ARCHITECTURES}
    ranges = {"data.max_output_length": Range(2), "data.source_vocab_size": Range(3),
              "data.target_vocab_size": Range(5), "train.label_smoothing": FRACTION}
    presets = (Preset("fr-en", "French -> English, the task defaults (5 passes, no early stop)", ("train.patience=0",),
                      data="anki_fra_eng"),
               Preset("fr-en-fast", "French -> English, the recipe at 192 units per direction (a shorter fit; "
                      "benchmarks/RESULTS.md has what it gives)", ("model.units=192", "train.patience=0")),
               Preset("en-fr", "English -> French with the same recipe",
                      ("data.source_lang=en", "data.target_lang=fr", "train.patience=0")),
               # the 900-s limit ends it sooner on slower CPUs
               Preset("fr-en-transformer", "French -> English with the encoder-decoder transformer (3 + 3 blocks, "
                      "width 192, 4 heads), warm-up, label smoothing, no dropout, 4 passes within 15 minutes of fit",
                      ("model.architecture=transformer", "model.units=192", "model.layers=3", "model.heads=4",
                       "model.dropout=0.0", "train.learning_rate=2e-3", "train.warmup=300",
                       "train.label_smoothing=0.1", "train.epochs=4", "train.time_limit=900", "train.patience=0")))

    def load_data(self, cfg, data_dir=None):
        """Streamed splits (:class:`tasks.translation.data.ParallelStream`); the fitting pass runs
        (or is read from its cache) here, so bad data fails before anything is written."""
        return load_parallel(cfg.data, self.name, data_dir)

    def encoder(self, cfg, prep, pipeline: bool = False):
        """``encode(text, width=None) -> source ids`` for a batch of raw source texts: the one
        function training (in tf.data, ``pipeline``) and the export's signatures both run
        (:meth:`tasks.translation.data.ParallelVocab.source_encoder`)."""
        return prep.source_encoder(pipeline=pipeline)

    def datasets(self, cfg, prep, splits):
        """Batches ``({"source", "target_in"}, target_out, sample_weight)`` made in tf.data on the
        streamed pairs: pairs that do not fit (``data.max_length`` source tokens,
        ``data.max_output_length`` output steps) filtered out, bucketed by length on the stream."""
        encode_source, encode_target = self.encoder(cfg, prep, pipeline=True), prep.target_encoder()
        fit, target_standardize = splits.info["fit"], prep.target_standardize
        max_length, max_output_length = prep.max_length, prep.max_output_length

        def make(stream, training):
            n = fit["fits"][stream.role]
            if n == 0:
                raise DataError(f"{cfg.data.source}: no pair fits data.max_length={max_length} source tokens "
                                f"and data.max_output_length={max_output_length} output steps")
            # after data.fit_sample, a pair not read by the pass may be longer than the longest it saw
            longest = max(max_length, max_output_length) if fit["sampled"] else fit["longest"][stream.role]

            def rows():
                return chunked(stream.rows(), (object, object))

            def lengths(source, target):
                src, tgt = pair_lengths(source, target, target_standardize)
                return tf.maximum(src, tgt + 1)

            def keep(source, target):
                return fits(*pair_lengths(source, target, target_standardize), max_length, max_output_length)

            def encode(source, target, width):
                target_in, target_out = encode_target(target, width)
                x = {"source": encode_source(source, width), "target_in": target_in}
                return x, target_out, tf.cast(tf.not_equal(target_out, 0), tf.float32)

            return bucketed_stream(
                rows, (tf.TensorSpec([], tf.string), tf.TensorSpec([], tf.string)), lengths, encode,
                cfg.train.batch_size, n, longest, shuffle=training, buffer=cfg.data.shuffle_buffer,
                seed=cfg.train.seed, full=cfg.train.fills_batches(), keep_fn=keep)

        return make(splits.train, True), make(splits.val, False)

    def build_model(self, cfg, prep):
        m = cfg.model
        vectors = {side: prep.word_vectors(side, spec, cfg.train.seed)
                   for side, spec in (("source", m.word_vectors), ("target", m.target_word_vectors)) if spec}
        widths = {v.shape[1] for v in vectors.values()}
        if len(widths) > 1:
            raise ConfigError(f"model.word_vectors and model.target_word_vectors have {' and '.join(map(str, widths))} "
                              "numbers a word; the embeddings share one width")
        width = widths.pop() if widths else None
        if width is not None and m.architecture == "transformer" and width != m.units:
            raise ConfigError(f"the word vectors have {width} numbers a word, the transformer's embeddings its width "
                              f"model.units={m.units}; set model.units={width}")
        model = self._model(cfg, prep, width or m.embedding_dim)
        for side, matrix in vectors.items():
            embedding = getattr(model, f"{side}_embedding")
            embedding.embeddings.assign(matrix)
            embedding.trainable = m.word_vectors_trainable
        return model

    def _model(self, cfg, prep, embedding_dim):
        m = cfg.model
        if m.architecture == "transformer":
            return TransformerSeq2Seq(len(prep.source_vocab), len(prep.target_vocab), units=m.units, layers=m.layers,
                                      heads=m.heads, ff_units=m.ff_units, embedding_dropout=m.embedding_dropout,
                                      dropout=m.dropout, max_target_length=prep.max_output_length + 1,
                                      name="translation")
        return Seq2Seq(len(prep.source_vocab), len(prep.target_vocab), cell=m.cell, units=m.units, layers=m.layers,
                       bidirectional=m.bidirectional, embedding_dim=embedding_dim,
                       embedding_dropout=m.embedding_dropout, dropout=m.dropout,
                       recurrent_dropout=m.recurrent_dropout, attention=m.attention,
                       attention_units=m.attention_units, output_dropout=m.output_dropout, name="translation")

    def compile(self, model, cfg, optimizer, prep):
        # the loss the recipes were measured with: with attention, the masked token losses summed over
        # every position of the batch; attention=none averaged them over the real tokens only;
        # with label smoothing, the smoothed losses averaged over the real tokens
        recurrent_none = cfg.model.architecture == "rnn" and cfg.model.attention == "none"
        reduction = "mean_with_sample_weight" if recurrent_none else "sum_over_batch_size"
        smoothing = cfg.train.label_smoothing
        loss = (SmoothedTokenLoss(smoothing) if smoothing else
                keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=reduction))
        model.compile(optimizer=optimizer, loss=loss,
                      weighted_metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])

    def endpoints(self, model, prep, cfg):
        m = cfg.model
        return seq2seq_endpoints(model, prep, m.beam_width, m.length_penalty, cfg.data.target_lang == "fr")

    def trackables(self, prep):
        return [prep.source_vectorizer()]

    def metadata(self, prep):
        return {"source_vocabulary_size": len(prep.source_vocab), "target_vocabulary_size": len(prep.target_vocab),
                "max_length": prep.max_length, "max_output_length": prep.max_output_length}

    def decoding(self, cfg):
        return {"beam_width": cfg.model.beam_width, "length_penalty": cfg.model.length_penalty}

    def evaluate(self, predictor, examples, cfg, out_dir=None, plot=False):
        sources, references = examples
        beam, penalty = predictor.decoding_defaults
        hypotheses = predictor.translate(sources)
        report = score_translations(sources, hypotheses, references, unseen=self.unseen(predictor, sources))
        report["decoding"] = "greedy" if beam == 1 else f"beam {beam} (length penalty {penalty})"
        report["samples"] = [{"source": s, "reference": r, "translation": h}
                             for s, r, h in list(zip(sources, references, hypotheses))[:5]]
        if plot and out_dir is not None:
            report["attention_plots"] = self.plot_attention(predictor, sources, out_dir)
        return report

    def unseen(self, predictor, sources) -> list[int] | None:
        """Indices of ``sources`` that are no source of the model's training split, compared after the
        source standardization (:func:`tasks.translation.data.source_keys`); None when that split cannot be read."""
        try:
            data = self.config_class.from_dict(predictor.metadata["config"]).data
            return unseen_sources(sources, training_source_keys(data, self.name))
        except (DataError, KeyError):
            return None

    def plot_attention(self, predictor, sources, out_dir, per_bucket: int = 1) -> list[str]:
        """Heatmaps for the first sentence(s) of each source-length bucket."""
        from seqapps.analysis.plots import plot_attention

        chosen = [sources[i] for idx in length_buckets(sources).values() for i in idx[:per_bucket]]
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        paths = []
        for i, (source, row) in enumerate(zip(chosen, predictor.attention(chosen))):
            path = out_dir / f"attention-{i + 1}.png"
            plot_attention(row["weights"], row["source_tokens"], row["output_tokens"] + ["[END]"], path,
                           title=f"{source}\n-> {row['translation']}")
            paths.append(str(path))
        return paths

    def format_metrics(self, metrics):
        return format_translation(metrics)

    tiny_overrides = ["model.units=8", "model.embedding_dim=8", "model.attention_units=8", "train.epochs=1",
                      "train.batch_size=16", "train.steps_per_epoch=3"]

    def sample_inputs(self, rng, n, metadata, signature="serving_default"):
        from seqapps.core.testing import random_texts

        scalars = {"translate": {"beam_width": 2, "length_penalty": 0.6}, "attention": {"beam_width": 2}}
        words = ["je", "suis", "le", "chat", "il", "fait", "froid", "où", "est", "la", "gare", "c'est"]
        return [{"text": t, **scalars.get(signature, {})} for t in random_texts(rng, n, words)]

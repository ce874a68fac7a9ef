"""word_vectors — word vectors learned from unlabeled text: skip-gram with negative sampling (word2vec).

Training reads the text as a stream (``data.source``: demo, a text file or folder, a named dataset's
text; see :mod:`tasks.word_vectors.data`), keeps the ``data.vocab_size`` most frequent words seen at
least ``data.min_count`` times, drops frequent words at random (``data.subsample``, word2vec's ``-sample``)
and makes (center, context) pairs within a window of up to ``model.window`` words on each side (the
window's size drawn per center word, as word2vec does), each scored against ``model.negatives`` words
drawn from the unigram distribution raised to 3/4 (:mod:`tasks.word_vectors.model`).

The run writes ``vectors.txt`` (word2vec's text format, from the epoch with the best validation loss)
that every text task reads: ``--set model.word_vectors=RUN_DIR`` (or ``RUN_DIR/vectors.txt``).

``model.objective=lm`` trains a word-level language model on the same text instead (forward and, with
``model.bidirectional``, backward; :mod:`tasks.word_vectors.lm`): its run starts a text task's encoder
(``model.encoder_from=RUN_DIR``), and its embedding is the run's ``vectors.txt``.

Serving: ``serving_default`` (``words`` -> ``vectors``, ``in_vocabulary``), ``neighbours`` (``words``,
``k`` -> the ``k`` nearest words by cosine and their similarities) and ``analogy`` (``a``, ``b``, ``c``
-> the word ``d`` with ``b - a + c`` nearest, 3CosAdd, the three excluded). ``evaluate`` reports the
nearest neighbours of a few words and, given a file of analogy questions (``questions-words.txt``
format) as the data (``evaluate RUN --data FILE``) or as ``data.analogies``, the analogy accuracy.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from seqapps.core.config import AT_LEAST_1, Config, DataConfig, ModelConfig, Range, TrainConfig
from seqapps.core.errors import ConfigError, DataError
from seqapps.core.presets import Preset
from seqapps.core.registry import register
from seqapps.core.task import Endpoint, Task
from seqapps.data import text as textlib
from seqapps.data.vectors import RUN_VECTORS, write_vectors
from seqapps.inference import checks
from seqapps.inference.predictor import Predictor
from tasks.word_vectors.data import Analogies, WordVocab, load_text
from tasks.word_vectors.lm import OBJECTIVES, build_lm, lm_datasets, lm_loss, word_rows
from tasks.word_vectors.model import build_skip_gram
from tasks.word_vectors.predicting import Predictions


@dataclasses.dataclass
class WordVectorsData(DataConfig):
    val_fraction: float = 0.05  # lines held out to pick the best epoch by their loss
    test_fraction: float = 0.0  # (no test split: the vectors are scored by neighbours and analogies)
    vocab_size: int = 50000     # most frequent words kept
    min_count: int = 5          # words seen fewer times get no vector
    subsample: float = 1e-3     # word2vec's -sample: frequent words dropped at random; 0 keeps all
    analogies: str = ""         # a questions-words.txt file: evaluate reports the analogy accuracy
    neighbours_of: list[str] = dataclasses.field(default_factory=list)  # words evaluate lists neighbours of


@dataclasses.dataclass
class WordVectorsModel(ModelConfig):
    dim: int = 100              # numbers per word vector
    window: int = 5             # context words on each side at most
    negatives: int = 5          # negative samples per (center, context) pair
    # skipgram (word2vec) | lm: a word-level language model (embedding of model.dim, then model.layers
    # recurrent layers of model.cell and model.units, both directions with model.bidirectional) whose run a
    # text task's encoder starts from (model.encoder_from); see tasks.word_vectors.lm
    objective: str = "skipgram"


@dataclasses.dataclass
class WordVectorsTrain(TrainConfig):
    epochs: int = 5
    batch_size: int = 1024
    learning_rate: float = 2e-3
    clipnorm: float = 0.0
    patience: int = 2
    backup_every: int = 1000
    shuffle_pairs: int = 100_000  # pairs held for shuffling


@dataclasses.dataclass
class WordVectorsConfig(Config):
    data: WordVectorsData = dataclasses.field(default_factory=WordVectorsData)
    model: WordVectorsModel = dataclasses.field(default_factory=WordVectorsModel)
    train: WordVectorsTrain = dataclasses.field(default_factory=WordVectorsTrain)


def skip_gram_pairs(prep: WordVocab, window: int, subsample: float):
    """``pairs(lines, training) -> (centers, contexts)`` int64 ids for a batch of raw lines, in TF ops:
    words without a vector dropped, then (training) frequent ones at random, then every pair within
    ``window`` words of the same line (training: within a window drawn from 1..``window`` per center)."""
    table = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(
        tf.constant(prep.words), tf.range(1, len(prep.words) + 1, dtype=tf.int64)), default_value=0)
    keep_prob = tf.constant(prep.keep_probabilities(subsample))

    def pairs(lines, training):
        words = textlib.words(lines)
        flat, rows = table.lookup(words.flat_values), words.value_rowids()
        keep = flat > 0
        if training and subsample > 0:
            keep &= tf.random.uniform(tf.shape(flat)) < tf.gather(keep_prob, flat)
        flat, rows = tf.boolean_mask(flat, keep), tf.boolean_mask(rows, keep)
        if training:
            span = tf.random.uniform(tf.shape(flat), 1, window + 1, dtype=tf.int64)
        else:
            span = tf.fill(tf.shape(flat), tf.constant(window, tf.int64))
        centers, contexts = [], []
        for d in range(1, window + 1):
            a, b = flat[:-d], flat[d:]
            same = tf.equal(rows[:-d], rows[d:])
            forward, backward = same & (d <= span[:-d]), same & (d <= span[d:])
            centers += [tf.boolean_mask(a, forward), tf.boolean_mask(b, backward)]
            contexts += [tf.boolean_mask(b, forward), tf.boolean_mask(a, backward)]
        return tf.concat(centers, 0), tf.concat(contexts, 0)

    return pairs


class BestVectors(keras.callbacks.Callback):
    """Writes ``vectors.txt`` into the run directory whenever the validation loss is the best so far.
    Rebuilt from its (empty) config, as a prepared folder's training rebuilds it, it writes nothing:
    :func:`write_run_vectors` then writes the file from the best checkpoint when it is first asked for."""

    def __init__(self, prep: WordVocab | None = None):
        super().__init__()
        self.prep, self.best = prep, _best_val_loss(prep.run_dir if prep is not None else None)

    def get_config(self):
        return {}

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get("val_loss")
        if loss is not None and loss < self.best:
            self.best = loss
            self.write()

    def on_train_end(self, logs=None):
        if self.prep is not None and self.prep.run_dir is not None and not (Path(self.prep.run_dir) / RUN_VECTORS).exists():
            self.write()

    def write(self):
        if self.prep is not None and self.prep.run_dir is not None:
            matrix = keras.ops.convert_to_numpy(word_rows(self.model))
            write_vectors(Path(self.prep.run_dir) / RUN_VECTORS, self.prep.words, matrix[1:])


def write_run_vectors(run_dir) -> Path:
    """``RUN_DIR/vectors.txt`` written from a word_vectors run's best checkpoint and ``words.txt``."""
    from seqapps.training.run_dir import Run

    run = Run.open(run_dir)
    model = keras.saving.load_model(run.check_model(), compile=False)
    matrix = keras.ops.convert_to_numpy(word_rows(model))
    path = Path(run_dir) / RUN_VECTORS
    write_vectors(path, WordVocab.load(run_dir).words, matrix[1:])
    return path


def _best_val_loss(run_dir) -> float:
    """The best validation loss in a resumed run's history (infinity for a new run)."""
    import csv

    path = Path(run_dir or "", "history.csv")
    if run_dir is None or not path.exists():
        return float("inf")
    with open(path, newline="") as f:
        losses = [float(r["val_loss"]) for r in csv.DictReader(f) if r.get("val_loss")]
    return min(losses, default=float("inf"))


class WordVectorsPredictor(Predictions, Predictor):
    """``vectors``, ``neighbours``, ``analogy`` (:class:`tasks.word_vectors.predicting.Predictions`, shared with
    the ONNX and LiteRT predictors)."""


@register
class WordVectors(Task):
    name = "word_vectors"
    topology = "one-to-many (a word to its context words)"
    description = "unlabeled text -> word vectors (skip-gram, negative sampling), neighbours and analogies"
    default_data = "demo"
    config_class = WordVectorsConfig
    monitor, monitor_mode = "val_loss", "min"
    predictor_class = WordVectorsPredictor
    prep_class = WordVocab
    ranges = {"model.dim": AT_LEAST_1, "model.window": AT_LEAST_1, "model.negatives": AT_LEAST_1,
              "data.min_count": AT_LEAST_1, "data.vocab_size": Range(2), "data.subsample": Range(0.0),
              "train.shuffle_pairs": AT_LEAST_1}
    choices = {"model.objective": OBJECTIVES}
    #: keys skip-gram does not use (the language model, model.objective=lm, uses them)
    skip_gram_unused = {"model.cell": "it has no recurrent layer", "model.units": "its width is model.dim",
                        "model.layers": "it has no layers to stack", "data.max_length": "it reads whole lines"}
    presets = (Preset("text", "100 numbers a word, window 5, 5 negatives, words seen 5 times, 5 epochs",
                      ("model.dim=100", "model.window=5", "model.negatives=5", "data.min_count=5")),
               Preset("lm", "a language model for sentiment's default encoder (model.encoder_from): 128-wide "
                      "words, one LSTM of 64 units each way, words seen twice, batch 64 lines, Adam 2e-3, "
                      "clipnorm 1, 5 epochs",
                      ("model.objective=lm", "model.dim=128", "model.cell=lstm", "model.units=64", "model.layers=1",
                       "model.bidirectional=true", "data.min_count=2", "train.batch_size=64",
                       "train.learning_rate=0.002", "train.clipnorm=1.0", "train.epochs=5")))

    def validate(self, cfg):
        super().validate(cfg)
        if self._skip_gram(cfg):
            from seqapps.core import config as configlib

            defaults = self.config_class()
            for key, why in self.skip_gram_unused.items():
                value = configlib.get_value(cfg, key)
                if value != configlib.get_value(defaults, key):
                    raise ConfigError(f"{key} is not used by {self.name}'s skip-gram ({why}; model.objective=lm "
                                      f"uses it); got {value!r}, leave it unset")

    @staticmethod
    def _skip_gram(cfg) -> bool:
        return cfg.model.objective != "lm"

    def load_data(self, cfg, data_dir=None):
        return load_text(cfg.data, data_dir)

    def datasets(self, cfg, prep, splits):
        if not self._skip_gram(cfg):
            return lm_datasets(cfg, prep, splits)
        m, t = cfg.model, cfg.train
        pairs = skip_gram_pairs(prep, m.window, cfg.data.subsample)
        table = tf.constant(prep.negative_table(), tf.int64)
        k, size = m.negatives, int(prep.negative_table().shape[0])

        def make(stream, training):
            if stream.n == 0:
                raise DataError(f"{cfg.data.source}: the {stream.role} split has no lines; raise data.val_fraction")

            def chunks():
                batch = []
                for line in stream.rows():
                    batch.append(line)
                    if len(batch) == 256:
                        yield np.asarray(batch, dtype=object)
                        batch = []
                if batch:
                    yield np.asarray(batch, dtype=object)

            def with_negatives(i, batch):
                center, context = batch
                shape = tf.stack([tf.shape(center)[0], k])
                if training:
                    drawn = tf.random.uniform(shape, 0, size, dtype=tf.int64)
                else:  # the same negatives every validation pass
                    drawn = tf.random.stateless_uniform(shape, tf.stack([i, tf.constant(t.seed, tf.int64)]), 0, size,
                                                        dtype=tf.int64)
                candidates = tf.concat([context[:, None], tf.gather(table, drawn)], axis=1)
                labels = tf.concat([tf.ones_like(center, tf.float32)[:, None], tf.zeros(shape, tf.float32)], axis=1)
                return {"center": center, "candidates": candidates}, labels

            ds = tf.data.Dataset.from_generator(chunks, output_signature=tf.TensorSpec([None], tf.string))
            ds = ds.map(lambda lines: pairs(lines, training), num_parallel_calls=tf.data.AUTOTUNE).unbatch()
            if training:
                ds = ds.shuffle(t.shuffle_pairs, seed=t.seed)
            ds = ds.batch(t.batch_size).enumerate().map(with_negatives, num_parallel_calls=tf.data.AUTOTUNE)
            return ds.prefetch(tf.data.AUTOTUNE)

        return make(splits.train, True), make(splits.val, False)

    def build_model(self, cfg, prep):
        if not self._skip_gram(cfg):
            return build_lm(cfg.model, len(prep.words) + 2)
        return build_skip_gram(len(prep.words) + 1, cfg.model.dim, cfg.model.negatives)

    def compile(self, model, cfg, optimizer, prep):
        if not self._skip_gram(cfg):
            model.compile(optimizer=optimizer, loss={name: lm_loss() for name in model.output_names})
            return
        model.compile(optimizer=optimizer, loss=keras.losses.BinaryCrossentropy(from_logits=True))

    def callbacks(self, cfg, prep):
        return [BestVectors(prep)]

    def endpoints(self, model, prep, cfg):
        words = tf.constant(["", *prep.words])
        lookup = prep.lookup

        def ids(text):  # the inputs arrive checked against the text bounds (seqapps.inference.checks)
            return tf.cast(lookup(tf.strings.lower(tf.strings.strip(text), encoding="utf-8")), tf.int64)

        def unit():
            v = tf.convert_to_tensor(word_rows(model))
            v = v / tf.maximum(tf.norm(v, axis=1, keepdims=True), 1e-9)
            return tf.concat([tf.zeros_like(v[:1]), v[1:]], 0)  # the unknown word matches nothing

        def vectors(words_in):
            i = ids(words_in)
            v = tf.gather(tf.convert_to_tensor(word_rows(model)), i)
            return {"vectors": tf.where((i > 0)[:, None], v, 0.0), "in_vocabulary": i > 0}

        def nearest(query, exclude, k):
            sims = tf.matmul(query, unit(), transpose_b=True)                     # [batch, vocab + 1]
            n = tf.shape(sims)[1]
            banned = tf.reduce_any(tf.one_hot(exclude, n, on_value=True, off_value=False), axis=1)
            banned = tf.logical_or(banned, tf.equal(tf.range(n), 0)[None, :])
            sims = tf.where(banned, -2.0, sims)
            top = tf.math.top_k(sims, tf.clip_by_value(k, 0, n - 1))
            return tf.gather(words, top.indices), top.values

        def neighbours(words_in, k):
            i = ids(words_in)
            names, sims = nearest(tf.gather(unit(), i), i[:, None], k)
            return {"neighbours": names, "similarities": sims}

        def analogy(a, b, c):
            sizes = [tf.size(x) for x in (a, b, c)]
            same = tf.logical_and(tf.equal(sizes[0], sizes[1]), tf.equal(sizes[1], sizes[2]))
            a = checks.require(a, same, ["a, b and c must hold as many words each; got ", sizes[0], ", ",
                                         sizes[1], " and ", sizes[2]])
            ia, ib, ic = ids(a), ids(b), ids(c)
            u = unit()
            query = tf.gather(u, ib) - tf.gather(u, ia) + tf.gather(u, ic)
            names, sims = nearest(query, tf.stack([ia, ib, ic], axis=1), tf.constant(1))
            return {"answer": names[:, 0], "similarity": sims[:, 0]}

        text = tf.TensorSpec([None], tf.string, name="words")
        return {"serving_default": Endpoint(vectors, [text], "words -> vectors [batch, dim] and in_vocabulary"),
                "neighbours": Endpoint(neighbours, [text, tf.TensorSpec([], tf.int32, name="k")],
                                       "words, k -> the k nearest words by cosine [batch, k] and similarities"),
                "analogy": Endpoint(analogy, [tf.TensorSpec([None], tf.string, name=n) for n in "abc"],
                                    "a, b, c -> d with b - a + c nearest (3CosAdd) and its similarity")}

    def trackables(self, prep):
        return [prep.lookup]

    def metadata(self, prep):
        return {"vocabulary_size": len(prep.words), "probe_words": probe_words(prep.words)}

    def evaluate(self, predictor, examples, cfg, out_dir=None, plot=False):
        probes = cfg.data.neighbours_of or predictor.metadata.get("probe_words", [])
        report = {"neighbours": {w: [[n, round(s, 4)] for n, s in r]
                                 for w, r in zip(probes, predictor.neighbours(list(probes), 8))}}
        questions = examples if isinstance(examples, Analogies) else (
            Analogies.read(Path(cfg.data.analogies).expanduser()) if cfg.data.analogies else None)
        if questions is not None:
            report["analogies"] = score_analogies(predictor, questions)
        return report

    def format_metrics(self, metrics):
        lines = [f"  {w}: " + ", ".join(f"{n} {s:.3f}" for n, s in r) for w, r in metrics["neighbours"].items()]
        a = metrics.get("analogies")
        if a:
            lines.append(f"  analogies: accuracy {a['accuracy']:.4f} ({a['answered']:,} of {a['questions']:,} "
                         "questions have vectors for all four words)")
            lines += [f"    {s}: {v['accuracy']:.4f} of {v['answered']:,}" for s, v in a["sections"].items()]
        return "\n".join(lines)

    tiny_overrides = ["model.dim=8", "model.window=2", "model.negatives=2", "data.min_count=1", "train.epochs=1",
                      "train.batch_size=256"]

    def sample_inputs(self, rng, n, metadata, signature="serving_default"):
        words = list(metadata.get("probe_words", [])) + ["the", "UNSEEN-word", "", "  Cat "]
        pick = [words[int(rng.integers(len(words)))] for _ in range(3 * n)]
        if signature == "neighbours":
            return [{"words": w, "k": 3} for w in pick[:n]]
        if signature == "analogy":
            return [{"a": pick[i], "b": pick[n + i], "c": pick[2 * n + i]} for i in range(n)]
        return [{"words": w} for w in pick[:n]]


def probe_words(words, ranks=(0, 5, 20, 50, 100, 200)) -> list[str]:
    """A few words of the vocabulary at spread ranks (what ``evaluate`` lists the neighbours of)."""
    return [words[r] for r in ranks if r < len(words)]


def score_analogies(predictor, questions: Analogies, batch: int = 2048) -> dict:
    """Accuracy of 3CosAdd on the questions whose four words all have vectors (word2vec's protocol),
    in total and per section."""
    items = questions.questions
    words = sorted({w for q in items for w in q[1:]})
    known = dict(zip(words, predictor.call("serving_default", words=words)["in_vocabulary"].tolist())) if words else {}
    answerable = [q for q in items if all(known[w] for w in q[1:])]
    correct = []
    for i in range(0, len(answerable), batch):
        chunk = answerable[i:i + batch]
        answers = predictor.analogy([q[1] for q in chunk], [q[2] for q in chunk], [q[3] for q in chunk])
        correct += [a == q[4] for a, q in zip(answers, chunk)]
    sections = {}
    for q, ok in zip(answerable, correct):
        s = sections.setdefault(questions.sections[q[0]], [0, 0])
        s[0] += ok
        s[1] += 1
    return {"questions": len(items), "answered": len(answerable),
            "accuracy": sum(correct) / len(correct) if correct else 0.0,
            "sections": {name: {"accuracy": c / n, "answered": n} for name, (c, n) in sections.items()}}

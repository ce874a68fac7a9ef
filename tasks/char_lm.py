"""char_lm — many-to-many, autoregressive: predicts the next character; generates text.

Embedding -> stacked unidirectional recurrent layers -> logits over the characters.
Training uses truncated backpropagation through time: with ``train.stateful`` (the
default) the text is cut into ``batch_size`` contiguous streams, each batch holds the
next ``bptt`` characters of every stream, and the recurrent state is carried from one
window to the next and reset when an epoch (or a validation pass) starts. With
``train.stateful=false`` batches are random windows, each read from a zero state.

The export steps the recurrent *cells* with their carried state, one character at a
time, inside the graph, starting from the state reached after a fixed warm-up passage
of the training text (see ``CharVocab``): ``serving_default`` primes on raw text and samples
(temperature / top-k / top-p, seeded), ``score`` returns log-likelihoods and
``states`` every layer's hidden (and LSTM cell) state at every character.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import math
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from seqapps import decoding
from seqapps import commands
from seqapps.config import AT_LEAST_1, Config, DataConfig, ModelConfig, TrainConfig
from seqapps.data.readers import read_text_file
from seqapps.data.sources import resolve, tfds_load
from seqapps.errors import ConfigError, DataError
from seqapps.data.streams import ResetStates, random_window_dataset, stateful_dataset, stream_windows
from seqapps.models import CharLanguageModel
from seqapps.predict import Predictor, decode_strings
from seqapps.registry import register
from seqapps.task import Endpoint, Splits, Task

MAX_GENERATE = 20_000       # characters one generate call may produce
TEXT_SUFFIXES = {"", ".txt", ".text", ".md", ".rst", ".csv", ".tsv", ".py", ".tex", ".html", ".xml", ".json"}


@dataclasses.dataclass
class CharLMData(DataConfig):
    val_fraction: float = 0.1   # the last 10% of the text validates (contiguous, not shuffled)
    test_fraction: float = 0.0  # > 0 puts a test slice after the validation slice
    eval_streams: int = 16      # evaluation reads the text as this many contiguous streams


@dataclasses.dataclass
class CharLMModel(ModelConfig):
    units: int = 256
    layers: int = 1
    bidirectional: bool = False
    embedding_dim: int = 64


@dataclasses.dataclass
class CharLMTrain(TrainConfig):
    epochs: int = 10
    batch_size: int = 64
    learning_rate: float = 2e-3
    clipnorm: float = 5.0
    patience: int = 3
    bptt: int = 100             # truncated-BPTT window, characters
    stateful: bool = True       # carry the state across windows; false: random windows from zero state


@dataclasses.dataclass
class CharLMConfig(Config):
    data: CharLMData = dataclasses.field(default_factory=CharLMData)
    model: CharLMModel = dataclasses.field(default_factory=CharLMModel)
    train: CharLMTrain = dataclasses.field(default_factory=CharLMTrain)


# -- reading text ------------------------------------------------------------------------------
def read_text_source(path: Path) -> str:
    """A text file, or every text file in a folder (sorted, recursively), joined by blank lines."""
    if path.is_file():
        return read_text_file(path)
    files = sorted(p for p in path.rglob("*") if p.is_file() and not any(
        part.startswith(".") for part in p.relative_to(path).parts) and p.suffix.lower() in TEXT_SUFFIXES)
    if not files:
        raise DataError(f"{path}: no text files in the folder (expected .txt files or files without suffix)")
    return "\n\n".join(read_text_file(p) for p in files)


def split_text(text: str, cfg: CharLMData, source: str) -> tuple[str, str, str | None]:
    """First part trains, then validation, then (if ``test_fraction``) test; contiguous."""
    n = len(text)
    n_test = int(n * cfg.test_fraction)
    n_val = int(n * cfg.val_fraction)
    n_train = n - n_val - n_test
    if n_train < 2 or n_val < 2:
        raise DataError(f"{source}: {n} characters are too few to split into training and validation text")
    return text[:n_train], text[n_train:n_train + n_val], (text[n_train + n_val:] if n_test else None)


def load_texts(cfg: CharLMConfig, task: str, data_dir=None) -> Splits:
    source = resolve(cfg.data.source, task, data_dir)
    if source.kind == "tfds":
        return _from_tfds(source.tfds_name, cfg.data)
    if source.kind == "demo":
        text = importlib.import_module(f"seqapps.data.demo.{task}").text()
    else:
        text = read_text_source(source.paths.get("all") or source.paths["path"])
    if not text.strip():
        raise DataError(f"{cfg.data.source}: the text is empty")
    train, val, test = split_text(text, cfg.data, cfg.data.source)
    return Splits(train, val, test)


def _from_tfds(name: str, data_cfg) -> Splits:
    import tensorflow_datasets as tfds

    def read(split):
        pieces = []
        for ex in tfds.as_numpy(tfds_load(name, split)):
            if "text" not in ex:
                raise DataError(f"tfds:{name}: no 'text' feature (features: {', '.join(sorted(ex))})")
            pieces.append(ex["text"].decode("utf-8", "replace"))
        return "\n".join(pieces)

    train = read("train")
    try:
        val, test = read("validation"), read("test")
    except DataError:
        train, val, test = split_text(train, data_cfg, f"tfds:{name}")
    return Splits(train, val, test or None)


# -- the character vocabulary --------------------------------------------------------------------
class CharVocab:
    """Characters of the training text; id 0 is the unknown character. File ``chars.json``.

    ``warmup`` is a passage of the training text ending at a paragraph break. Every
    serving function reads it before its input, so reading starts from the state the
    model is used to: a model trained with carried state almost never saw the zero
    state, and a stateful LSTM primed from zero can babble for a hundred characters.
    """

    FILE = "chars.json"
    WARMUP = 256

    def __init__(self, chars: list[str], start: str, warmup: str = ""):
        self.chars, self.start = list(chars), start
        self.index = {c: i + 1 for i, c in enumerate(self.chars)}
        self.warmup = warmup or start

    @classmethod
    def fit(cls, text: str) -> "CharVocab":
        counts: dict[str, int] = {}
        for c in text:
            counts[c] = counts.get(c, 0) + 1
        start = "\n" if "\n" in counts else max(counts, key=counts.get)
        end = text.rfind("\n\n")
        end = end + 2 if end + 2 >= cls.WARMUP else len(text)
        return cls(sorted(counts), start, text[max(0, end - cls.WARMUP):end])

    @property
    def size(self) -> int:
        return len(self.chars) + 1

    @property
    def start_id(self) -> int:
        return self.index[self.start]

    def save(self, run_dir) -> None:
        (Path(run_dir) / self.FILE).write_text(json.dumps(
            {"chars": self.chars, "start": self.start, "warmup": self.warmup}, ensure_ascii=False) + "\n",
            encoding="utf-8")

    @classmethod
    def load(cls, run_dir) -> "CharVocab":
        data = json.loads((Path(run_dir) / cls.FILE).read_text(encoding="utf-8"))
        return cls(data["chars"], data["start"], data.get("warmup", ""))

    def encode(self, text: str) -> np.ndarray:
        get = self.index.get
        return np.fromiter((get(c, 0) for c in text), dtype=np.int32, count=len(text))

    def lookup(self):
        """char -> id in the graph (unknown -> 0); built once per vocabulary object."""
        if not hasattr(self, "_lookup"):
            self._lookup = keras.layers.StringLookup(vocabulary=self.chars, num_oov_indices=1, mask_token=None,
                                                     output_mode="int", name="char_lookup")
            self._lookup.build(None)
        return self._lookup


# -- serving ------------------------------------------------------------------------------------------------
def warm_start(model, ids) -> tuple:
    """(the state after all but the last id, read from the zero state, as numpy constants; the last id).
    Every serving function starts there and feeds that last warm-up character first."""
    ids = np.asarray(ids, dtype=np.int32)[None, :]
    state = model.initial_state(1)
    if ids.shape[1] > 1:
        state = decoding.read(model.step, state, tf.constant(ids[:, :-1]))["state"]
    return tf.nest.map_structure(lambda t: np.asarray(t), state), int(ids[0, -1])


def reader(model, prep):
    """``read(text, skip_unknown)`` -> (ids ``[batch, 1 + time]``: the last warm-up character, then
    each text's, 0-padded and at least one wide; the texts' lengths; the warm state for the batch)."""
    lookup = prep.lookup()
    warm, last = warm_start(model, prep.encode(prep.warmup))

    def read(text, skip_unknown=False):
        ids = tf.cast(lookup(tf.strings.unicode_split(text, "UTF-8", errors="replace")), tf.int32)
        if skip_unknown:  # characters outside the vocabulary are skipped
            ids = tf.ragged.boolean_mask(ids, ids > 0)
        lengths = tf.cast(ids.row_lengths(), tf.int32)
        dense = ids.to_tensor(default_value=0)
        dense = tf.pad(dense, [[0, 0], [0, tf.maximum(0, 1 - tf.shape(dense)[1])]])
        batch = tf.shape(dense)[0]
        state = tf.nest.map_structure(lambda t: tf.repeat(tf.constant(t), batch, axis=0), warm)
        return tf.concat([tf.fill([batch, 1], last), dense], axis=1), lengths, state
    return read


class CharLMPredictor(Predictor):
    """``generate(prime, length, temperature, top_k, top_p, seed)``, ``score(text)``, ``states(text)``."""

    def generate(self, prime="", length: int = 200, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
                 seed: int | None = None):
        """The continuation of ``prime`` (a str, or a list of str for a list of continuations)."""
        check_generate_args(length, temperature, top_k, top_p)
        primes = [prime] if isinstance(prime, str) else list(prime)
        if seed is None:
            seed = int(np.random.default_rng().integers(0, 2 ** 31 - 1))
        out = self.call(prime=primes, length=int(length), temperature=float(temperature), top_k=int(top_k),
                        top_p=float(top_p), seed=int(seed))
        texts = decode_strings(out["text"]) if primes else []
        return texts[0] if isinstance(prime, str) else texts

    def score(self, text: str, streams: int = 16) -> dict:
        """Nats and bits per character of ``text`` read as ``streams`` contiguous pieces."""
        if len(text) < 2:
            raise DataError(f"need at least 2 characters to score, got {len(text)}")
        streams = max(1, min(int(streams), (len(text) - 1)))
        size = math.ceil((len(text) - 1) / streams)
        # pieces overlap by one character, so every character but the first is predicted once
        pieces = [text[i:i + size + 1] for i in range(0, len(text) - 1, size)]
        out = self.call("score", text=pieces)
        total, count = float(np.sum(out["log_likelihood"], dtype=np.float64)), int(np.sum(out["count"]))
        nats = -total / max(count, 1)
        return {"nats_per_char": nats, "bits_per_char": nats / math.log(2), "perplexity": math.exp(nats),
                "chars": count}

    def states(self, text: str) -> dict:
        """Every layer's hidden state (and LSTM cell state) after each character of ``text``:
        ``{"chars": [...], "hidden": [time, layers, units], "cell": [...] or None}``."""
        if not text:
            raise DataError("the text to inspect is empty")
        out = self.call("states", text=[text])
        n = int(out["length"][0])
        cell = out["cell"][0, :n] if self.metadata["config"]["model"]["cell"] == "lstm" else None
        return {"chars": list(text)[:n], "hidden": out["hidden"][0, :n], "cell": cell}

    def predict(self, inputs):
        return self.generate(list(inputs))

    def format(self, inputs, results):
        return [p + r for p, r in zip(inputs, results)]


def check_generate_args(length, temperature, top_k, top_p) -> None:
    """The documented limits of ``generate``; everything else is an error naming the argument."""
    if not 0 <= int(length) <= MAX_GENERATE:
        raise ConfigError(f"length must be between 0 and {MAX_GENERATE} characters, got {length}")
    if not float(temperature) >= 0:
        raise ConfigError(f"temperature must be >= 0 (0 picks the most likely character), got {temperature}")
    if int(top_k) < 0:
        raise ConfigError(f"top_k must be >= 0 (0 switches it off), got {top_k}")
    if not 0 < float(top_p) <= 1:
        raise ConfigError(f"top_p must be in (0, 1] (1 switches it off), got {top_p}")


@register
class CharLM(Task):
    name = "char_lm"
    topology = "many-to-many, autoregressive"
    description = "prime text -> generated text (character language model)"
    default_data = "tinyshakespeare"
    config_class = CharLMConfig
    predictor_class = CharLMPredictor
    unused = {"data.max_length": "it reads the text in train.bptt windows"}
    ranges = {"train.bptt": AT_LEAST_1, "data.eval_streams": AT_LEAST_1}

    def cli_commands(self):
        return [commands.GENERATE, commands.INSPECT]  # python -m seqapps generate | inspect

    def load_data(self, cfg, data_dir=None):
        return load_texts(cfg, self.name, data_dir)

    def fit_preprocessing(self, cfg, splits):
        return CharVocab.fit(splits.train)

    def load_preprocessing(self, cfg, run_dir):
        return CharVocab.load(run_dir)

    def datasets(self, cfg, prep, splits):
        t = cfg.train
        if t.bptt < 1:
            raise ConfigError(f"train.bptt must be >= 1, got {t.bptt}")
        train_ids, val_ids = prep.encode(splits.train), prep.encode(splits.val)
        if t.stateful:
            val_bptt = max(1, min(t.bptt, (len(val_ids) - 1) // t.batch_size))
            return (stateful_dataset(train_ids, t.batch_size, t.bptt, "training text"),
                    stateful_dataset(val_ids, t.batch_size, val_bptt, "validation text"))
        val_x, val_y = stream_windows(val_ids, 1, min(t.bptt, len(val_ids) - 1), "validation text")
        val = tf.data.Dataset.from_tensor_slices((val_x[:, 0], val_y[:, 0])).batch(t.batch_size)
        return random_window_dataset(train_ids, t.batch_size, t.bptt, t.seed), val

    def build_model(self, cfg, prep):
        m = cfg.model
        if m.bidirectional:
            raise ConfigError("model.bidirectional must be false for char_lm: a language model reads left to right")
        return CharLanguageModel(prep.size, cell=m.cell, units=m.units, layers=m.layers, embedding_dim=m.embedding_dim,
                                 dropout=m.dropout, recurrent_dropout=m.recurrent_dropout,
                                 batch_size=cfg.train.batch_size if cfg.train.stateful else 0, name="char_lm")

    def compile(self, model, cfg, optimizer, prep):
        model.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))

    def callbacks(self, cfg, prep):
        return [ResetStates()] if cfg.train.stateful else []

    def endpoints(self, model, prep, cfg):
        read, id_to_char = reader(model, prep), tf.constant([""] + prep.chars)
        step = decoding.banned(model.step, [0])  # never sample the unknown id

        def generate(prime, length, temperature, top_k, top_p, seed):
            # an empty prime continues straight after the warm-up passage (a paragraph break)
            ids, lengths, state = read(prime, skip_unknown=True)
            state = decoding.read(model.step, state, ids, lengths)["state"]  # all but each row's last character
            n = tf.clip_by_value(length, 0, MAX_GENERATE)  # one spare step keeps the shapes defined when n is 0
            out = decoding.sample(step, state, tf.gather(ids, lengths, batch_dims=1), -1, tf.maximum(n, 1),
                                  temperature, top_k, top_p, seed)
            text = tf.strings.reduce_join(tf.gather(id_to_char, out["tokens"][:, :n]), axis=1)
            return {"text": text, "length": tf.fill(tf.shape(prime), n)}

        def score(text):
            ids, lengths, state = read(text)
            logits = decoding.read(model.step, state, ids, lengths + 1, record=True)["all_logits"]
            logits, targets = logits[:, 1:-1], ids[:, 2:]  # after characters 0..n-2: predicts 1..n-1
            nll = tf.nn.sparse_softmax_cross_entropy_with_logits(targets, logits)
            mask = tf.sequence_mask(lengths - 1, tf.shape(targets)[1], dtype=tf.float32)
            return {"log_likelihood": -tf.reduce_sum(nll * mask, axis=1), "count": tf.maximum(lengths - 1, 0)}

        def states(text):
            ids, lengths, state = read(text)
            recorded = decoding.read(model.step, state, ids, lengths + 1, record=True)["all_states"]
            hidden = recorded["h"][:, 1:]
            return {"hidden": hidden, "cell": recorded["c"][:, 1:] if "c" in recorded else hidden, "length": lengths}

        scalar = lambda dtype, name: tf.TensorSpec([], dtype, name=name)  # noqa: E731
        return {
            "serving_default": Endpoint(generate, [
                tf.TensorSpec([None], tf.string, name="prime"), scalar(tf.int32, "length"),
                scalar(tf.float32, "temperature"), scalar(tf.int32, "top_k"), scalar(tf.float32, "top_p"),
                scalar(tf.int64, "seed")],
                f"prime text [batch] -> text: the generated continuation [batch], length [batch]; "
                f"length is clipped to 0..{MAX_GENERATE}, temperature 0 is greedy, top_k 0 and top_p 1 are off, "
                "the same seed (and batch) gives the same text; characters outside the vocabulary are skipped; "
                "reading starts after the warm-up passage in metadata.json, so an empty prime starts a new paragraph"),
            "score": Endpoint(score, [tf.TensorSpec([None], tf.string, name="text")],
                              "text [batch] -> log_likelihood (nats, sum over characters 2..n) and count [batch]"),
            "states": Endpoint(states, [tf.TensorSpec([None], tf.string, name="text")],
                               "text [batch] -> hidden and cell [batch, time, layers, units] after each character "
                               "(read after the warm-up passage; cell repeats hidden for GRU/SimpleRNN), length [batch]"),
        }

    def trackables(self, prep):
        return [prep.lookup()]

    def metadata(self, prep):
        return {"vocabulary_size": prep.size, "chars": "".join(prep.chars), "warmup": prep.warmup,
                "max_generate": MAX_GENERATE}

    def evaluate(self, predictor, examples, cfg, out_dir=None, plot=False):
        return predictor.score(examples, streams=cfg.data.eval_streams)

"""char_lm — many-to-many, autoregressive: predicts the next character; generates text.

Embedding -> stacked unidirectional recurrent layers -> logits over the characters.
Training uses truncated backpropagation through time: with ``train.stateful`` (the
default) the text is cut into ``batch_size`` contiguous streams, each batch holds the
next ``bptt`` characters of every stream, and the recurrent state is carried from one
window to the next and reset when an epoch (or a validation pass) starts. With
``train.stateful=false`` batches are random windows, each read from a zero state.

The export steps the recurrent *cells* with their carried state, one character at a
time, inside the graph, starting from the state reached after a fixed warm-up passage
of the training text (see ``CharVocab`` and :mod:`tasks.char_lm.serving`): ``serving_default`` primes on raw text and samples
(temperature / top-k / top-p, seeded), ``score`` returns log-likelihoods and
``states`` every layer's hidden (and LSTM cell) state at every character.

``--set model.architecture=transformer`` makes the model :class:`tasks.char_lm.transformer.CharTransformer`:
``model.layers`` causal self-attention blocks of width ``model.units`` (``model.heads`` heads, ALiBi
relative positions) whose context window is ``train.bptt`` characters. It always trains on random
windows (``train.stateful`` is the recurrent model's); its export reads and samples through a ring
key/value cache of the last ``train.bptt`` characters, so the same signatures work and a longer
prime counts only by its last ``train.bptt`` characters; ``states`` records each block's output.
"""

from __future__ import annotations

import dataclasses

import keras

from tasks.char_lm import commands
from seqapps.core.config import AT_LEAST_1, Config, DataConfig, ModelConfig, TrainConfig, TransformerConfig
from tasks.char_lm.data import CharVocab, load_texts, split_ids
from seqapps.core.errors import ConfigError, DataError
from seqapps.training.distribute import per_replica
from seqapps.training.callbacks import ResetStates
from tasks.char_lm.streams import random_window_dataset, stateful_dataset, window_dataset
from seqapps.layers.recurrent import GATES
from seqapps.layers.transformer import ARCHITECTURES
from tasks.char_lm.model import CharLanguageModel
from tasks.char_lm.transformer import CharTransformer
from seqapps.core.presets import Preset
from seqapps.inference.predictor import Predictor
from seqapps.core.registry import register
from tasks.char_lm.predicting import MAX_GENERATE, Predictions
from tasks.char_lm.serving import lm_endpoints
from seqapps.core.task import Task, whole

@dataclasses.dataclass
class CharLMData(DataConfig):
    val_fraction: float = 0.1   # the last 10% of the text validates (contiguous, not shuffled)
    test_fraction: float = 0.0  # > 0 puts a test slice after the validation slice
    eval_streams: int = 16      # evaluation reads the text as this many contiguous streams


@dataclasses.dataclass
class CharLMModel(TransformerConfig, ModelConfig):
    units: int = 256
    layers: int = 1
    bidirectional: bool = False
    embedding_dim: int = 64      # rnn; the transformer's embeddings have its width (model.units)


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


class CharLMPredictor(Predictions, Predictor):
    """``generate`` and ``score`` (:mod:`tasks.char_lm.predicting`, shared with the ONNX export's
    predictor), and ``states(text)``."""

    def states(self, text: str) -> dict:
        """Every layer's hidden state (and LSTM cell state) after each character of ``text``, and the
        gates at each: ``{"chars": [...], "hidden": [time, layers, units], "cell": [...] or None,
        "gates": {name: [time, layers, units]}, "attention": [time, layers, heads, context] or None}``
        (LSTM input/forget/output/candidate, GRU update/reset; the transformer's attention by distance back)."""
        if not text:
            raise DataError("the text to inspect is empty")
        out = self.call("states", text=[text])
        n = int(out["length"][0])
        model = self.metadata["config"]["model"]
        recurrent = model.get("architecture", "rnn") == "rnn"
        names = GATES[model["cell"]] if recurrent else ()
        gates = {name: out["gates"][0, :n, :, k] for k, name in enumerate(names)} if "gates" in out else {}
        cell = out["cell"][0, :n] if model["cell"] == "lstm" and recurrent else None
        attention = out["attention"][0, :n] if not recurrent and "attention" in out else None
        return {"chars": list(text)[:n], "hidden": out["hidden"][0, :n], "cell": cell, "gates": gates,
                "attention": attention}


@register
class CharLM(Task):
    name = "char_lm"
    topology = "many-to-many, autoregressive"
    description = "prime text -> generated text (character language model)"
    default_data = "tinyshakespeare"
    config_class = CharLMConfig
    predictor_class = CharLMPredictor
    prep_class = CharVocab
    unused = {"data.max_length": "it reads the text in train.bptt windows"}
    ranges = {"train.bptt": AT_LEAST_1, "data.eval_streams": AT_LEAST_1}
    choices = {"model.architecture": ARCHITECTURES}
    presets = (Preset("shakespeare", "GRU 256, batch 64, 100-character windows, 12 epochs of Adam 3e-3 with cosine "
                      "decay (no early stop)",
                      ("model.cell=gru", "model.units=256", "train.batch_size=64", "train.bptt=100", "train.epochs=12",
                       "train.learning_rate=3e-3", "train.decay=cosine", "train.patience=0"), data="tinyshakespeare"),
               Preset("nanogpt-cpu", "nanoGPT's CPU recipe: a 4-block, 4-head transformer 128 wide, 64-character "
                      "context, batch 12, 2,000 steps of AdamW 1e-3 with cosine decay, clipnorm 1, no dropout",
                      ("model.architecture=transformer", "model.units=128", "model.layers=4", "model.heads=4",
                       "model.dropout=0.0", "train.bptt=64", "train.batch_size=12", "train.optimizer=adamw",
                       "train.learning_rate=1e-3", "train.clipnorm=1.0", "train.decay=cosine", "train.epochs=4",
                       "train.steps_per_epoch=500", "train.patience=0"), data="tinyshakespeare"))

    def cli_commands(self):
        return [commands.GENERATE, commands.INSPECT]  # python -m seqapps generate | inspect

    def load_data(self, cfg, data_dir=None):
        return load_texts(cfg.data, self.name, data_dir)

    def datasets(self, cfg, prep, splits):
        t = cfg.train
        if t.bptt < 1:
            raise ConfigError(f"train.bptt must be >= 1, got {t.bptt}")
        # windows are read batch by batch: from the ids file of the fitting pass for files, from
        # the text encoded in memory for demo and tfds sources
        train_ids, val_ids = split_ids(splits.train, prep), split_ids(splits.val, prep)
        if self._stateful(cfg):
            val_bptt = max(1, min(t.bptt, (len(val_ids) - 1) // t.batch_size))
            return (stateful_dataset(train_ids, t.batch_size, t.bptt, "training text"),
                    stateful_dataset(val_ids, t.batch_size, val_bptt, "validation text"))
        val = window_dataset(val_ids, t.batch_size, min(t.bptt, len(val_ids) - 1))
        return random_window_dataset(train_ids, t.batch_size, t.bptt, t.seed), val

    def build_model(self, cfg, prep):
        m = cfg.model
        if m.bidirectional:
            raise ConfigError("model.bidirectional must be false for char_lm: a language model reads left to right")
        if m.architecture == "transformer":
            return CharTransformer(prep.size, units=m.units, layers=m.layers, heads=m.heads, ff_units=m.ff_units,
                                   dropout=m.dropout, context=cfg.train.bptt, name="char_lm")
        return CharLanguageModel(prep.size, cell=m.cell, units=m.units, layers=m.layers, embedding_dim=m.embedding_dim,
                                 dropout=m.dropout, recurrent_dropout=m.recurrent_dropout,
                                 batch_size=per_replica(cfg.train.batch_size) if self._stateful(cfg) else 0,
                                 name="char_lm")

    def compile(self, model, cfg, optimizer, prep):
        model.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))

    def callbacks(self, cfg, prep):
        return [ResetStates()] if self._stateful(cfg) else []

    @staticmethod
    def _stateful(cfg) -> bool:
        """Truncated BPTT with carried state: the recurrent model's (the transformer reads windows)."""
        return cfg.train.stateful and cfg.model.architecture == "rnn"

    def endpoints(self, model, prep, cfg):
        return lm_endpoints(model, prep)

    def trackables(self, prep):
        return [prep.lookup()]

    def metadata(self, prep):
        return {"vocabulary_size": prep.size, "chars": "".join(prep.chars), "warmup": prep.warmup,
                "max_generate": MAX_GENERATE}

    def evaluate(self, predictor, examples, cfg, out_dir=None, plot=False):
        return predictor.score(whole(examples), streams=cfg.data.eval_streams)  # a file's split: its text

    tiny_overrides = ["model.units=8", "model.embedding_dim=8", "train.batch_size=8", "train.bptt=16",
                      "train.epochs=1", "train.steps_per_epoch=5", "train.patience=0", "data.eval_streams=4"]

    def sample_inputs(self, rng, n, metadata, signature="serving_default"):
        from seqapps.core.testing import random_texts

        texts = random_texts(rng, n, list(metadata.get("chars", "")), long_words=60)
        if signature == "serving_default":  # greedy (temperature 0): sampling draws would depend on the row
            fixed = {"length": 12, "temperature": 0.0, "top_k": 0, "top_p": 1.0, "seed": 1}
            return [{"prime": t, **fixed} for t in texts]
        return [{"text": t} for t in texts]

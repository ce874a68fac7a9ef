"""The Task contract: what a task module declares; everything else is shared.

A task says what its data looks like (``load_data``), how raw examples become
tensors (``fit_preprocessing`` / ``datasets``), how to build its model, how it is
served (``endpoints``: raw inputs in, readable outputs out) and how it is scored
(``evaluate``, which always goes through the serving path, so a run directory and
its export are scored by the same code).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Callable

from seqapps.core import config as configlib
from seqapps.core.config import Config
from seqapps.core.errors import ConfigError

if TYPE_CHECKING:  # the contract names them; the module imports neither (a prepared run needs no TensorFlow)
    import keras
    import tensorflow as tf


@dataclasses.dataclass
class Splits:
    """Raw examples per split, in whatever form the task reads (lists, frames...), as
    :func:`seqapps.data.sources.load_splits` made them: ``test`` is None when the source
    has no test split; ``info`` holds what the task learned while reading (labels...)."""

    train: Any
    val: Any
    test: Any = None
    info: dict = dataclasses.field(default_factory=dict)


def whole(examples):
    """A split as the task's ``evaluate`` reads it: a streamed split (anything with
    ``materialize()``, see :mod:`seqapps.data.streaming`) read into memory, anything else as it is.
    Scoring reads the validation and test splits whole; training never does."""
    return examples.materialize() if hasattr(examples, "materialize") else examples


@dataclasses.dataclass
class Endpoint:
    """A serving function and its input signature (``TensorSpec`` names are input keys)."""

    fn: Callable
    input_signature: list
    description: str = ""


class Task:
    name: str = ""
    topology: str = ""
    description: str = ""
    default_data: str = "demo"
    config_class: type = Config
    monitor: str = "val_loss"          # metric that picks the best checkpoint
    monitor_mode: str = "min"
    predictor_class: type | None = None  # a seqapps.inference.predictor.Predictor subclass
    prep_class: type | None = None     # a seqapps.data.preprocessing.Preprocessing subclass
    #: documented ranges / choices of this task's own keys, checked with the shared ones in
    #: seqapps.core.config.RANGES / CHOICES (``{"train.bptt": config.AT_LEAST_1}``, ``{"data.missing": (...)}``)
    ranges: dict = {}
    choices: dict = {}
    #: shared keys this task cannot use -> why; any value but the task's default is rejected
    unused: dict = {}
    #: named recipes (seqapps.core.presets.Preset); one whose ``data`` is a dataset is that dataset's default
    presets: tuple = ()

    # -- configuration ---------------------------------------------------------------
    def default_config(self) -> Config:
        cfg = self.config_class()
        cfg.data.source = self.default_data
        return cfg

    def validate(self, cfg: Config) -> None:
        """Reject, with one :class:`ConfigError` line naming the key, a value this task cannot
        use. Training calls it on the resolved config before anything is written."""
        configlib.check(cfg, self.ranges, self.choices)
        if configlib.get_value(cfg, "model.architecture") == "transformer":
            from seqapps.layers.transformer import check_heads

            check_heads(cfg.model.units, cfg.model.heads)
        defaults = self.config_class()
        for key, why in self.unused.items():
            value = configlib.get_value(cfg, key)
            if value != configlib.get_value(defaults, key):
                raise ConfigError(f"{key} is not used by {self.name} ({why}); got {value!r}, leave it unset")

    def cli_commands(self) -> list:
        """Subcommands this task adds to ``python -m seqapps``: :class:`seqapps.core.commands.Command`
        entries (name, help, add_arguments(parser), run(args))."""
        return []

    # -- data ----------------------------------------------------------------------------
    def load_data(self, cfg: Config, data_dir=None) -> Splits:
        raise NotImplementedError

    def fit_preprocessing(self, cfg: Config, splits: Splits):
        """Fit vocabularies and the like on the training split: ``prep_class.fit``; the
        result has ``save(run_dir)`` and ``load_preprocessing`` reads it back."""
        return self.prep_class.fit(cfg, splits)

    def load_preprocessing(self, cfg: Config, run_dir):
        return self.prep_class.load(run_dir, cfg)

    def datasets(self, cfg: Config, prep, splits: Splits) -> tuple[tf.data.Dataset, tf.data.Dataset]:
        raise NotImplementedError

    # -- model ---------------------------------------------------------------------------
    def build_model(self, cfg: Config, prep) -> keras.Model:
        raise NotImplementedError

    def compile(self, model: keras.Model, cfg: Config, optimizer, prep) -> None:
        """Compile ``model`` with ``optimizer``; ``prep`` is what ``fit_preprocessing`` returned."""
        raise NotImplementedError

    def callbacks(self, cfg: Config, prep) -> list:
        return []

    # -- serving and scoring -----------------------------------------------------------------
    def endpoints(self, model: keras.Model, prep, cfg: Config) -> dict[str, Endpoint]:
        """Serving functions by name; the first is ``serving_default``."""
        raise NotImplementedError

    def trackables(self, prep) -> list:
        """Layers with state (lookup tables...) the serving functions use besides the model."""
        return []

    def metadata(self, prep) -> dict:
        """Task facts for metadata.json (labels, vocab sizes...)."""
        return {}

    def decoding(self, cfg: Config) -> dict:
        """The decoding settings an export uses by default (beam width...), written to
        metadata.json as ``decoding`` so that helpers read them there, not from the config."""
        return {}

    def evaluate(self, predictor, examples, cfg: Config, out_dir=None, plot: bool = False) -> dict:
        """Score raw ``examples`` through ``predictor``; returns JSON-able metrics.

        With ``out_dir``, plots the task always makes (a confusion matrix...) go there;
        ``plot`` asks for the extra ones (attention maps...)."""
        raise NotImplementedError

    def format_metrics(self, metrics: dict) -> str:
        return "\n".join(f"  {k}: {v:.4f}" if isinstance(v, float) else f"  {k}: {v}"
                         for k, v in metrics.items() if not isinstance(v, (dict, list)))

    # -- the contract tests' hooks --------------------------------------------------------------
    #: ``--set`` overrides that shrink the task to seconds of training on ``--data demo``
    #: (tiny units, few steps); the contract harness in tests/ trains every task with them.
    tiny_overrides: list[str] | None = None

    def sample_inputs(self, rng, n: int, metadata: dict, signature: str = "serving_default") -> list[dict]:
        """``n`` random raw examples for ``signature`` of an export described by ``metadata``
        (its metadata.json): one ``{input name: value}`` dict each. A batched input holds one
        example's value (a str, image bytes, a token list, a ``[window, features]`` array);
        a scalar input (beam width, seed...) the value to call with, the same in every dict
        and deterministic (temperature 0 for sampling). ``rng`` is a ``numpy.random.Generator``.
        The contract tests check that each example's outputs do not depend on the batch."""
        raise NotImplementedError(f"{type(self).__name__} does not say how to draw sample inputs")

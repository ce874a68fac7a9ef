"""Configs are data: nested dataclasses, ``--set a.b=c`` overrides, JSON on disk.

A task's config is a :class:`Config` with three sections, ``data``, ``model`` and
``train``; tasks subclass the section dataclasses to add their own fields.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any

from seqapps.core.errors import ConfigError


@dataclasses.dataclass
class DataConfig:
    source: str = "demo"        # demo | a named dataset | a path | tfds:NAME
    val_fraction: float = 0.1   # used when a source has no validation split
    test_fraction: float = 0.1  # used when a source has no test split
    max_length: int = 200       # inputs are truncated to this many tokens
    shuffle_buffer: int = 100_000  # streamed sources: examples held for shuffling (bounded memory)
    fit_sample: int = 0         # streamed sources: > 0 fits vocabularies and labels on the first N training rows
    skip_bad_rows: bool = False  # streamed sources: skip (and count) malformed rows instead of stopping


@dataclasses.dataclass
class ModelConfig:
    cell: str = "lstm"          # rnn | lstm | gru
    units: int = 128
    layers: int = 1
    bidirectional: bool = True
    dropout: float = 0.0        # dropout on each recurrent layer's outputs
    recurrent_dropout: float = 0.0  # > 0 leaves the fused cuDNN kernel


@dataclasses.dataclass
class TransformerConfig:
    """The settings a text task's ``model.architecture=transformer`` adds (the width is ``model.units``,
    the blocks ``model.layers``, the dropout ``model.dropout``); see seqapps.layers.sequence_encoder."""
    architecture: str = "rnn"   # rnn (the recurrent stack, model.cell) | transformer (self-attention blocks)
    heads: int = 4              # attention heads per block; must divide model.units
    ff_units: int = 0           # feed-forward units per block (0: 4 x model.units)


@dataclasses.dataclass
class TrainConfig:
    epochs: int = 10
    batch_size: int = 64
    optimizer: str = "adam"     # adam | adamw | sgd | rmsprop
    learning_rate: float = 1e-3
    decay: str = "none"         # none | cosine: the learning rate falls to 0 along a cosine over all epochs
    warmup: int = 0             # batches over which the learning rate rises linearly from 0 (then decay or hold)
    clipnorm: float = 1.0       # 0 disables gradient clipping
    patience: int = 3           # early stopping on the monitored metric; 0 disables
    seed: int = 1
    backend: str = ""           # tensorflow | jax | torch: the Keras backend that trains ("": the task's default)
    strategy: str = "default"   # default | mirrored | multiworker
    worker_timeout: float = 300.0  # multiworker: seconds to wait for every worker of TF_CONFIG to start
    mixed_precision: str = "false"  # false | true (= float16) | float16 | bfloat16: Keras' mixed_* policy
                                    # (float32 weights, computation in 16 bits); bfloat16 suits CPUs
                                    # with AVX-512 BF16 or AMX, float16 GPUs
    ema: float = 0.0            # > 0: keep an exponential moving average of the weights (momentum)
                                #      and validate/checkpoint with it
    backup_every: int = 100     # batches between resumable backups
    steps_per_epoch: int = 0    # 0 = the whole training set each epoch
    validation_steps: int = 0   # 0 = the whole validation split after each epoch; N = its first N batches
    time_limit: float = 0.0     # seconds of fitting after which training stops (the epoch then ends early
                                # and is validated); 0 = no limit
    full_batches: str = "auto"  # auto | true | false: no odd-sized batch from length buckets, so a compiling
                                # backend meets one shape per bucket (seqapps.data.pipeline.full_buckets);
                                # auto = on the JAX backend, off on TensorFlow (which does not compile per shape)

    def fills_batches(self) -> bool:
        """Whether length-bucketed batches are all full (``full_batches``, ``auto`` resolved by ``backend``)."""
        return self.full_batches == "true" or (self.full_batches == "auto" and self.backend == "jax")


@dataclasses.dataclass
class Config:
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")

    def override(self, assignments) -> "Config":
        """Apply ``["a.b=c", ...]`` in place and return self."""
        for item in assignments or ():
            if "=" not in item:
                raise ConfigError(f"--set expects KEY=VALUE (for example model.cell=gru), got {item!r}")
            key, value = item.split("=", 1)
            set_value(self, key.strip(), value.strip())
        return self

    @classmethod
    def from_dict(cls, data: dict) -> "Config":
        cfg = cls()
        _update(cfg, data, prefix="")
        return cfg

    @classmethod
    def load(cls, path: str | Path) -> "Config":
        return cls.from_dict(json.loads(Path(path).read_text()))


def keys(cfg) -> list[str]:
    """Every settable dotted key of a config."""
    out = []
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            out += [f"{f.name}.{k}" for k in keys(value)]
        else:
            out.append(f.name)
    return out


def set_value(cfg, key: str, raw: str) -> None:
    """Set ``cfg.<key>`` from its string form, checked against the field's type."""
    target, parts = cfg, key.split(".")
    for i, part in enumerate(parts):
        names = {f.name: f for f in dataclasses.fields(target)}
        if part not in names:
            valid = ", ".join(keys(cfg))
            raise ConfigError(f"unknown config key {key!r}; valid keys: {valid}")
        if i == len(parts) - 1:
            if dataclasses.is_dataclass(getattr(target, part)):
                raise ConfigError(f"{key!r} is a section; set one of its keys, e.g. {key}.{keys(getattr(target, part))[0]}")
            hint = typing.get_type_hints(type(target))[part]
            setattr(target, part, parse_value(raw, hint, key))
        else:
            target = getattr(target, part)
            if not dataclasses.is_dataclass(target):
                raise ConfigError(f"unknown config key {key!r}; valid keys: {', '.join(keys(cfg))}")


_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def parse_value(raw: Any, hint, key: str = "value"):
    """Convert ``raw`` (a string or a JSON value) to the type ``hint``."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if raw is None or (isinstance(raw, str) and raw.lower() in {"none", "null", ""}):
            return None
        return parse_value(raw, args[0], key)
    if origin in (list, tuple):
        (item,) = typing.get_args(hint)[:1] or (str,)
        items = raw if isinstance(raw, (list, tuple)) else [s for s in str(raw).split(",") if s.strip()]
        return origin(parse_value(s.strip() if isinstance(s, str) else s, item, key) for s in items)
    try:
        if hint is bool:
            if isinstance(raw, bool):
                return raw
            low = str(raw).lower()
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
            raise ValueError
        if hint is int:
            if isinstance(raw, float) and raw.is_integer():
                return int(raw)
            return int(raw)
        if hint is float:
            return float(raw)
        if hint is str and isinstance(raw, bool):  # a setting that was a bool in older saved configs
            return "true" if raw else "false"
    except (TypeError, ValueError):
        raise ConfigError(f"{key} expects {hint.__name__}, got {raw!r}") from None
    return raw if hint is not str else str(raw)


def _update(cfg, data: dict, prefix: str) -> None:
    hints = typing.get_type_hints(type(cfg))
    for name, value in data.items():
        if not hasattr(cfg, name):
            raise ConfigError(f"unknown config key {prefix + name!r} in saved config")
        current = getattr(cfg, name)
        if dataclasses.is_dataclass(current):
            _update(current, value, prefix + name + ".")
        else:
            setattr(cfg, name, parse_value(value, hints[name], prefix + name))


# -- documented ranges ---------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Range:
    """Numbers from ``low`` to ``high`` (``None``: unbounded); ``open`` ends are excluded."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def __contains__(self, value) -> bool:
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        return self.high is None or not (value > self.high or (self.high_open and value == self.high))

    def __str__(self) -> str:
        if self.high is None:
            return f"{'>' if self.low_open else '>='} {self.low}"
        if self.low is None:
            return f"{'<' if self.high_open else '<='} {self.high}"
        return f"in {'(' if self.low_open else '['}{self.low}, {self.high}{')' if self.high_open else ']'}"


AT_LEAST_0, AT_LEAST_1, POSITIVE = Range(0), Range(1), Range(0, low_open=True)
FRACTION = Range(0, 1, high_open=True)  # [0, 1): a dropout rate, a share of the data, a momentum

#: every shared option's documented range, checked by :func:`check` (keys a config lacks are skipped);
#: a task adds its own in ``Task.ranges``
RANGES: dict[str, Range] = {
    "data.val_fraction": FRACTION, "data.test_fraction": FRACTION, "data.max_length": AT_LEAST_1,
    "data.shuffle_buffer": AT_LEAST_1, "data.fit_sample": AT_LEAST_0,
    "model.units": AT_LEAST_1, "model.layers": AT_LEAST_1, "model.embedding_dim": AT_LEAST_1,
    "model.dropout": FRACTION, "model.recurrent_dropout": FRACTION, "model.embedding_dropout": FRACTION,
    "model.attention_units": AT_LEAST_1, "model.beam_width": AT_LEAST_1,
    "model.heads": AT_LEAST_1, "model.ff_units": AT_LEAST_0,
    "train.epochs": AT_LEAST_1, "train.batch_size": AT_LEAST_1, "train.learning_rate": POSITIVE,
    "train.clipnorm": AT_LEAST_0, "train.patience": AT_LEAST_0, "train.ema": FRACTION,
    "train.backup_every": AT_LEAST_0, "train.warmup": AT_LEAST_0, "train.steps_per_epoch": AT_LEAST_0,
    "train.validation_steps": AT_LEAST_0,
    "train.time_limit": AT_LEAST_0, "train.worker_timeout": POSITIVE,
}

#: the values a shared string option may take; a task adds its own in ``Task.choices``
CHOICES: dict[str, tuple[str, ...]] = {
    "model.cell": ("rnn", "lstm", "gru"),
    "model.pooling": ("last", "max", "mean", "max_mean"),
    "model.attention": ("additive", "multiplicative", "none"),
    "train.optimizer": ("adam", "adamw", "sgd", "rmsprop"),
    "train.decay": ("none", "cosine"),
    "train.strategy": ("default", "mirrored", "multiworker"),
    "train.full_batches": ("auto", "true", "false"),
    "train.mixed_precision": ("false", "true", "float16", "bfloat16"),
    "train.backend": ("", "tensorflow", "jax", "torch"),  # "": the task's default (seqapps.training.backends checks it is installed)
}


def get_value(cfg, key: str, default=None):
    """``cfg.<key>`` for a dotted key, or ``default`` when the config has no such key."""
    for part in key.split("."):
        if not dataclasses.is_dataclass(cfg) or not hasattr(cfg, part):
            return default
        cfg = getattr(cfg, part)
    return cfg


def check(cfg, ranges: dict | None = None, choices: dict | None = None) -> None:
    """Raise one :class:`ConfigError` line for the first value outside its documented range or
    choices: the shared :data:`RANGES` / :data:`CHOICES`, updated by ``ranges`` / ``choices``."""
    missing = object()
    for key, allowed in {**RANGES, **(ranges or {})}.items():
        value = get_value(cfg, key, missing)
        if value is missing or value is None or isinstance(value, (str, bool, list, tuple)):
            continue
        if value != value or value not in allowed:  # NaN is in no range
            raise ConfigError(f"{key} must be {allowed}, got {value!r}")
    for key, allowed in {**CHOICES, **(choices or {})}.items():
        value = get_value(cfg, key, missing)
        if value is not missing and value not in allowed:
            raise ConfigError(f"{key} must be one of {', '.join(allowed)}, got {value!r}")

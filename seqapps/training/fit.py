"""The one fit entry every task goes through.

Seeds, the ``tf.distribute`` strategy scope, mixed precision, resumable backups,
the best checkpoint, early stopping, TensorBoard, the CSV history and NaN checks
live here once.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import shutil
import sys
import time
import warnings
from pathlib import Path

from seqapps.training import distribute, backends as engine

from seqapps.core import presets, registry
from seqapps.core.errors import ConfigError, SeqappsError
from seqapps.core import config as configlib
from seqapps.core.task import whole
from seqapps.training.run_dir import locked
from seqapps.inference.trained import TrainedRun as Run  # a run directory that can predict and export


def resolve_config(task, data=None, epochs=None, batch_size=None, overrides=(), strategy=None, preset=None):
    """The config a run trains with: the task's defaults, then the preset (``preset``, else
    the recipe of the dataset ``data`` if the task has one), then the explicit arguments and
    ``overrides``. Every value is checked before anything is written."""
    cfg = task.default_config()
    if data is not None:
        cfg.data.source = data
    chosen = presets.choose(task, cfg.data.source, preset)
    if chosen is not None:
        cfg.override(chosen.overrides)
    if epochs is not None:
        cfg.train.epochs = _whole(epochs, "epochs")
    if batch_size is not None:
        cfg.train.batch_size = _whole(batch_size, "batch_size")
    if strategy is not None:
        cfg.train.strategy = strategy
    cfg.override(as_list(overrides, "overrides"))
    cfg.train.backend = engine.check_backend(cfg.train.backend or engine.default_backend(task.name, cfg.data.source))
    task.validate(cfg)  # every value in its documented range (train.epochs, train.batch_size >= 1 among them)
    if cfg.train.strategy == "multiworker":
        distribute.tf_config()
    return cfg


def _whole(value, name: str) -> int:
    """An argument that must be a whole number (``epochs``, ``batch_size``), as one ConfigError otherwise."""
    import numbers

    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ConfigError(f"{name} must be a whole number, got {type(value).__name__} {value!r}")
    return int(value)


def default_run_dir(task_name: str, data: str) -> Path:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(data).stem if ("/" in data or "." in data) else data)
    return Path("runs") / f"{task_name}-{slug.strip('_') or 'data'}"


def make_optimizer(train_cfg, total_steps: int | None = None):
    """The configured optimizer; ``total_steps`` (all epochs' batches) drives ``train.decay``."""
    import keras

    kinds = {"adam": keras.optimizers.Adam, "adamw": keras.optimizers.AdamW,
             "sgd": keras.optimizers.SGD, "rmsprop": keras.optimizers.RMSprop}
    allowed = configlib.CHOICES["train.optimizer"]  # the one list of names; kinds maps each to its class
    if train_cfg.optimizer not in allowed:
        raise ConfigError(f"train.optimizer must be one of {', '.join(allowed)}, got {train_cfg.optimizer!r}")
    extra = {"clipnorm": train_cfg.clipnorm} if train_cfg.clipnorm else {}
    if train_cfg.ema:
        extra.update(use_ema=True, ema_momentum=train_cfg.ema)
    learning_rate, warmup = train_cfg.learning_rate, int(train_cfg.warmup)
    if train_cfg.decay not in ("none", "cosine"):
        raise ConfigError(f"train.decay must be none or cosine, got {train_cfg.decay!r}")
    cosine = train_cfg.decay == "cosine"
    if cosine:
        if not total_steps or total_steps < 1:
            raise ConfigError("train.decay=cosine needs the number of batches per epoch: this data does not say, "
                              "so set train.steps_per_epoch")
        if warmup >= total_steps:
            raise ConfigError(f"train.warmup={warmup} leaves no batch to decay over: training has {total_steps}")
    if warmup or cosine:
        # Keras' own schedule (it serializes with the checkpoint): a linear rise from 0 over ``warmup``
        # batches, then a cosine to 0 over the rest, or (alpha 1) the rate held
        learning_rate = keras.optimizers.schedules.CosineDecay(
            0.0 if warmup else learning_rate, decay_steps=int(total_steps) - warmup if cosine else 1,
            alpha=0.0 if cosine else 1.0, warmup_target=learning_rate if warmup else None, warmup_steps=warmup)
    return kinds[train_cfg.optimizer](learning_rate=learning_rate, **extra)


def _total_steps(cfg, train_ds, steps_per_epoch) -> int | None:
    if cfg.train.decay == "none":
        return None
    if not steps_per_epoch:
        n = int(train_ds.cardinality())
        steps_per_epoch = n if n > 0 else None
    return steps_per_epoch * cfg.train.epochs if steps_per_epoch else None


def even_batches(ds, replicas: int):
    """Cut each batch to a multiple of ``replicas`` (at most replicas - 1 examples dropped
    per batch) and skip batches left empty: Keras' multi-replica steps need even splits."""
    import tensorflow as tf

    def cut(*element):
        n = tf.shape(tf.nest.flatten(element)[0])[0]
        return tf.nest.map_structure(lambda t: t[: n - n % replicas], element)

    nonempty = lambda *element: tf.shape(tf.nest.flatten(element)[0])[0] > 0  # noqa: E731
    return ds.map(cut).filter(nonempty)


def _resumable(run: Run, cfg, task_name: str, overwrite: bool) -> bool:
    """Whether this training resumes an unfinished run in ``run.dir`` (nothing is written);
    an unfinished run with another task or config is an error."""
    if overwrite or not run.info_path.exists() or run.finished:
        return False
    saved = json.loads(run.config_path.read_text())
    new = json.loads(json.dumps(cfg.to_dict()))  # as it would be saved (tuples become lists)
    saved["train"].pop("epochs", None)
    new["train"].pop("epochs", None)
    if run.info.get("task") != task_name or saved != new:
        raise SeqappsError(f"{run.dir} holds an unfinished run with a different task or config; "
                           "repeat its command to resume it, or pass --overwrite or another --run-dir")
    return True


def _prepare_run_dir(run: Run, cfg, task_name: str, overwrite: bool, resuming: bool) -> None:
    """Create ``run.dir`` (or reuse it when ``resuming``); a finished run there is kept aside."""
    if resuming:
        cfg.save(run.config_path)
        return
    run.start(task_name, cfg.data.source, overwrite, write=lambda: cfg.save(run.config_path))


def _best_so_far(run: Run, monitor: str, mode: str):
    import pandas as pd

    if not run.history_path.exists() or not run.model_path.exists():
        return None
    frame = pd.read_csv(run.history_path)
    if monitor not in frame or frame.empty:
        return None
    return float(frame[monitor].min() if mode == "min" else frame[monitor].max())


def train(task: str, data: str | None = None, *, epochs=None, batch_size=None, overrides=(), run_dir=None,
          data_dir=None, strategy=None, overwrite=False, verbose=None, callbacks=(), backend=None,
          preset=None, evaluate=True) -> Run:
    """Train ``task`` and return its :class:`~seqapps.training.run_dir.Run`.

    Re-running the same call after an interruption resumes from the last backup. Without ``data``,
    the task's default dataset, or its demo data (with a note) where that dataset is not installed. (``seqapps.train``
    also takes a folder written by :func:`seqapps.training.prepared.prepare` as ``data``.)
    ``preset`` names one of the task's recipes (default: the recipe of the dataset ``data``,
    if the task has one; ``"none"``: the bare defaults); explicit arguments and ``overrides``
    apply over it. ``evaluate=False`` skips scoring the validation and test splits at the end
    (``metrics.json`` then holds only ``train_seconds``). ``callbacks`` are extra Keras callbacks (timers, custom logging...). ``backend`` (or
    ``train.backend``) picks the Keras backend that trains; when this process runs another
    one, the training runs in a child process that does (``callbacks`` cannot go there).
    """
    task_obj = registry.get(task)
    data = data if data is not None else _default_data(task_obj, data_dir)
    if backend is not None:
        overrides = [*as_list(overrides, "overrides"), f"train.backend={backend}"]
    cfg = resolve_config(task_obj, data, epochs, batch_size, overrides, strategy, preset)
    run = Run(run_dir or default_run_dir(task, cfg.data.source))
    chosen = presets.choose(task_obj, cfg.data.source, preset)
    if not engine.select(cfg.train.backend):
        if callbacks:
            raise ConfigError(f"callbacks= need the training to run in this process, whose Keras backend is "
                              f"{engine.current_backend()}, not train.backend={cfg.train.backend}")
        argv = ["train", task, "--run-dir", run.dir, "--backend", cfg.train.backend,
                *_cli_flags(data=data, data_dir=data_dir, epochs=epochs, batch_size=batch_size, strategy=strategy,
                           preset=preset),
                *[a for o in as_list(overrides, "overrides") for a in ("--set", o)], *(["--overwrite"] * overwrite),
                *(["--no-eval"] * (not evaluate))]
        engine.run_elsewhere(cfg.train.backend, argv, f"training {task}")
        return Run(run.dir)
    engine.use_compile_cache()
    if cfg.train.strategy == "multiworker":
        # joins the cluster before any other TensorFlow work (a streamed source's fitting pass runs TF ops)
        distribute.make_strategy("multiworker", cfg.train.worker_timeout)
    splits = task_obj.load_data(cfg, data_dir)  # bad data fails before anything is written
    if chosen is not None and preset is None:
        print(f"note: training {cfg.data.source} with its preset {chosen.name!r} ({chosen.description}); "
              "--preset none keeps the task defaults", file=sys.stderr)
    if not distribute.is_chief(cfg.train.strategy):
        return _train_as_worker(task_obj, cfg, run, splits, verbose, callbacks)
    with locked(run.dir):  # one training per run directory at a time
        resuming = _resumable(run, cfg, task, overwrite)
        seconds = _train_into(task_obj, cfg, run, splits, resuming, overwrite, verbose, callbacks)
        finish(run, seconds, evaluate, verbose, splits, data_dir)
    return run


def _default_data(task_obj, data_dir) -> str | None:
    """``None`` (the task's default dataset), or ``"demo"`` with a note when that dataset is not under
    the data directory: a first training by name works on a machine without the shared datasets."""
    from seqapps.data import catalog

    entry = catalog.CATALOG.get(task_obj.default_data)
    if entry is not None and not entry.available(catalog.data_dir(data_dir)):
        print(f"note: {task_obj.default_data} is not under the data directory ($SEQAPPS_DATA or --data-dir); "
              "training on the built-in demo data", file=sys.stderr)
        return "demo"
    return None


def finish(run: Run, seconds: float, evaluate: bool, verbose, splits=None, data_dir=None) -> None:
    """After the fit: ``metrics.json`` with the scores of the validation and test splits (or, with
    ``evaluate`` off, only ``train_seconds``). Serving graphs are TensorFlow, so a process on
    another backend scores in a child that runs it; where TensorFlow is not installed (a prepared
    folder's training), the run is left unscored with one line saying how to score it."""
    import importlib.util

    if not evaluate or importlib.util.find_spec("tensorflow") is None:
        run.metrics_path.write_text(json.dumps({"train_seconds": seconds}, indent=2) + "\n")
        if evaluate:
            print(f"TensorFlow is not installed here, so the run was not scored; where it is: "
                  f"python -m seqapps.training.fit score {run.dir} --seconds {seconds}", file=sys.stderr)
    elif engine.current_backend() == "tensorflow":
        score(run, splits, seconds, data_dir=data_dir, verbose=verbose is None or bool(verbose))
    else:
        engine.run_elsewhere("tensorflow", ["score", run.dir, "--seconds", seconds, *_cli_flags(data_dir=data_dir)],
                             f"scoring {run.task_name}", module="seqapps.training.fit")


def _train_into(task_obj, cfg, run, splits, resuming, overwrite, verbose, callbacks) -> float:
    """Preprocessing and datasets (the data checked against the config before anything is
    written), the run directory, the fit and its curves; returns the training seconds."""
    import keras

    from seqapps.analysis.plots import plot_history

    keras.utils.set_random_seed(cfg.train.seed)
    prep, fitted = _preprocessing(task_obj, cfg, run, splits, resuming)
    datasets = task_obj.datasets(cfg, prep, splits)  # data too small for the config fails here, still unwritten
    _prepare_run_dir(run, cfg, task_obj.name, overwrite, resuming)
    if fitted:
        prep.save(run.dir)
    with precision_policy(cfg.train.mixed_precision):
        _, started = _fit(task_obj, cfg, run, prep, datasets, resuming, verbose, callbacks)
    plot_history(run.history_path, run.curves_path)
    return round(time.time() - started, 2)


def _train_as_worker(task_obj, cfg, run, splits, verbose, callbacks) -> Run:
    """A worker that is not the chief trains the same steps in a temporary run directory."""
    with worker_run(run) as mine:
        _train_into(task_obj, cfg, mine, splits, False, False, verbose, callbacks)
    return Run(run.dir)


@contextlib.contextmanager
def worker_run(run: Run):
    """For a worker that is not the chief: a temporary run directory, restored from the chief's
    backup when there is one (the run resumes), removed at the end."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="seqapps-worker-") as tmp:
        mine = Run(Path(tmp) / run.dir.name)
        if run.backup_dir.exists():
            mine.dir.mkdir(parents=True)
            shutil.copytree(run.backup_dir, mine.backup_dir)
        yield mine


def as_list(value, name):
    if isinstance(value, str):
        raise ConfigError(f"{name} expects a list of KEY=VALUE strings, got the string {value!r}; "
                          f"write [{value!r}]")
    return list(value or ())


def _cli_flags(**values) -> list:
    return [a for k, v in values.items() if v is not None for a in (f"--{k.replace('_', '-')}", v)]


class precision_policy:
    """Keras' ``mixed_float16`` or ``mixed_bfloat16`` policy inside the block when ``train.mixed_precision``
    asks for it (``true`` is float16), and the previous policy back after it."""

    POLICIES = {"true": "mixed_float16", "float16": "mixed_float16", "bfloat16": "mixed_bfloat16"}

    def __init__(self, mixed: str):
        self.policy = self.POLICIES.get(mixed)  # a checked config's value; "false" has none

    def __enter__(self):
        import keras

        self.before = keras.mixed_precision.global_policy()
        if self.policy:
            keras.mixed_precision.set_global_policy(self.policy)

    def __exit__(self, *exc):
        import keras

        keras.mixed_precision.set_global_policy(self.before)


def _fit(task_obj, cfg, run, prep, datasets, resuming, verbose, extra_callbacks):
    """The model and ``model.fit`` over ``datasets`` (train, validation); returns (model, start time)."""
    train_ds, val_ds = datasets
    steps = cfg.train.steps_per_epoch or None
    if steps:
        train_ds = train_ds.repeat()
    with contextlib.ExitStack() as stack:
        if engine.current_backend() == "jax":
            replicas = stack.enter_context(distribute.jax_data_parallel(cfg.train.strategy))
        else:
            strategy_obj = distribute.make_strategy(cfg.train.strategy)
            replicas = strategy_obj.num_replicas_in_sync
            stack.enter_context(strategy_obj.scope())
        return _fit_with(task_obj, cfg, run, prep, train_ds, val_ds, steps, replicas, resuming, verbose,
                         extra_callbacks)


def _fit_with(task_obj, cfg, run, prep, train_ds, val_ds, steps, replicas, resuming, verbose, extra_callbacks):
    """:func:`_fit` inside the strategy's scope, over ``replicas`` devices."""
    run.record(replicas=replicas, backend=cfg.train.backend)  # what it ran on
    if replicas > 1:  # a batch must split evenly over the replicas
        train_ds, val_ds = even_batches(train_ds, replicas), even_batches(val_ds, replicas)
    model = task_obj.build_model(cfg, prep)
    task_obj.compile(model, cfg, make_optimizer(cfg.train, _total_steps(cfg, train_ds, steps)), prep)
    callbacks = fit_callbacks(cfg.train, run, task_obj.monitor, task_obj.monitor_mode,
                              [*task_obj.callbacks(cfg, prep), *extra_callbacks], resuming)
    return model, fit(model, run, train_ds, val_ds, cfg.train.epochs, steps, callbacks, verbose,
                      cfg.train.validation_steps)


def fit(model, run: Run, train, val, epochs: int, steps, callbacks, verbose, validation_steps: int = 0) -> float:
    """``model.fit`` into ``run`` (its best checkpoint written, a diverged loss one error line);
    returns the time it started."""
    if verbose is None:
        verbose = 1 if sys.stdout.isatty() else 2
    started = time.time()
    with warnings.catch_warnings():
        if not steps:  # a streamed split of unknown length ends its first epoch where Keras learns its length
            warnings.filterwarnings("ignore", message="Your input ran out of data", category=UserWarning)
        history = model.fit(train, validation_data=val, epochs=epochs, steps_per_epoch=steps,
                            validation_steps=validation_steps or None,
                            callbacks=callbacks, verbose=verbose, shuffle=False)
    if any(v and not math.isfinite(float(v[-1])) for v in history.history.values()):
        raise SeqappsError(f"training diverged (loss is NaN); lower train.learning_rate or set train.clipnorm "
                           f"(run kept in {run.dir})")
    if not run.model_path.exists():
        model.save(run.model_path)
    return started


def _preprocessing(task_obj, cfg, run, splits, resuming):
    """(the preprocessing, whether it was fitted now and still has to be saved)."""
    if resuming:
        try:
            return task_obj.load_preprocessing(cfg, run.dir), False
        except (OSError, SeqappsError):
            pass  # killed before the vocabularies were written
    return task_obj.fit_preprocessing(cfg, splits), True


def fit_callbacks(train_cfg, run: Run, monitor: str, mode: str, more=(), resuming=False) -> list:
    """Every run's callbacks around ``more`` (the task's and the caller's): epoch timing, backups
    and resume, the best checkpoint, the CSV history, TensorBoard (where TensorFlow is installed:
    Keras writes its logs with it), NaN checks, and ``train_cfg``'s weight averaging, early
    stopping and time limit."""
    import importlib.util

    import keras

    from seqapps.training.callbacks import EpochTimer, ResumeReport, TimeLimit

    tensorboard = importlib.util.find_spec("tensorflow") is not None
    callbacks = [
        EpochTimer(),  # first, so CSVLogger and TensorBoard see epoch_seconds
        keras.callbacks.BackupAndRestore(str(run.backup_dir), save_freq=train_cfg.backup_every or "epoch",
                                         double_checkpoint=True),
        ResumeReport(run.history_path, run.dir, resuming),  # after the restore, before the CSV log opens
        keras.callbacks.ModelCheckpoint(str(run.model_path), monitor=monitor, mode=mode, save_best_only=True,
                                        initial_value_threshold=_best_so_far(run, monitor, mode)),
        keras.callbacks.CSVLogger(str(run.history_path), append=True),
        *([keras.callbacks.TensorBoard(str(run.logs_dir))] if tensorboard else []),
        keras.callbacks.TerminateOnNaN(),
        *more,
    ]
    if train_cfg.ema:  # validate and checkpoint with the averaged weights
        callbacks.insert(1, keras.callbacks.SwapEMAWeights(swap_on_epoch=True))
    if train_cfg.patience:
        callbacks.append(keras.callbacks.EarlyStopping(monitor=monitor, mode=mode, patience=train_cfg.patience))
    if train_cfg.time_limit:
        callbacks.append(TimeLimit(train_cfg.time_limit))
    return callbacks


def score(run, splits=None, train_seconds=None, data_dir=None, verbose=True) -> dict:
    """Score the best checkpoint through the serving path on the validation and test
    splits; writes ``metrics.json`` (with ``train_seconds``) and returns it."""
    task_obj, cfg = run.task, run.config
    if splits is None:
        splits = task_obj.load_data(cfg, data_dir)
    predictor = run.predictor()
    metrics = {"train_seconds": train_seconds}
    for split in ("val", "test"):
        examples = getattr(splits, split)
        if examples is not None:
            metrics[split] = task_obj.evaluate(predictor, whole(examples), cfg)
    run.metrics_path.write_text(json.dumps(metrics, indent=2) + "\n")
    if verbose:
        for split in ("val", "test"):
            if split in metrics:
                print(f"{split}:\n{task_obj.format_metrics(metrics[split])}")
        print(f"run directory: {run.dir}")
    return metrics


def main(argv=None) -> int:
    """``python -m seqapps.training.fit score RUN_DIR [--seconds S] [--data-dir D]``: the scoring
    step of a run trained on another backend (run with the TensorFlow backend)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m seqapps.training.fit")
    parser.add_argument("step", choices=["score"])
    parser.add_argument("run_dir")
    parser.add_argument("--seconds", type=float)
    parser.add_argument("--data-dir")
    args = parser.parse_args(argv)
    try:
        score(Run.open(args.run_dir), train_seconds=args.seconds, data_dir=args.data_dir)
    except SeqappsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

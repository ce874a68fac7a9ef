"""Training from prepared arrays, on a machine that has Keras and JAX (or PyTorch) but no TensorFlow.

tf.data reads, tokenizes and batches every task's data, so a host without TensorFlow (a GPU
machine with only JAX, say) cannot run ``train`` as it is. ``prepare`` does everything TensorFlow
is needed for once, where it is installed, and writes the result as a folder of arrays::

    python -m seqapps prepare translation --data anki_fra_eng            # where TensorFlow runs
    python -m seqapps train translation --data prepared/translation-anki_fra_eng --backend jax
    python -m seqapps.training.fit score runs/translation-anki_fra_eng       # where TensorFlow runs

``train`` on such a folder needs no TensorFlow: the model, its optimizer and schedule come from the
folder's ``model.json``, the batches from its arrays, and it writes an ordinary run directory
(config, vocabularies, ``best.keras``, ``history.csv``, backups, curves), so ``score``,
``export`` and ``predict`` treat it as any other run. Where TensorFlow is installed, the run is
scored at the end as usual. A prepared folder holds:

``prepared.json``  the task, data, epochs, batches per epoch, the batch structure, the task's callbacks
``config.json``    the resolved config (preset and ``--set`` applied when it was prepared)
``prep/``          the fitted preprocessing (vocabularies...), as a run directory keeps it
``model.json``     the model and its compile config (optimizer, learning-rate schedule, loss,
                   metrics) as Keras serializes them; its weights are drawn where it trains, under
                   ``train.seed``, as a training on that backend draws them
``train-N-SSSSS.npz``  epoch N's training batches in shards of about ``--shard-mb`` (64 MB), in the order
                   tf.data gave them (a new shuffle each epoch, as ``train`` would draw them under the
                   same seed); an epoch equal to an earlier one (a stateful language model's streams)
                   is not written twice. Preparing holds one shard in memory, so any size of data
                   prepares; training reads a shard at a time, the next one loading in the background
``val-SSSSS.npz``  the validation batches

Integer arrays are kept in the narrowest integer type that holds them and fed as int32.

Everything that shapes the training is fixed when the folder is prepared: ``train`` on it takes
no ``--set``, ``--preset``, ``--epochs`` or ``--batch-size``. What such a run leaves out:
TensorBoard logs where TensorFlow is missing (Keras writes them with it).

``train --data FOLDER --strategy multiworker`` (TensorFlow, ``TF_CONFIG`` naming the cluster) trains
one model over several worker processes, each reading only its own shards of each epoch (worker
``i`` of ``n`` reads shards ``i``, ``i + n``...; every worker takes as many steps as the one with
the fewest batches): a step trains one prepared batch on every worker. Prepare with shards small
enough that each worker has one an epoch.
"""

from __future__ import annotations

import functools
import importlib
import json
import os
import shutil
import sys
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from seqapps.training import backends as engine
from seqapps.core.errors import ConfigError, DataError, SeqappsError
from seqapps.training.run_dir import Run, locked, versions

if TYPE_CHECKING:
    from seqapps.inference.trained import TrainedRun

MARKER = "prepared.json"
FORMAT = 2          # 1: one file per epoch (still read)
SHARD_MB = 64       # the default size of a shard file


def is_prepared(path) -> bool:
    """Whether ``path`` (a ``--data`` value) is a folder ``prepare`` wrote."""
    return bool(path) and (Path(path) / MARKER).is_file()


def default_folder(task_name: str, data: str) -> Path:
    from seqapps.training.fit import default_run_dir

    return Path("prepared") / default_run_dir(task_name, data).name


# -- preparing (TensorFlow) ----------------------------------------------------------------------------
def prepare(task: str, data=None, out=None, *, epochs=None, batch_size=None, overrides=(), preset=None,
            data_dir=None, backend="jax", overwrite=False, shard_mb: float = SHARD_MB) -> Path:
    """Write ``task``'s batches for training on ``data`` into ``out`` (default
    ``prepared/<task>-<data>``) and return it; run with the TensorFlow backend. ``backend`` is the
    one the folder will train on (saved as ``train.backend``); ``shard_mb`` the size of a shard file (each
    worker of a multi-worker training reads its own shards). The folder appears whole or not at all."""
    import keras

    from seqapps.core import registry
    from seqapps.training.fit import as_list, make_optimizer, precision_policy, resolve_config

    if engine.current_backend() != "tensorflow":
        raise ConfigError("prepare reads the data with TensorFlow: run it with the tensorflow backend")
    if backend not in engine.BACKENDS:
        raise ConfigError(f"backend must be one of {', '.join(engine.BACKENDS)}, got {backend!r}")
    task_obj = registry.get(task)
    # resolved on this process's backend: the one the folder trains on need not be installed here
    cfg = resolve_config(task_obj, data, epochs, batch_size, [*as_list(overrides, "overrides"),
                                                               "train.backend=tensorflow"], None, preset)
    cfg.train.backend = backend
    if cfg.train.strategy != "default":
        raise ConfigError(f"train.strategy={cfg.train.strategy} cannot be prepared: a prepared folder trains on "
                          "one process's devices")
    out = Path(out) if out is not None else default_folder(task, cfg.data.source)
    if out.exists() and not overwrite:
        raise SeqappsError(f"{out} already exists; pass --overwrite or another --out")
    if not float(shard_mb) > 0:
        raise ConfigError(f"shard_mb must be a positive number of megabytes, got {shard_mb}")
    splits = task_obj.load_data(cfg, data_dir)
    keras.utils.set_random_seed(cfg.train.seed)
    prep = task_obj.fit_preprocessing(cfg, splits)
    train_ds, val_ds = task_obj.datasets(cfg, prep, splits)
    callbacks = [_describe(cb) for cb in task_obj.callbacks(cfg, prep)]
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        steps = cfg.train.steps_per_epoch or None
        shard_bytes = int(float(shard_mb) * 2**20)
        template, counts, epochs_shards, written, first, shapes = None, [], [], {}, None, None
        for e, batches in enumerate(_epochs(train_ds, cfg.train.epochs, steps)):
            writer = ShardWriter(tmp, f"train-{e}", shard_bytes, template, f"epoch {e + 1}")
            for batch in batches:
                writer.add(batch)
                if first is None:
                    first = batch
            template, shards = writer.close()
            shapes = writer.shapes if e == 0 else _merged(shapes, writer.shapes)
            if writer.digest in written:  # an epoch equal to an earlier one is stored once
                for shard in shards:
                    (tmp / shard["file"]).unlink()
                shards = written[writer.digest]
            written.setdefault(writer.digest, shards)
            counts.append(writer.count)
            epochs_shards.append(shards)
            print(f"prepared epoch {e + 1}/{cfg.train.epochs}: {writer.count} batches in {len(shards)} shard(s)",
                  file=sys.stderr)
        writer = ShardWriter(tmp, "val", shard_bytes, None, "the validation split")
        if cfg.train.validation_steps:  # all that training would validate on: the first batches
            val_ds = val_ds.take(cfg.train.validation_steps)
        for batch in val_ds:
            writer.add(batch)
        val_template, val_shards = writer.close()
        leaves = []
        _structure(first, leaves)
        first = _build(template, iter(leaves))  # as the folder feeds it
        with precision_policy(cfg.train.mixed_precision):
            model = task_obj.build_model(cfg, prep)
            total = counts[0] * cfg.train.epochs if cfg.train.decay != "none" else None
            task_obj.compile(model, cfg, make_optimizer(cfg.train, total), prep)
            model(first[0], training=False)  # built, so its build config holds the input shapes
            model_json = json.dumps(keras.saving.serialize_keras_object(model))
        (tmp / "model.json").write_text(model_json + "\n")
        cfg.save(tmp / "config.json")
        (tmp / "prep").mkdir()
        prep.save(tmp / "prep")
        (tmp / MARKER).write_text(json.dumps({
            "format": FORMAT, "id": uuid.uuid4().hex, "task": task, "data": cfg.data.source,
            "backend": backend, "epochs": cfg.train.epochs, "batches": counts, "shards": epochs_shards,
            "val_batches": writer.count, "val_shards": val_shards, "structure": template, "val_structure": val_template,
            "shapes": shapes, "val_shapes": writer.shapes,
            "monitor": task_obj.monitor, "monitor_mode": task_obj.monitor_mode, "callbacks": callbacks,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "versions": versions()}, indent=2) + "\n")
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _epochs(train_ds, epochs: int, steps):
    """Each epoch's batches as ``fit`` would draw them: a new pass over the dataset per epoch, or
    with ``steps`` per epoch, consecutive slices of the repeated dataset."""
    if not steps:
        for _ in range(epochs):
            yield iter(train_ds)
        return
    stream = iter(train_ds.repeat())
    for _ in range(epochs):
        yield (next(stream) for _ in range(steps))


class ShardWriter:
    """Batches written as they come into shards ``PREFIX-SSSSS.npz`` of about ``shard_bytes`` each
    (a shard holds at least one batch), so preparing holds one shard in memory however big the data.
    ``digest`` (after :meth:`close`) identifies the batches written, to store an epoch equal to an
    earlier one once. Shards are written uncompressed: reading them is a copy, not a decompression."""

    def __init__(self, folder: Path, prefix: str, shard_bytes: int, template, what: str):
        import hashlib

        self.folder, self.prefix, self.shard_bytes, self.template, self.what = folder, prefix, shard_bytes, template, what
        self.arrays, self.size, self.count, self.in_shard, self.shards = {}, 0, 0, 0, []
        self.shapes = None  # per array of a batch: its sizes, None where they change from batch to batch
        self._hash = hashlib.sha256()
        self.digest = ""

    def add(self, element) -> None:
        leaves = []
        shape = _structure(element, leaves)
        if self.template is None:
            self.template = shape
        elif shape != self.template:
            raise DataError(f"{self.what}: the batches change structure, which prepared arrays cannot hold")
        if self.shapes is None:  # the batch size is None: the last batch may be short
            self.shapes = [[None, *leaf.shape[1:]] for leaf in leaves]
        self.shapes = _merged(self.shapes, [leaf.shape for leaf in leaves])  # a size that changes: None
        for j, leaf in enumerate(leaves):
            array = _compact(leaf)
            self._hash.update(f"{j}{array.dtype}{array.shape}".encode())
            self._hash.update(array.tobytes())
            self.arrays[f"{self.in_shard}-{j}"] = array
            self.size += array.nbytes
        self.in_shard += 1
        self.count += 1
        if self.size >= self.shard_bytes:
            self._flush()

    def _flush(self) -> None:
        import numpy as np

        if not self.in_shard:
            return
        name = f"{self.prefix}-{len(self.shards):05d}.npz"
        np.savez(self.folder / name, **self.arrays)
        self.shards.append({"file": name, "batches": self.in_shard})
        self.arrays, self.size, self.in_shard = {}, 0, 0

    def close(self) -> tuple[dict, list]:
        """(the batch structure, the shards written: ``[{"file", "batches"}]``)."""
        self._flush()
        if self.count == 0:
            raise DataError(f"{self.what} has no batch to prepare")
        self.digest = self._hash.hexdigest()
        return self.template, self.shards


def _merged(shapes, other):
    """Per array, the sizes ``shapes`` and ``other`` agree on, None where they differ."""
    return [[a if a == b else None for a, b in zip(x, y)] for x, y in zip(shapes, other)]


def _structure(element, leaves: list):
    """JSON for the nesting of ``element``, its tensors appended to ``leaves`` (numpy) in order."""
    if isinstance(element, dict):
        return {"dict": {k: _structure(element[k], leaves) for k in sorted(element)}}
    if isinstance(element, (tuple, list)):
        return {"tuple": [_structure(e, leaves) for e in element]}
    if not hasattr(element, "numpy"):
        raise DataError(f"a batch holds a {type(element).__name__}, which prepared arrays cannot hold")
    array = element.numpy()
    leaves.append(array)
    return {"dtype": "int32" if array.dtype.kind in "iu" else str(array.dtype)}  # what the model is fed


def _compact(array):
    """An integer array in the narrowest signed type that holds it (read back as int32)."""
    import numpy as np

    if array.dtype.kind not in "iu" or array.size == 0:
        return array
    low, high = int(array.min()), int(array.max())
    for kind in (np.int8, np.int16, np.int32):
        if np.iinfo(kind).min <= low and high <= np.iinfo(kind).max:
            return array.astype(kind)
    raise DataError(f"an integer input holds {high}, beyond the int32 the backends feed a model")


def _describe(callback) -> dict:
    """A task callback as its class and ``get_config()``, rebuilt where the folder trains."""
    if not hasattr(callback, "get_config"):
        raise ConfigError(f"the task's training callback {type(callback).__name__} has no get_config(), "
                          "so it cannot be prepared")
    cls = type(callback)
    return {"class": f"{cls.__module__}:{cls.__qualname__}", "config": callback.get_config()}


# -- reading (no TensorFlow) ---------------------------------------------------------------------------
def _build(template, leaves):
    """The batch element for ``template`` with the arrays of ``leaves`` (an iterator)."""
    if "dict" in template:
        return {k: _build(t, leaves) for k, t in template["dict"].items()}
    if "tuple" in template:
        return tuple(_build(t, leaves) for t in template["tuple"])
    return next(leaves).astype(template["dtype"], copy=False)


def _leaves(template) -> int:
    if "dict" in template:
        return sum(_leaves(t) for t in template["dict"].values())
    if "tuple" in template:
        return sum(_leaves(t) for t in template["tuple"])
    return 1


@functools.cache
def _batches_class():
    """(Batches, EpochFeed), defined once Keras is imported on the backend that trains."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    import keras
    import numpy as np

    def load(path):
        with np.load(path) as f:
            return {k: f[k] for k in f.files}

    class Batches(keras.utils.PyDataset):
        """An epoch's stored batches, read shard by shard (the next shard read in the background while
        this one trains); ``epoch`` is set by :class:`EpochFeed` as each epoch begins. ``epochs`` holds,
        per epoch, the shards to read (``{"file", "batches"}``); ``count`` batches make an epoch."""

        def __init__(self, folder, epochs, count, template, shapes=None):
            super().__init__()
            self.folder, self.epochs, self.count, self.template = Path(folder), epochs, int(count), template
            self.shapes = shapes  # per array: its sizes, None where batches differ (None: not recorded)
            self.leaves, self.epoch = _leaves(template), 0
            self._loaded, self._lock, self._pool = {}, threading.Lock(), None

        def __len__(self):
            return self.count

        def files(self, epoch=None) -> list[str]:
            return [s["file"] for s in self.epochs[(self.epoch if epoch is None else epoch) % len(self.epochs)]]

        def _shard(self, i):
            """(the shard's arrays, the batch's index in it) of batch ``i`` of this epoch."""
            shards = self.epochs[self.epoch % len(self.epochs)]
            for k, shard in enumerate(shards):
                if i < shard["batches"]:
                    return self._arrays(shard["file"], shards[k + 1]["file"] if k + 1 < len(shards) else None), i
                i -= shard["batches"]
            raise IndexError(f"batch {i} is past the end of the epoch")

        def _arrays(self, name, then):
            with self._lock:  # this shard and the next: no more in memory
                keep = {name: self._loaded[name] if name in self._loaded else self._read(name)}
                if then is not None:
                    keep[then] = self._loaded[then] if then in self._loaded else self._read(then, background=True)
                self._loaded = keep
                arrays = keep[name]
            return arrays.result() if hasattr(arrays, "result") else arrays

        def _read(self, name, background=False):
            if not background:
                return load(self.folder / name)
            if self._pool is None:
                self._pool = ThreadPoolExecutor(1, thread_name_prefix="seqapps-shards")
            return self._pool.submit(load, self.folder / name)

        def __getitem__(self, i):
            arrays, j = self._shard(i)
            return _build(self.template, (arrays[f"{j}-{leaf}"] for leaf in range(self.leaves)))

    class EpochFeed(keras.callbacks.Callback):
        def __init__(self, *batches):
            super().__init__()
            self.batches = batches

        def on_epoch_begin(self, epoch, logs=None):
            for b in self.batches:
                b.epoch = epoch

    return Batches, EpochFeed


def batches(folder, split: str = "train", share: tuple[int, int] = (0, 1)):
    """The stored batches of ``split`` (``train``: epoch by epoch) as a ``keras.utils.PyDataset``.
    ``share=(index, workers)``: the training shards of worker ``index`` of ``workers`` (shards
    ``index``, ``index + workers``...), cut to the batches every worker has, so all take as many steps."""
    folder = Path(folder)
    info = _info(folder)
    Batches, _ = _batches_class()
    if split == "val":
        return Batches(folder, [info["val_shards"]], info["val_batches"], info["val_structure"], info.get("val_shapes"))
    index, workers = share
    if workers == 1:
        return Batches(folder, info["shards"], info["batches"][0], info["structure"], info.get("shapes"))
    if any(len(shards) < workers for shards in info["shards"]):
        fewest = min(len(shards) for shards in info["shards"])
        raise ConfigError(f"{folder} holds {fewest} shard(s) an epoch, fewer than the {workers} workers that would "
                          f"read it; prepare it again with smaller shards (--shard-mb)")
    mine = [shards[index::workers] for shards in info["shards"]]
    count = min(sum(s["batches"] for s in shards[w::workers]) for shards in info["shards"] for w in range(workers))
    return Batches(folder, mine, count, info["structure"], info.get("shapes"))


def _info(folder: Path) -> dict:
    try:
        info = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError) as e:
        raise DataError(f"{folder}: not a prepared folder ({MARKER} unreadable: {e})") from None
    if info.get("format") == 1:  # one file per epoch: a shard each
        info["shards"] = [[{"file": f, "batches": n}] for f, n in zip(info["files"], info["batches"])]
        info["val_shards"] = [{"file": "val.npz", "batches": info["val_batches"]}]
    elif info.get("format") != FORMAT:
        raise DataError(f"{folder} was prepared in format {info.get('format')}, this seqapps reads {FORMAT}; "
                        "prepare it again")
    files = [s["file"] for shards in [*info["shards"], info["val_shards"]] for s in shards]
    missing = [n for n in dict.fromkeys(["model.json", "config.json", *files]) if not (folder / n).is_file()]
    if missing:
        raise DataError(f"{folder} is incomplete: {', '.join(missing)} missing; prepare it again")
    return info


# -- training (any backend) ----------------------------------------------------------------------------
#: what fixes a training when it is prepared: ``train`` on a folder refuses it (argument, command-line flag)
FIXED = (("overrides", "--set"), ("preset", "--preset"), ("epochs", "--epochs"), ("batch_size", "--batch-size"),
         ("data_dir", "--data-dir"), ("callbacks", None))


def train_api(task, data, *, run_dir=None, backend=None, overwrite=False, verbose=None, evaluate=True, strategy=None,
              flags=False, **fixed):
    """``seqapps.train(task, data=FOLDER, ...)`` and ``train TASK --data FOLDER``: :func:`train`, with
    every argument that would change the training (epochs, batch_size, overrides, preset, data_dir,
    callbacks) refused in one line; ``flags`` names them as the command line spells them."""
    given = [(name, flag) for name, flag in FIXED if fixed.get(name) not in (None, (), [])]
    unknown = sorted(set(fixed) - {name for name, _ in FIXED})
    if unknown:
        raise TypeError(f"train() got unexpected arguments {unknown}")
    if given and flags:
        raise ConfigError(f"{data} is a prepared folder, whose training is fixed when it is prepared: "
                          f"{', '.join(f for _, f in given)} cannot change it (pass them to `prepare` instead)")
    if given:
        raise ConfigError(f"{data} is a prepared folder, whose training is fixed when it is prepared: pass "
                          f"{', '.join(sorted(n for n, _ in given))} to prepare() instead")
    return train(task, data, run_dir=run_dir, backend=backend, overwrite=overwrite, verbose=verbose, evaluate=evaluate,
                 strategy=strategy)


def train(task: str, folder, *, run_dir=None, backend=None, overwrite=False, verbose=None, evaluate=True,
          strategy=None) -> TrainedRun:
    """Train the prepared ``folder`` (written by :func:`prepare` for ``task``) into ``run_dir``
    (default ``runs/<task>-<data>``) on ``backend`` (default: the one it was prepared for); returns the
    run as training returns it (a :class:`~seqapps.inference.trained.TrainedRun`: ``predictor()`` and
    ``export()`` where TensorFlow is installed).

    ``strategy="multiworker"`` (TensorFlow, ``TF_CONFIG`` naming the cluster): each worker reads its
    own shards of each epoch and never another's; a step trains one batch of every worker."""
    from seqapps.training import distribute

    folder = Path(folder)
    info = _info(folder)
    if info["task"] != task:
        raise ConfigError(f"{folder} was prepared for {info['task']}, not {task}")
    strategy = strategy or "default"
    if strategy not in ("default", "multiworker"):
        raise ConfigError(f"a prepared folder trains on one device or with --strategy multiworker, not {strategy}")
    if strategy == "multiworker":
        if (backend or "tensorflow") != "tensorflow":
            raise ConfigError("train.strategy=multiworker runs on the TensorFlow backend; pass --backend tensorflow")
        backend = "tensorflow"
        distribute.tf_config()
    backend = engine.check_backend(backend or info["backend"])
    from seqapps.training.fit import default_run_dir

    from seqapps.inference.trained import TrainedRun  # imports no TensorFlow; predicting with it does

    run = TrainedRun(run_dir or default_run_dir(task, info["data"]))
    if not engine.select(backend):
        engine.run_elsewhere(backend, ["train", task, "--data", folder, "--run-dir", run.dir, "--backend", backend,
                                       *(["--strategy", strategy] * (strategy != "default")),
                                       *(["--overwrite"] * overwrite), *(["--no-eval"] * (not evaluate))],
                             f"training {task}")
        return TrainedRun(run.dir)
    from seqapps.training.fit import finish, worker_run

    if strategy == "multiworker":
        timeout = json.loads((folder / "config.json").read_text())["train"].get("worker_timeout", 300.0)
        distribute.make_strategy("multiworker", timeout)  # before any other TensorFlow work
        if not distribute.is_chief(strategy):
            with worker_run(run) as mine:
                _train_into(info, folder, mine, False, verbose, strategy)
            return run
    with locked(run.dir):
        finish(run, _train_into(info, folder, run, overwrite, verbose, strategy), evaluate, verbose)
    return run


def _train_into(info, folder: Path, run: Run, overwrite: bool, verbose, strategy="default") -> float:
    import contextlib
    import types

    import keras

    description = json.loads((folder / "model.json").read_text())
    for module in ("seqapps.training.losses", *model_modules(info["task"]), *_named_modules(description)):
        importlib.import_module(module)  # what the saved model names
    from seqapps.training.fit import fit, fit_callbacks
    from seqapps.analysis.plots import plot_history

    resuming = _start_run_dir(info, folder, run, overwrite)
    train_cfg = types.SimpleNamespace(**json.loads((folder / "config.json").read_text())["train"])
    keras.utils.set_random_seed(train_cfg.seed)
    engine.use_compile_cache()
    _, EpochFeed = _batches_class()
    with contextlib.ExitStack() as stack:
        if strategy == "multiworker":
            train_batches, val_batches, replicas, feeds = _worker_datasets(folder, stack)
        else:
            train_batches, val_batches, replicas = batches(folder, "train"), batches(folder, "val"), 1
            feeds = [train_batches]
            if keras.backend.backend() == "tensorflow":
                train_batches, val_batches = _tf_dataset(train_batches), _tf_dataset(val_batches)
        model = keras.saving.deserialize_keras_object(description)
        # the compile config saved where it was prepared holds TensorFlow's resolution of jit_compile="auto"
        # (off on a CPU); here it is what "auto" gives on the backend that trains: XLA on JAX, none elsewhere
        model.jit_compile = keras.backend.backend() == "jax"
        task_callbacks = [_rebuild(d) for d in info["callbacks"]]
        callbacks = fit_callbacks(train_cfg, run, info["monitor"], info["monitor_mode"],
                                  [EpochFeed(*feeds), *task_callbacks], resuming)
        run.record(replicas=replicas, backend=keras.backend.backend())
        started = fit(model, run, train_batches, val_batches, info["epochs"], None, callbacks, verbose,
                      getattr(train_cfg, "validation_steps", 0))
    plot_history(run.history_path, run.curves_path)
    return round(time.time() - started, 2)


def _worker_datasets(folder: Path, stack):
    """This worker's training shards and the validation batches as distributed datasets of the
    multi-worker strategy (entered into ``stack``), the number of replicas, and the stored batches
    whose epoch the training sets. Training reads only this worker's shards; every worker reads the
    whole (small) validation split, so all take the same steps and the metrics are the single-worker
    ones."""
    from seqapps.training import distribute

    strategy = distribute.make_strategy("multiworker")
    stack.enter_context(strategy.scope())
    train = batches(folder, "train", share=distribute.worker_place())
    val = batches(folder, "val")

    def distributed(stored):
        return strategy.distribute_datasets_from_function(lambda context: _tf_dataset(stored))

    return distributed(train), distributed(val), strategy.num_replicas_in_sync, [train]


def _tf_dataset(stored):
    """Stored batches as a ``tf.data.Dataset`` whose shapes are those recorded when the folder was
    prepared, unknown where batches differ (Keras' own conversion of a ``PyDataset`` fixes the sizes of
    the first batches it sees, which later ones may not have); each epoch reads the epoch
    :class:`EpochFeed` set."""
    import tensorflow as tf

    first = stored[0]
    shapes = iter(stored.shapes or [[None] * a.ndim for a in tf.nest.flatten(first)])
    signature = tf.nest.map_structure(lambda a: tf.TensorSpec(next(shapes), tf.as_dtype(a.dtype)), first)

    def gen():
        for i in range(len(stored)):
            yield stored[i]

    options = tf.data.Options()  # a multi-worker training reads each worker's own shards: no further sharding
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    ds = tf.data.Dataset.from_generator(gen, output_signature=signature)
    return ds.apply(tf.data.experimental.assert_cardinality(len(stored))).prefetch(2).with_options(options)


def _start_run_dir(info, folder: Path, run: Run, overwrite: bool) -> bool:
    """Make ``run.dir`` a run directory of ``folder``; True when it resumes an unfinished run of it."""
    if overwrite and run.dir.exists():
        shutil.rmtree(run.dir)
    if run.info_path.exists() and not run.finished:
        if run.info.get("prepared_id") != info["id"]:
            raise SeqappsError(f"{run.dir} holds an unfinished run of something else; repeat its command to "
                               "resume it, or pass --overwrite or another --run-dir")
        return True

    def write():
        shutil.copy2(folder / "config.json", run.config_path)
        shutil.copytree(folder / "prep", run.dir, dirs_exist_ok=True)

    run.start(info["task"], info["data"], write=write, prepared=str(folder), prepared_id=info["id"])
    return False


def model_modules(task: str) -> list[str]:
    """The task's model modules (``tasks/<task>/model.py``, ``transformer.py``): importing them
    registers the classes a saved model names, without importing the whole task."""
    import importlib.util

    return [m for m in (f"tasks.{task}.model", f"tasks.{task}.transformer") if importlib.util.find_spec(m)]


def _named_modules(description) -> list[str]:
    """The project's modules a serialized Keras object names (its layers, losses...), so that
    importing them registers every class it needs."""
    found = {}

    def walk(node):
        if isinstance(node, dict):
            module = node.get("module")
            if isinstance(module, str) and module.split(".")[0] in ("seqapps", "tasks"):
                found[module] = None
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(description)
    return list(found)


#: callback modules of folders prepared before the library was grouped by role
_OLD_MODULES = {"seqapps.callbacks": "seqapps.training.callbacks"}


def _rebuild(description: dict):
    module, _, name = description["class"].partition(":")
    module = _OLD_MODULES.get(module, module)
    cls = importlib.import_module(module)
    for part in name.split("."):
        cls = getattr(cls, part)
    return cls(**description["config"])


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
``train-N.npz``    epoch N's training batches, in the order tf.data gave them (a new shuffle each
                   epoch, as ``train`` would draw them under the same seed); an epoch equal to an
                   earlier one (a stateful language model's streams) is not written twice
``val.npz``        the validation batches

Integer arrays are kept in the narrowest integer type that holds them and fed as int32.

Everything that shapes the training is fixed when the folder is prepared: ``train`` on it takes
no ``--set``, ``--preset``, ``--epochs`` or ``--batch-size``. What such a run leaves out:
TensorBoard logs where TensorFlow is missing (Keras writes them with it), and ``--strategy``.
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

from seqapps.training import backends as engine
from seqapps.core.errors import ConfigError, DataError, SeqappsError
from seqapps.training.run_dir import Run, locked, versions

MARKER = "prepared.json"
FORMAT = 1


def is_prepared(path) -> bool:
    """Whether ``path`` (a ``--data`` value) is a folder ``prepare`` wrote."""
    return bool(path) and (Path(path) / MARKER).is_file()


def default_folder(task_name: str, data: str) -> Path:
    from seqapps.training.fit import default_run_dir

    return Path("prepared") / default_run_dir(task_name, data).name


# -- preparing (TensorFlow) ----------------------------------------------------------------------------
def prepare(task: str, data=None, out=None, *, epochs=None, batch_size=None, overrides=(), preset=None,
            data_dir=None, backend="jax", overwrite=False) -> Path:
    """Write ``task``'s batches for training on ``data`` into ``out`` (default
    ``prepared/<task>-<data>``) and return it; run with the TensorFlow backend. ``backend`` is the
    one the folder will train on (saved as ``train.backend``). The folder appears whole or not at all."""
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
        epoch_batches = _epochs(train_ds, cfg.train.epochs, steps)
        template, counts, files, written, first = None, [], [], {}, None
        for e, batches in enumerate(epoch_batches):
            template, n, arrays = _batch_arrays(batches, template, f"epoch {e + 1}")
            if first is None:
                first = _build(template, (arrays[f"0-{j}"] for j in range(_leaves(template))))
            digest = _digest(arrays)
            if digest not in written:
                written[digest] = f"train-{e}.npz"
                _save(tmp / written[digest], arrays)
            counts.append(n)
            files.append(written[digest])
            print(f"prepared epoch {e + 1}/{cfg.train.epochs}: {n} batches", file=sys.stderr)
        val_template, n_val, arrays = _batch_arrays(iter(val_ds), None, "the validation split")
        _save(tmp / "val.npz", arrays)
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
            "backend": backend, "epochs": cfg.train.epochs, "batches": counts, "files": files, "val_batches": n_val,
            "structure": template, "val_structure": val_template, "monitor": task_obj.monitor,
            "monitor_mode": task_obj.monitor_mode, "callbacks": callbacks,
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


def _batch_arrays(batches, template, what):
    """``batches`` (tuples / dicts of tensors) as (their structure, count, {"batch-leaf": array})."""
    arrays, n = {}, 0
    for element in batches:
        leaves = []
        shape = _structure(element, leaves)
        if template is None:
            template = shape
        elif shape != template:
            raise DataError(f"{what}: the batches change structure, which prepared arrays cannot hold")
        for j, leaf in enumerate(leaves):
            arrays[f"{n}-{j}"] = _compact(leaf)
        n += 1
    if n == 0:
        raise DataError(f"{what} has no batch to prepare")
    return template, n, arrays


def _digest(arrays) -> str:
    import hashlib

    h = hashlib.sha256()
    for key, array in arrays.items():
        h.update(f"{key}{array.dtype}{array.shape}".encode())
        h.update(array.tobytes())
    return h.hexdigest()


def _save(path, arrays) -> None:
    import numpy as np

    np.savez_compressed(path, **arrays)


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
    import keras
    import numpy as np

    class Batches(keras.utils.PyDataset):
        """An epoch's stored batches; ``epoch`` is set by :class:`EpochFeed` as each epoch begins."""

        def __init__(self, paths, count, template):
            super().__init__()
            self.paths, self.count, self.template = list(paths), int(count), template
            self.leaves, self.epoch, self._loaded = _leaves(template), 0, (None, None)

        def __len__(self):
            return self.count

        def _arrays(self):
            path = self.paths[self.epoch % len(self.paths)]
            if self._loaded[0] != path:
                with np.load(path) as f:
                    self._loaded = (path, {k: f[k] for k in f.files})
            return self._loaded[1]

        def __getitem__(self, i):
            arrays = self._arrays()
            return _build(self.template, (arrays[f"{i}-{j}"] for j in range(self.leaves)))

    class EpochFeed(keras.callbacks.Callback):
        def __init__(self, batches):
            super().__init__()
            self.batches = batches

        def on_epoch_begin(self, epoch, logs=None):
            self.batches.epoch = epoch

    return Batches, EpochFeed


def batches(folder, split: str = "train"):
    """The stored batches of ``split`` (``train``: epoch by epoch) as a ``keras.utils.PyDataset``."""
    folder = Path(folder)
    info = _info(folder)
    Batches, _ = _batches_class()
    if split == "val":
        return Batches([folder / "val.npz"], info["val_batches"], info["val_structure"])
    return Batches([folder / name for name in info["files"]], info["batches"][0], info["structure"])


def _info(folder: Path) -> dict:
    try:
        info = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError) as e:
        raise DataError(f"{folder}: not a prepared folder ({MARKER} unreadable: {e})") from None
    if info.get("format") != FORMAT:
        raise DataError(f"{folder} was prepared in format {info.get('format')}, this seqapps reads {FORMAT}; "
                        "prepare it again")
    missing = [n for n in dict.fromkeys(["model.json", "config.json", "val.npz", *info["files"]])
               if not (folder / n).is_file()]
    if missing:
        raise DataError(f"{folder} is incomplete: {', '.join(missing)} missing; prepare it again")
    return info


# -- training (any backend) ----------------------------------------------------------------------------
def train_api(task, data, *, run_dir=None, backend=None, overwrite=False, verbose=None, evaluate=True, **fixed):
    """``seqapps.train(task, data=FOLDER, ...)``: :func:`train`, with every argument that would change
    the training (epochs, batch_size, overrides, strategy, preset, data_dir, callbacks) refused."""
    given = sorted(k for k, v in fixed.items() if v not in (None, (), []))
    if given:
        raise ConfigError(f"{data} is a prepared folder, whose training is fixed when it is prepared: pass "
                          f"{', '.join(given)} to prepare() instead")
    return train(task, data, run_dir=run_dir, backend=backend, overwrite=overwrite, verbose=verbose, evaluate=evaluate)


def train(task: str, folder, *, run_dir=None, backend=None, overwrite=False, verbose=None, evaluate=True) -> Run:
    """Train the prepared ``folder`` (written by :func:`prepare` for ``task``) into ``run_dir``
    (default ``runs/<task>-<data>``) on ``backend`` (default: the one it was prepared for)."""
    folder = Path(folder)
    info = _info(folder)
    if info["task"] != task:
        raise ConfigError(f"{folder} was prepared for {info['task']}, not {task}")
    backend = engine.check_backend(backend or info["backend"])
    from seqapps.training.fit import default_run_dir

    run = Run(run_dir or default_run_dir(task, info["data"]))
    if not engine.select(backend):
        engine.run_elsewhere(backend, ["train", task, "--data", folder, "--run-dir", run.dir, "--backend", backend,
                                       *(["--overwrite"] * overwrite), *(["--no-eval"] * (not evaluate))],
                             f"training {task}")
        return Run(run.dir)
    from seqapps.training.fit import finish

    with locked(run.dir):
        finish(run, _train_into(info, folder, run, overwrite, verbose), evaluate, verbose)
    return run


def _train_into(info, folder: Path, run: Run, overwrite: bool, verbose) -> float:
    import types

    import keras

    for module in ("seqapps.training.losses", *model_modules(info["task"])):  # what the saved model names
        importlib.import_module(module)
    from seqapps.training.fit import fit, fit_callbacks
    from seqapps.analysis.plots import plot_history

    resuming = _start_run_dir(info, folder, run, overwrite)
    train_cfg = types.SimpleNamespace(**json.loads((folder / "config.json").read_text())["train"])
    keras.utils.set_random_seed(train_cfg.seed)
    engine.use_compile_cache()
    model = keras.saving.deserialize_keras_object(json.loads((folder / "model.json").read_text()))
    # the compile config saved where it was prepared holds TensorFlow's resolution of jit_compile="auto"
    # (off on a CPU); here it is what "auto" gives on the backend that trains: XLA on JAX, none elsewhere
    model.jit_compile = keras.backend.backend() == "jax"
    train_batches, val_batches = batches(folder, "train"), batches(folder, "val")
    _, EpochFeed = _batches_class()
    task_callbacks = [_rebuild(d) for d in info["callbacks"]]
    callbacks = fit_callbacks(train_cfg, run, info["monitor"], info["monitor_mode"],
                              [EpochFeed(train_batches), *task_callbacks], resuming)
    run.record(replicas=1, backend=keras.backend.backend())
    started = fit(model, run, train_batches, val_batches, info["epochs"], None, callbacks, verbose,
                  getattr(train_cfg, "validation_steps", 0))
    plot_history(run.history_path, run.curves_path)
    return round(time.time() - started, 2)


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


#: callback modules of folders prepared before the library was grouped by role
_OLD_MODULES = {"seqapps.callbacks": "seqapps.training.callbacks"}


def _rebuild(description: dict):
    module, _, name = description["class"].partition(":")
    module = _OLD_MODULES.get(module, module)
    cls = importlib.import_module(module)
    for part in name.split("."):
        cls = getattr(cls, part)
    return cls(**description["config"])


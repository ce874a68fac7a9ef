"""The training engine: the Keras backend that trains is a setting; exports are TensorFlow whatever it was."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import seqapps
from conftest import ROOT, assert_same_outputs, run_cli, tiny
from seqapps.training import backends as engine
from seqapps.core import registry
from seqapps.core.errors import ConfigError
from seqapps.training.fit import Run, resolve_config
from seqapps.core.testing import make_batch

TASKS = registry.names()
needs_jax = pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed")

TRAIN_ALL = """
import json, sys
import seqapps
from seqapps.core import registry
import keras
assert keras.backend.backend() == "jax"
for name, run_dir in json.loads(sys.argv[1]).items():
    seqapps.train(name, "demo", overrides=[*registry.get(name).tiny_overrides, "train.steps_per_epoch=2"],
                  run_dir=run_dir, verbose=0, evaluate=False, backend="jax")
print(json.dumps({"backend": keras.backend.backend()}))
"""


@pytest.fixture(scope="module")
def jax_runs(tmp_path_factory):
    """Every task's tiny demo run (two steps) trained on the JAX backend, in one child process."""
    root = tmp_path_factory.mktemp("jax-runs")
    runs = {name: str(root / name) for name in TASKS}
    for name in TASKS:
        tiny(registry.get(name))  # a task without tiny overrides fails here, loudly
    cache = root / "compiled"
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(ROOT), "SEQAPPS_JAX_CACHE": str(cache)}
    proc = subprocess.run([sys.executable, "-c", TRAIN_ALL, json.dumps(runs)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert cache.is_dir() and any(cache.iterdir())  # compiled programs kept for the next run
    return runs


@pytest.mark.slow
@needs_jax
@pytest.mark.parametrize("name", TASKS)
def test_every_task_trains_on_jax_and_its_tensorflow_export_answers_like_the_run(name, jax_runs, tmp_path):
    run_dir = jax_runs[name]
    info = json.loads(open(os.path.join(run_dir, "run.json")).read())
    assert info["backend"] == "jax"
    assert json.loads(open(os.path.join(run_dir, "config.json")).read())["train"]["backend"] == "jax"
    task = registry.get(name)
    export = Run(run_dir).export(tmp_path / "export")  # this process runs TensorFlow
    loaded, memory = seqapps.load(export), seqapps.load(run_dir)
    meta = json.loads((export / "metadata.json").read_text())
    for signature, (_, specs) in loaded.signatures.items():
        batch = make_batch(specs, task.sample_inputs(np.random.default_rng(1), 3, meta, signature))
        assert_same_outputs(loaded.call(signature, **batch), memory.call(signature, **batch),
                            f"{name}:{signature} (trained on jax)")


@pytest.mark.slow
@needs_jax
def test_train_from_python_with_another_backend_runs_a_child_process_and_scores_with_tensorflow(tmp_path):
    import keras

    assert keras.backend.backend() == "tensorflow"
    run = seqapps.train("sentiment", "demo", backend="jax", run_dir=tmp_path / "run", verbose=0,
                        overrides=[*registry.get("sentiment").tiny_overrides, "train.steps_per_epoch=2"])
    assert json.loads((run.dir / "run.json").read_text())["backend"] == "jax"
    metrics = json.loads((run.dir / "metrics.json").read_text())
    assert 0.0 <= metrics["test"]["accuracy"] <= 1.0 and metrics["train_seconds"] > 0  # scored by a TF child
    history = (run.dir / "history.csv").read_text().splitlines()
    assert "epoch_seconds" in history[0] and len(history) == 2
    with pytest.raises(ConfigError, match="callbacks= need the training to run in this process"):
        seqapps.train("sentiment", "demo", backend="jax", run_dir=tmp_path / "other", callbacks=[object()])


@pytest.mark.slow
def test_unknown_or_missing_backend_is_one_line_and_writes_nothing(tmp_path):
    bad = run_cli("train", "sentiment", "--data", "demo", "--set", "train.backend=theano", "--run-dir", tmp_path / "a")
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == ["error: train.backend must be one of tensorflow, jax, torch, "
                                               "got 'theano'"]
    assert not (tmp_path / "a").exists()
    flag = run_cli("train", "sentiment", "--backend", "theano")
    assert flag.returncode == 2 and "invalid choice: 'theano'" in flag.stderr
    if importlib.util.find_spec("torch") is None:
        missing = run_cli("train", "sentiment", "--data", "demo", "--backend", "torch", "--run-dir", tmp_path / "b")
        assert missing.returncode == 2 and missing.stderr.strip().splitlines() == [
            "error: the torch backend is not installed; install it with: pip install torch==2.13.0"]
        assert not (tmp_path / "b").exists()


def test_a_named_dataset_trains_on_its_declared_backend_and_everything_else_on_tensorflow():
    from seqapps.data import catalog

    for entry in catalog.CATALOG.values():
        assert entry.task in TASKS and entry.backend in ("", *engine.BACKENDS), entry.name
        expected = entry.backend or "tensorflow"
        assert engine.default_backend(entry.task, entry.name) == expected
        assert resolve_config(registry.get(entry.task), entry.name,
                              overrides=["train.backend=jax"]).train.backend == "jax"
    # SST-2 trains on TensorFlow: on a first run, JAX's compile of every batch shape costs more than its
    # steady epoch saves
    assert engine.default_backend("sentiment", "sst2") == "tensorflow"
    for name in TASKS:  # demo data trains on TensorFlow: no compile to earn back
        assert resolve_config(registry.get(name), "demo").train.backend == "tensorflow"


def test_compile_cache_folder_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("SEQAPPS_JAX_CACHE", raising=False)
    monkeypatch.setenv("SEQAPPS_CACHE", str(tmp_path / "cache"))
    assert engine.compile_cache() == tmp_path / "cache" / "jax"
    monkeypatch.setenv("SEQAPPS_JAX_CACHE", str(tmp_path / "elsewhere"))
    assert engine.compile_cache() == tmp_path / "elsewhere"
    for off in ("none", "off", ""):
        monkeypatch.setenv("SEQAPPS_JAX_CACHE", off)
        assert engine.compile_cache() is None

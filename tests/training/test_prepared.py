"""Prepared arrays: a task's batches written where TensorFlow runs, trained where only Keras and JAX do."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import seqapps
from conftest import ROOT, run_main
from seqapps.training import prepared
from seqapps.core import registry
from seqapps.core.errors import ConfigError, DataError, SeqappsError
from seqapps.training.fit import Run, resolve_config, score

needs_jax = pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed")

TRANSLATION = ["model.units=8", "model.embedding_dim=8", "model.attention_units=8", "train.batch_size=16",
               "train.epochs=2"]
CHAR_LM = ["model.units=8", "model.embedding_dim=8", "train.batch_size=8", "train.bptt=16", "train.epochs=2",
           "train.patience=0", "data.eval_streams=4"]

#: runs seqapps' command line as on a machine where TensorFlow is not installed
WITHOUT_TENSORFLOW = """
import runpy, sys
for name in ("tensorflow", "tensorflow_datasets", "tf_keras"):
    sys.modules[name] = None
sys.argv = ["seqapps", *sys.argv[1:]]
runpy.run_module("seqapps", run_name="__main__")
"""


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("prepared")
    return {"translation": seqapps.prepare("translation", "demo", root / "translation", overrides=TRANSLATION),
            "char_lm": seqapps.prepare("char_lm", "demo", root / "char_lm", overrides=CHAR_LM)}


def _epoch_batches(task_name, overrides):
    """The batches ``train`` draws on the TensorFlow path, epoch by epoch, under the same seed."""
    import keras

    task = registry.get(task_name)
    cfg = resolve_config(task, "demo", overrides=[*overrides, "train.backend=jax"])
    splits = task.load_data(cfg)
    keras.utils.set_random_seed(cfg.train.seed)
    prep = task.fit_preprocessing(cfg, splits)
    train_ds, _ = task.datasets(cfg, prep, splits)
    return [[_leaves(e) for e in train_ds] for _ in range(cfg.train.epochs)]


def _leaves(element):
    import keras

    return [np.asarray(t) for t in keras.tree.flatten(element)]


@pytest.mark.parametrize("task_name,overrides", [("translation", TRANSLATION), ("char_lm", CHAR_LM)])
@pytest.mark.slow
def test_prepared_batches_are_the_training_batches(folders, task_name, overrides):
    expected = _epoch_batches(task_name, overrides)
    stored = prepared.batches(folders[task_name])
    assert len(expected[0]) == len(stored) > 0
    for epoch, batches in enumerate(expected):
        stored.epoch = epoch
        for i, batch in enumerate(batches):
            got = _leaves(stored[i])
            assert [a.shape for a in got] == [b.shape for b in batch]
            for a, b in zip(got, batch):
                np.testing.assert_array_equal(a, b)
                assert a.dtype == (np.int32 if b.dtype.kind in "iu" else b.dtype)
    if task_name == "translation":  # a new shuffle each epoch, each written
        assert not np.array_equal(expected[0][0][0], expected[1][0][0])


@pytest.mark.slow
def test_prepared_folder_contents(folders):
    info = json.loads((folders["translation"] / "prepared.json").read_text())
    assert info["task"] == "translation" and info["epochs"] == 2 and info["backend"] == "jax"
    assert [[s["file"] for s in shards] for shards in info["shards"]] == [["train-0-00000.npz"], ["train-1-00000.npz"]]
    assert [sum(s["batches"] for s in shards) for shards in info["shards"]] == info["batches"]
    assert sorted(p.name for p in (folders["translation"] / "prep").iterdir()) == ["source_vocab.txt",
                                                                                   "target_vocab.txt"]
    config = json.loads((folders["translation"] / "config.json").read_text())
    assert config["model"]["units"] == 8 and config["train"]["backend"] == "jax"
    with np.load(folders["translation"] / "train-0-00000.npz") as f:
        assert f["0-0"].dtype == np.int8  # demo ids are few: kept narrow, fed as int32
    lm = json.loads((folders["char_lm"] / "prepared.json").read_text())
    assert lm["callbacks"] == [{"class": "seqapps.training.callbacks:ResetStates", "config": {}}]
    assert lm["shards"][0] == lm["shards"][1]  # stateful streams: the same every epoch, written once
    assert not list(folders["char_lm"].glob("train-1-*.npz"))


@pytest.mark.slow
@needs_jax
def test_prepared_trains_without_tensorflow_and_scores_where_it_is(folders, tmp_path):
    script = tmp_path / "without_tf.py"
    script.write_text(WITHOUT_TENSORFLOW)
    run_dir = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KERAS_BACKEND": "jax", "SEQAPPS_JAX_CACHE": "none"}
    proc = subprocess.run([sys.executable, str(script), "train", "char_lm", "--data", folders["char_lm"],
                           "--run-dir", run_dir], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "TensorFlow is not installed here, so the run was not scored" in proc.stderr
    run = Run.open(run_dir)
    info = run.info
    assert info["backend"] == "jax" and info["versions"]["tensorflow"] is None
    assert info["prepared_id"] == json.loads((folders["char_lm"] / "prepared.json").read_text())["id"]
    with open(run.history_path) as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["0", "1"]
    assert float(rows[1]["loss"]) < float(rows[0]["loss"])
    assert (run_dir / "chars.json").exists() and run.model_path.exists() and not run.backup_dir.exists()
    assert set(json.loads(run.metrics_path.read_text())) == {"train_seconds"}
    metrics = score(run, verbose=False)  # here TensorFlow is installed: an ordinary run directory
    assert 0 < metrics["val"]["nats_per_char"] < 5 and metrics["val"]["chars"] > 0
    text = run.predictor().generate("the ", length=20, temperature=0.0)
    assert isinstance(text, str) and text


@pytest.mark.slow
def test_prepared_folder_errors(folders, tmp_path, capsys):
    code, lines = run_main(["train", "pos", "--data", folders["translation"]], capsys)
    assert code == 2 and len(lines) == 1 and "was prepared for translation, not pos" in lines[0]
    code, lines = run_main(["train", "translation", "--data", folders["translation"], "--set", "model.units=4",
                            "--epochs", "3"], capsys)
    assert code == 2 and len(lines) == 1 and "--set, --epochs cannot change it" in lines[0]
    with pytest.raises(ConfigError, match="prepared folder.*pass epochs to prepare"):
        seqapps.train("translation", data=folders["translation"], epochs=3)
    broken = tmp_path / "broken"
    shutil.copytree(folders["translation"], broken)
    (broken / "train-1-00000.npz").unlink()
    with pytest.raises(DataError, match="incomplete: train-1-00000.npz missing"):
        prepared.train("translation", broken, run_dir=tmp_path / "r")
    with pytest.raises(SeqappsError, match="already exists"):
        seqapps.prepare("translation", "demo", folders["translation"], overrides=TRANSLATION)
    with pytest.raises(ConfigError, match="cannot be prepared"):
        seqapps.prepare("translation", "demo", tmp_path / "m", overrides=[*TRANSLATION, "train.strategy=mirrored"])
    assert not (tmp_path / "m").exists()


def test_prepare_needs_only_tensorflow_not_the_backend_it_prepares_for(tmp_path, monkeypatch):
    from seqapps.training import backends as engine

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "jax" else real(name, *a))
    with pytest.raises(ConfigError, match="the jax backend is not installed"):
        engine.check_backend("jax")  # as here, where jax is missing
    folder = seqapps.prepare("char_lm", "demo", tmp_path / "lm", overrides=[*CHAR_LM, "train.epochs=1"])
    assert json.loads((folder / "config.json").read_text())["train"]["backend"] == "jax"
    with pytest.raises(ConfigError, match="backend must be one of"):
        seqapps.prepare("char_lm", "demo", tmp_path / "x", backend="theano")


@pytest.mark.slow
def test_small_shards_hold_the_same_batches_read_shard_by_shard(folders, tmp_path):
    """Preparing writes shards as the batches come (at most one in memory); reading them in order,
    the next one loading in the background, gives the batches of one big file."""
    small = seqapps.prepare("translation", "demo", tmp_path / "small", overrides=TRANSLATION, shard_mb=0.002)
    info = json.loads((small / "prepared.json").read_text())
    assert all(len(shards) > 3 for shards in info["shards"]) and len(info["val_shards"]) > 1
    assert info["batches"] == json.loads((folders["translation"] / "prepared.json").read_text())["batches"]
    one, many = prepared.batches(folders["translation"]), prepared.batches(small)
    for epoch in range(2):
        one.epoch = many.epoch = epoch
        for i in range(len(one)):
            for a, b in zip(_leaves(one[i]), _leaves(many[i])):
                np.testing.assert_array_equal(a, b)
    assert len(many._loaded) <= 2  # this shard and the next
    workers = [prepared.batches(small, share=(w, 2)) for w in range(2)]
    assert len(workers[0]) == len(workers[1]) > 0
    assert not set(workers[0].files(0)) & set(workers[1].files(0))  # disjoint shards
    assert set(workers[0].files(0)) | set(workers[1].files(0)) == {s["file"] for s in info["shards"][0]}
    with pytest.raises(ConfigError, match="fewer than the 2 workers.*--shard-mb"):
        prepared.batches(folders["translation"], share=(0, 2))
    few = seqapps.prepare("translation", "demo", tmp_path / "few", overrides=[*TRANSLATION, "train.validation_steps=2"])
    assert json.loads((few / "prepared.json").read_text())["val_batches"] == 2  # what training validates on


@pytest.mark.slow
def test_a_folder_of_the_first_format_is_still_read(folders, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(folders["char_lm"], old)
    info = json.loads((old / "prepared.json").read_text())
    (old / info["shards"][0][0]["file"]).rename(old / "train-0.npz")
    (old / info["val_shards"][0]["file"]).rename(old / "val.npz")
    for key in ("shards", "val_shards"):
        del info[key]
    info.update(format=1, files=["train-0.npz", "train-0.npz"])
    (old / "prepared.json").write_text(json.dumps(info))
    stored = prepared.batches(old)
    assert len(stored) == info["batches"][0] and len(prepared.batches(old, "val")) == info["val_batches"]


@pytest.mark.slow
@pytest.mark.parametrize("name", registry.names())
def test_every_task_trains_from_a_prepared_folder(name, tmp_path):
    """Whatever custom layers a task's model holds, the folder's model.json names the modules that
    register them, so training from the folder finds them (and writes a loadable best.keras)."""
    import keras

    from conftest import tiny

    task = registry.get(name)
    folder = seqapps.prepare(name, "demo", tmp_path / "prepared", backend="tensorflow",
                             overrides=[*tiny(task), "train.epochs=1"])
    run = prepared.train(name, folder, run_dir=tmp_path / "run", evaluate=False)
    assert run.model_path.exists() and (run.dir / "history.csv").exists()
    assert isinstance(keras.saving.load_model(run.model_path, compile=False), keras.Model)


@pytest.mark.slow
def test_a_killed_training_from_a_prepared_folder_resumes(tmp_path):
    import signal
    import time

    folder = seqapps.prepare("sentiment", "demo", tmp_path / "prepared", backend="tensorflow", shard_mb=0.01,
                             overrides=["model.units=8", "model.subwords=false", "train.epochs=3", "train.patience=0",
                                        "train.steps_per_epoch=60", "train.backup_every=5"])
    run_dir = tmp_path / "run"
    args = [sys.executable, "-m", "seqapps", "train", "sentiment", "--data", str(folder), "--run-dir", str(run_dir),
            "--no-eval"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    history, deadline = run_dir / "history.csv", time.time() + 240

    def backed_up_epoch():
        try:
            return json.loads((run_dir / "backup" / "training_metadata.json").read_text())["epoch"]
        except (OSError, ValueError, KeyError):
            return -1

    while time.time() < deadline and proc.poll() is None:
        if history.exists() and len(history.read_text().splitlines()) >= 2 and backed_up_epoch() >= 1:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 1 <= len(history.read_text().splitlines()) - 1 < 3, "the run finished before it could be interrupted"
    again = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "resuming the interrupted run" in again.stderr
    assert [int(line.split(",")[0]) for line in history.read_text().splitlines()[1:]] == [0, 1, 2]
    assert not (run_dir / "backup").exists() and run_dir.joinpath("best.keras").exists()

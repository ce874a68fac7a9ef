"""Training: a killed run resumes from its backup; learning-rate decay and warmup."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import ROOT
from seqapps.core.errors import ConfigError


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_killed_run_resumes_from_its_backup(tmp_path, stop):
    run_dir = tmp_path / "run"
    args = [sys.executable, "-m", "seqapps", "train", "sentiment", "--data", "demo", "--epochs", "3",
            "--run-dir", str(run_dir), "--set", "train.steps_per_epoch=100", "--set", "train.backup_every=5",
            "--set", "model.units=8", "--set", "train.patience=0"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=(tmp_path / "stderr.txt").open("w"))
    history = run_dir / "history.csv"
    deadline = time.time() + 240

    def backed_up_epoch():  # the file may be mid-write or just replaced: read it when it is whole
        try:
            return json.loads((run_dir / "backup" / "training_metadata.json").read_text())["epoch"]
        except (OSError, ValueError, KeyError):
            return -1

    while time.time() < deadline:  # wait until epoch 1 is logged and epoch 2 has a mid-epoch backup
        if history.exists() and len(history.read_text().splitlines()) >= 2 and backed_up_epoch() >= 1:
            break
        time.sleep(0.05)
    proc.send_signal(stop)
    stopped = time.time()
    proc.wait(timeout=60)
    stderr = (tmp_path / "stderr.txt").read_text()
    if stop == signal.SIGTERM:  # stops between two steps, says so in one line, and leaves the backup to resume from
        assert time.time() - stopped < 30 and proc.returncode == 143, (proc.returncode, stderr[-2000:])
        assert stderr.strip().splitlines()[-1] == "interrupted; the same command resumes it from its last backup"
    epochs_before = len(history.read_text().splitlines()) - 1
    assert 1 <= epochs_before < 3, "the run finished before it could be interrupted"
    again = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "resuming the interrupted run" in again.stderr
    epochs = [int(line.split(",")[0]) for line in history.read_text().splitlines()[1:]]
    assert epochs == [0, 1, 2]  # continued; did not start over at epoch 0
    assert not (run_dir / "backup").exists() and (run_dir / "metrics.json").exists()


def _rates(opt, steps) -> list[float]:
    """The optimizer's learning rate at each step count (its current rate follows ``iterations``)."""
    out = []
    for step in steps:
        opt.iterations.assign(step)
        out.append(float(opt.learning_rate))
    return out


def test_cosine_decay_falls_to_zero_over_all_steps_and_needs_them():
    from seqapps.core.config import TrainConfig
    from seqapps.training.fit import make_optimizer

    rates = _rates(make_optimizer(TrainConfig(learning_rate=0.01, decay="cosine"), total_steps=100), (0, 50, 100))
    assert rates[0] == pytest.approx(0.01) and rates[1] == pytest.approx(0.005)
    assert rates[2] == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ConfigError, match="set train.steps_per_epoch"):
        make_optimizer(TrainConfig(decay="cosine"))
    with pytest.raises(ConfigError, match="train.decay must be none or cosine"):
        make_optimizer(TrainConfig(decay="linear"), total_steps=10)


def test_warmup_rises_linearly_then_decays_or_holds():
    from seqapps.core.config import TrainConfig
    from seqapps.training.fit import make_optimizer

    cosine = _rates(make_optimizer(TrainConfig(learning_rate=0.01, decay="cosine", warmup=10), total_steps=110),
                   (0, 5, 10, 60, 110))
    assert cosine == pytest.approx([0.0, 0.005, 0.01, 0.005, 0.0], abs=1e-7)
    held = _rates(make_optimizer(TrainConfig(learning_rate=0.01, warmup=4)), (0, 2, 4, 1000))
    assert held == pytest.approx([0.0, 0.005, 0.01, 0.01], abs=1e-7)
    with pytest.raises(ConfigError, match="train.warmup=10 leaves no batch"):
        make_optimizer(TrainConfig(decay="cosine", warmup=10), total_steps=10)


def test_training_by_name_without_the_default_dataset_falls_back_to_demo(tmp_path, monkeypatch, capsys):
    """The Python API as the command line: no data given and the task's default dataset not installed
    trains on the demo data, with a note saying so."""
    import seqapps
    from conftest import tiny
    from seqapps.core import registry

    monkeypatch.setenv("SEQAPPS_DATA", str(tmp_path / "empty"))
    run = seqapps.train("sentiment", overrides=[*tiny(registry.get("sentiment")), "train.epochs=1"],
                        run_dir=tmp_path / "run", evaluate=False, backend="tensorflow")
    assert "sst2 is not under the data directory" in capsys.readouterr().err
    assert json.loads((run.dir / "run.json").read_text())["data"] == "demo"


@pytest.mark.slow
def test_a_streamed_first_epoch_ends_without_keras_out_of_data_warning(tmp_path):
    """Keras warns "Your input ran out of data" when a split of unknown length ends its first epoch (how it learns
    the length); training without train.steps_per_epoch hides that note, which would read as a fault."""
    import warnings

    import seqapps
    from conftest import tiny
    from seqapps.core import registry

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        seqapps.train("sentiment", "demo", overrides=[*tiny(registry.get("sentiment")), "train.epochs=2"],
                      run_dir=tmp_path / "run", evaluate=False, backend="tensorflow", verbose=0)
    assert not [w for w in caught if "ran out of data" in str(w.message)]

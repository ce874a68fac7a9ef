"""Run directories: one training at a time, the lock gone with its process."""

from __future__ import annotations

import os

import pytest

from conftest import run_cli
from seqapps.training.run_dir import locked

pytestmark = pytest.mark.slow  # both train


def test_a_second_training_into_a_busy_run_directory_is_one_line_naming_the_holder(tmp_path):
    run_dir = tmp_path / "run"
    with locked(run_dir):
        busy = run_cli("train", "sentiment", "--data", "demo", "--run-dir", run_dir, "--set", "model.units=8")
    assert busy.returncode == 2
    assert busy.stderr.strip().splitlines() == [
        f"error: {run_dir} is in use by process {os.getpid()} (a training into the same run directory); "
        "wait for it to end or pass another --run-dir"]
    assert not run_dir.exists()  # nothing was written
    with locked(run_dir):  # released when the block (or the process holding it) ends
        pass


def test_a_time_limit_stops_training_inside_its_epoch_and_keeps_the_checkpoint(tmp_path):
    import pandas as pd

    import seqapps

    tiny = ["model.units=8", "model.embedding_dim=8", "model.subword_buckets=500", "train.batch_size=8",
            "train.patience=0"]
    for limit, epochs_run in (("0.001", 1), ("0", 2)):  # the first batch is over a millisecond; no limit: both
        run = seqapps.train("sentiment", "demo", epochs=2, overrides=[*tiny, f"train.time_limit={limit}"],
                            run_dir=tmp_path / limit, verbose=0, evaluate=False)
        history = pd.read_csv(run.history_path)
        assert len(history) == epochs_run and "val_accuracy" in history, history
        assert run.model_path.is_file()  # the stopped epoch was validated and checkpointed

"""Run directories: one training at a time, the lock gone with its process."""

from __future__ import annotations

import os

from conftest import run_cli
from seqapps.run import locked


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

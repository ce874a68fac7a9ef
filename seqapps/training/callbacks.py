"""Keras callbacks the training loop adds to every run."""

from __future__ import annotations

import time

import keras


class EpochTimer(keras.callbacks.Callback):
    """Adds ``epoch_seconds`` (wall time of the epoch's training steps, its validation left
    out) to the epoch's logs, so ``history.csv`` shows step time, and compile time as the
    first epoch's excess over the next."""

    def on_epoch_begin(self, epoch, logs=None):
        self.started, self.trained = time.perf_counter(), None

    def on_test_begin(self, logs=None):
        if getattr(self, "trained", 0) is None:  # validation inside fit: the training steps are done
            self.trained = time.perf_counter() - self.started

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["epoch_seconds"] = self.trained if self.trained is not None else time.perf_counter() - self.started


class TimeLimit(keras.callbacks.Callback):
    """Stops training once ``seconds`` of fitting have passed (checked after every batch): the epoch
    it stops in ends early and is validated as usual, so the best checkpoint can be that partial
    epoch. Measures this process's fit (a resumed run gets the limit again)."""

    def __init__(self, seconds: float):
        super().__init__()
        self.seconds = float(seconds)
        self.stopped_after = None  # seconds of fitting when it stopped training, if it did

    def on_train_begin(self, logs=None):
        self.started = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        elapsed = time.perf_counter() - self.started
        if elapsed >= self.seconds and not self.model.stop_training:
            self.model.stop_training, self.stopped_after = True, elapsed


class ResetStates(keras.callbacks.Callback):
    """Zero the stateful layers' carried state at each epoch's start and before validation."""

    def get_config(self):  # task callbacks are described by class and config (seqapps.training.prepared)
        return {}

    def _reset(self):
        for layer in self.model.layers:
            if getattr(layer, "stateful", False) and hasattr(layer, "reset_state"):
                layer.reset_state()

    def on_epoch_begin(self, epoch, logs=None):
        self._reset()

    def on_test_begin(self, logs=None):
        self._reset()

    def on_test_end(self, logs=None):
        self._reset()


class ResumeReport(keras.callbacks.Callback):
    """Placed after ``BackupAndRestore`` and before ``CSVLogger``: once the backup (if any) is
    restored, says where training really continues, and drops the rows of ``history.csv``
    for epochs that will run again, so the history keeps exactly one row per epoch."""

    def __init__(self, history_path, run_dir, resuming: bool):
        super().__init__()
        self.history_path, self.run_dir, self.resuming = history_path, run_dir, resuming

    def on_train_begin(self, logs=None):
        import sys

        start = int(getattr(self.model, "_initial_epoch", None) or 0)
        if self.resuming:
            print(f"resuming the interrupted run in {self.run_dir} after epoch {start} (its last backup)" if start
                  else f"the interrupted run in {self.run_dir} had no backup yet; training again from epoch 1",
                  file=sys.stderr)
        trim_history(self.history_path, start)


def trim_history(path, epochs: int) -> None:
    """Keep the header and the rows of the first ``epochs`` epochs (0-based ``epoch`` < ``epochs``)."""
    import csv
    from pathlib import Path

    path = Path(path)
    if not path.exists():
        return
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows or "epoch" not in rows[0]:
        return
    column = rows[0].index("epoch")
    kept = [rows[0]] + [r for r in rows[1:] if r and r[column].isdigit() and int(r[column]) < epochs]
    if len(kept) != len(rows):
        with open(path, "w", newline="") as f:
            csv.writer(f).writerows(kept)

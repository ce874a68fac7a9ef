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

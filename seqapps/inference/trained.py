"""A run directory with its conveniences: what ``seqapps.train`` returns.

:class:`TrainedRun` is a :class:`seqapps.training.run_dir.Run` (paths and files) that can also say
its task and config, load its model, predict in memory and export itself. Each is one
call into :mod:`seqapps.inference.bundle`, :mod:`seqapps.inference.predictor` or :mod:`seqapps.inference.export`,
which never import this module, so no import cycle forms.
"""

from __future__ import annotations

from seqapps.training.run_dir import Run
from seqapps.inference import bundle as _bundle


class TrainedRun(Run):
    @property
    def task(self):
        return _bundle.task_of(self)

    @property
    def config(self):
        return _bundle.config_of(self)

    def load_model(self):
        return _bundle.load_model(self)

    def bundle(self) -> "_bundle.Bundle":
        return _bundle.Bundle(self)

    def metadata(self) -> dict:
        """The metadata an export of this run carries (without its signatures)."""
        return self.bundle().metadata()

    def predictor(self):
        """An in-memory Predictor over the best checkpoint (the same endpoints as an export)."""
        from seqapps.inference.predictor import Predictor

        return Predictor.from_run(self.bundle())

    def export(self, out_dir):
        """Export the best checkpoint as a raw-input SavedModel (see :mod:`seqapps.inference.export`)."""
        from seqapps.inference.export import export

        return export(self.bundle(), out_dir)

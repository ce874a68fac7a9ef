"""seqapps: sequence-modeling applications, one per RNN topology, on Keras 3.

Train a task by name, export a SavedModel that takes raw inputs, and predict:

    >>> import seqapps
    >>> run = seqapps.train("sentiment", data="demo", epochs=2)
    >>> run.export("saved_models/sentiment")
    >>> seqapps.load("saved_models/sentiment").predict(["a gripping film"])
"""

__version__ = "0.1.0"


def train(task, data=None, **kwargs):
    """Train ``task`` on ``data``; see :func:`seqapps.training.fit.train` (and, for a folder written by
    :func:`prepare`, :func:`seqapps.training.prepared.train`, which needs no TensorFlow)."""
    from seqapps.training import prepared

    if prepared.is_prepared(data):
        return prepared.train_api(task, data, **kwargs)
    from seqapps.training.fit import train as _train

    return _train(task, data, **kwargs)


def prepare(task, data=None, out=None, **kwargs):
    """Write ``task``'s batches as arrays to train where TensorFlow is not installed; see
    :func:`seqapps.training.prepared.prepare`."""
    from seqapps.training.prepared import prepare as _prepare

    return _prepare(task, data, out, **kwargs)


def load(path):
    """Load an export or run directory as a Predictor; see :mod:`seqapps.inference.predictor`."""
    from seqapps.inference.loading import load as _load

    return _load(path)


__all__ = ["train", "prepare", "load", "__version__"]

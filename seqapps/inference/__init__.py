"""Serving: a run's endpoints and metadata, built once (:mod:`seqapps.inference.bundle`).

``seqapps.inference.export`` writes them into a SavedModel and ``seqapps.inference.predictor`` calls them in
memory; both go through :class:`~seqapps.inference.bundle.Bundle`, so a run directory and
its export answer the same way. This package's ``__init__`` imports nothing, so any
module may import a submodule without pulling in the others.
"""

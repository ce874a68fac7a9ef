"""Serving: a run's endpoints and metadata, built once (:mod:`seqapps.serving.bundle`).

``seqapps.export`` writes them into a SavedModel and ``seqapps.predict`` calls them in
memory; both go through :class:`~seqapps.serving.bundle.Bundle`, so a run directory and
its export answer the same way. This package's ``__init__`` imports nothing, so any
module may import a submodule without pulling in the others.
"""

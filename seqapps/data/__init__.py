"""Dataset resolution, format readers, vectorizers and tf.data pipelines."""

import os
from pathlib import Path


def cache_folder(explicit: str = "") -> Path:
    """The folder seqapps keeps what it builds once (count vectors, image features, JAX's compiled
    programs) in: ``explicit`` if given, else ``$SEQAPPS_CACHE``, else ``~/.cache/seqapps``."""
    return Path(explicit or os.environ.get("SEQAPPS_CACHE") or "~/.cache/seqapps").expanduser()

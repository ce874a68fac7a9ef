"""Which Keras backend trains a task, and running a step of the work on another one.

Keras picks its backend once, when it is first imported (``KERAS_BACKEND``). Models,
layers, losses and metrics are written in ``keras.ops`` so they train on any of them;
tf.data feeds every backend; exports are always written with the TensorFlow backend
(their signatures are TensorFlow graphs). A step asked for on a backend other than the
one this process runs goes to a child process that runs it, with the same arguments.

A named dataset may name the backend it trains on by default (``NamedDataset.backend``, in
the task's ``datasets.py``), chosen by what a first-time user waits for: the whole fit with a
cold compile cache, not the steady epoch alone (``benchmarks/engine.py`` measures both).
Everything else (``demo``, a user's files) trains on TensorFlow: JAX compiles each batch shape
first, which a small dataset never earns back.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import warnings

from seqapps.core.config import CHOICES
from seqapps.core.errors import ConfigError, SeqappsError

BACKENDS = tuple(b for b in CHOICES["train.backend"] if b)  # declared once, on the config field
# tf.data hands JAX int64 ids, which it keeps as int32 (ids and lengths fit): the same note at every step is noise
warnings.filterwarnings("ignore", message="Explicitly requested dtype int64", category=UserWarning)
#: what to install for a backend (the pins in requirements.txt)
PACKAGES = {"tensorflow": "tensorflow-cpu==2.21.0", "jax": "jax==0.10.2", "torch": "torch==2.13.0"}
def default_backend(task_name: str, data: str | None = None) -> str:
    """The backend ``train`` uses for ``task_name`` on ``data`` when none is asked for."""
    from seqapps.data import catalog

    entry = catalog.CATALOG.get(data or "")
    return entry.backend if entry is not None and entry.task == task_name and entry.backend else "tensorflow"


def check_backend(name: str) -> str:
    """``name`` if it is a known, installed backend; else one ConfigError line saying what to do."""
    if name not in BACKENDS:
        raise ConfigError(f"train.backend must be one of {', '.join(BACKENDS)}, got {name!r}")
    module = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}[name]
    if importlib.util.find_spec(module) is None:
        raise ConfigError(f"the {name} backend is not installed; install it with: pip install {PACKAGES[name]}")
    return name


def current_backend() -> str | None:
    """The backend of this process: Keras' if it is imported, else the one it will pick."""
    if "keras" in sys.modules:
        import keras

        return keras.backend.backend()
    return os.environ.get("KERAS_BACKEND") or _configured_backend()


def _configured_backend() -> str:
    import json
    from pathlib import Path

    path = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "keras.json"
    try:
        return json.loads(path.read_text()).get("backend", "tensorflow")
    except (OSError, ValueError):
        return "tensorflow"


def select(name: str) -> bool:
    """Make ``name`` this process's backend if Keras is not imported yet; True when this
    process now runs it (else the caller hands the work to :func:`run_elsewhere`)."""
    if "keras" not in sys.modules:
        os.environ["KERAS_BACKEND"] = name
    return current_backend() == name


def compile_cache():
    """The folder where JAX keeps XLA's compiled programs between processes: ``$SEQAPPS_JAX_CACHE``,
    else ``jax/`` under ``$SEQAPPS_CACHE`` (else ``~/.cache/seqapps``); None when
    ``SEQAPPS_JAX_CACHE=none``."""
    from pathlib import Path

    from seqapps.data import cache_folder

    chosen = os.environ.get("SEQAPPS_JAX_CACHE")
    if chosen is not None and chosen.strip().lower() in ("", "none", "off"):
        return None
    return Path(chosen).expanduser() if chosen else cache_folder() / "jax"


def use_compile_cache() -> None:
    """On the JAX backend, reuse compiled programs across runs: a later training that meets the same
    shapes (the same task and data, say with another learning rate) loads what XLA compiled rather than
    compiling it again (a first sentiment run on sst2 compiles for about 80 s). Only programs that took
    a second or more to compile are kept."""
    folder = compile_cache() if current_backend() == "jax" else None
    if folder is None:
        return
    import jax

    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)


def run_elsewhere(backend: str, argv: list, what: str, module: str = "seqapps") -> None:
    """Run ``python -m MODULE ARGV`` with ``backend``, its output going where ours goes.

    A child that fails on bad input (exit code 2) hands its error back rather than printing it,
    and it is raised here as the same error with the same one line; any other failure is a
    SeqappsError saying which step failed."""
    import tempfile

    from seqapps.core import errors

    env = {**os.environ, "KERAS_BACKEND": backend}
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the folder holding seqapps/
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    sys.stdout.flush()
    sys.stderr.flush()
    with tempfile.TemporaryDirectory(prefix="seqapps-child-") as folder:
        env["SEQAPPS_ERROR_FILE"] = report = os.path.join(folder, "error")
        code = subprocess.call([sys.executable, "-m", module, *map(str, argv)], env=env)
        if code == 2 and os.path.exists(report):
            with open(report, encoding="utf-8") as f:
                kind, _, message = f.read().partition("\t")
            raise getattr(errors, kind, SeqappsError)(message)
    if code:
        raise SeqappsError(f"{what} on the {backend} backend failed (exit code {code}); see the lines above")

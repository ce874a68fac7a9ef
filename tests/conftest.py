"""Shared test helpers: the repository on sys.path, the markers, a fresh-process loader, the CLI
in a process or in this one, the contract's comparisons, and tiny trained runs shared in a session.

Helpers live here (``from conftest import ...``), not in test modules, so that any one test file
runs on its own: pytest puts this folder on sys.path, not the folders of the other test modules."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("SEQAPPS_DATA", str(ROOT.parent / "shared" / "datasets"))
DATA = Path(os.environ["SEQAPPS_DATA"]).resolve()
os.environ["SEQAPPS_DATA"] = str(DATA)  # absolute, for subprocesses started in other folders

#: for tests that read the real datasets (CI has them beside the checkout): marked ``needs_data`` (select
#: or deselect them with ``-m``) and skipped when the datasets are absent (see pytest_collection_modifyitems)
needs_data = pytest.mark.needs_data


def pytest_collection_modifyitems(config, items):
    if DATA.is_dir():
        return
    skip = pytest.mark.skip(reason=f"real datasets not found at {DATA} (set SEQAPPS_DATA)")
    for item in items:
        if item.get_closest_marker("needs_data"):
            item.add_marker(skip)


def run_fresh(code: str, tmp_path) -> object:
    """Run ``code`` in a new Python process where seqapps is NOT importable.

    The code must print one JSON document on its last stdout line; it is returned.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    guard = "import importlib.util, sys\nassert importlib.util.find_spec('seqapps') is None, 'seqapps importable'\n"
    proc = subprocess.run([sys.executable, "-c", guard + code], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


BLOCK_TENSORFLOW = """
import json, sys
class Blocked:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tensorflow", "keras"):
            raise ImportError("blocked: " + name)
sys.meta_path.insert(0, Blocked())
try:
    import tensorflow
    raise SystemExit("tensorflow imported")
except ImportError:
    pass
"""


def without_tensorflow(code: str, tmp_path) -> object:
    """Run ``code`` in a new Python process where importing tensorflow or keras fails (seqapps importable).

    The code sets ``out``; it is printed as JSON and returned, after checking that no module of
    tensorflow or keras was imported on the way."""
    check = ("\nassert not any(m.split('.')[0] in ('tensorflow', 'keras') for m in sys.modules)"
             "\nprint(json.dumps(out))\n")
    proc = subprocess.run([sys.executable, "-c", BLOCK_TENSORFLOW + code + check],
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=300,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_cli(*args, cwd=None, input=None, timeout=600):
    """Run ``python -m seqapps ARGS``; returns the CompletedProcess."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "seqapps", *map(str, args)], cwd=cwd or ROOT, env=env,
                          capture_output=True, text=True, input=input, timeout=timeout)


def cli_here(capsys, *args, input=None) -> subprocess.CompletedProcess:
    """``python -m seqapps ARGS`` through ``seqapps.cli.parser`` in this process, answered like
    :func:`run_cli` (returncode, stdout, stderr): the CLI's own code path without a new interpreter,
    whose imports cost seconds. Each command keeps one test through a real process."""
    import io

    from seqapps.cli import parser as cli

    argv = [str(a) for a in args]
    capsys.readouterr()  # drop what came before
    stdin = sys.stdin
    sys.stdin = io.TextIOWrapper(io.BytesIO((input or "").encode()), encoding="utf-8")  # with .buffer
    try:
        code = cli.main(argv)
    except SystemExit as e:  # argparse's own errors
        code = e.code
    finally:
        sys.stdin = stdin
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(argv, code, out, err)


def peak_memory_mb(argv, env=None, cwd=ROOT) -> float:
    """Run ``argv`` in a child process that must exit 0; its peak resident memory in MB (``wait4``)."""
    proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, out[-2000:]
    return usage.ru_maxrss / 1024


def run_main(argv, capsys):
    """:func:`cli_here` -> (exit code, the non-empty stderr lines)."""
    proc = cli_here(capsys, *argv)
    return proc.returncode, [x for x in proc.stderr.splitlines() if x.strip()]


# -- the contract's checks (tests/tasks/test_contract.py), shared with the engine, bag and transformer tests --
def tiny(task) -> list[str]:
    overrides = type(task).tiny_overrides
    if not overrides:
        pytest.fail(f"task {task.name!r} declares no `tiny_overrides`: add a one-line list of --set overrides that "
                    "train it in seconds on --data demo (see seqapps/core/task.py)")
    return list(overrides)


def assert_same_outputs(a: dict, b: dict, what: str) -> None:
    assert set(a) == set(b), f"{what}: outputs {sorted(a)} vs {sorted(b)}"
    for key in a:
        x, y = np.asarray(a[key]), np.asarray(b[key])
        assert x.shape == y.shape, f"{what}: output {key!r} shapes {x.shape} vs {y.shape}"
        if np.issubdtype(x.dtype, np.floating):
            np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-5, err_msg=f"{what}: output {key!r}")
        else:
            np.testing.assert_array_equal(x, y, err_msg=f"{what}: output {key!r}")


def sample_batches(t, n: int = 6, seed: int = 0) -> dict:
    """Per signature of the export: a batch of ``n`` of the task's sample inputs, and an empty batch."""
    from seqapps.core.testing import empty_batch, make_batch

    task, predictor, meta = t["task"], t["loaded"], t["meta"]
    out = {}
    for i, (name, (_, specs)) in enumerate(predictor.signatures.items()):
        examples = task.sample_inputs(np.random.default_rng(seed + i), n, meta, name)
        assert len(examples) == n and all(set(e) == set(specs) for e in examples), \
            f"{task.name}.sample_inputs({name!r}) must give {n} dicts with the inputs {sorted(specs)}"
        out[name] = {"batch": make_batch(specs, examples, pad=2), "empty": empty_batch(specs, examples[0])}
    return out


#: run in a process with only TensorFlow: an export's answers to pickled batches (see sample_batches)
FRESH = """
import json, pickle, tensorflow as tf
batches = pickle.load(open("batches.pkl", "rb"))
m = tf.saved_model.load({export!r})
out = {{}}
for name, calls in batches.items():
    sig = m.signatures[name]
    specs = sig.structured_input_signature[1]
    res = {{}}
    for kind, inputs in calls.items():
        tensors = {{k: tf.constant(v, dtype=specs[k].dtype) for k, v in inputs.items()}}
        try:
            res[kind] = {{k: v.numpy() for k, v in sig(**tensors).items()}}
        except tf.errors.OpError as e:
            res[kind] = " ".join(str(e).split())[:800]
    out[name] = res
pickle.dump(out, open("outputs.pkl", "wb"))
print(json.dumps({{"signatures": sorted(m.signatures)}}))
"""


# -- sentiment fitted on a small batch (the bag and the transformer tests) ----------------------------
def small_batch(*overrides):
    """A config, its preprocessing and 16 demo sentences as dense model inputs."""
    from seqapps.core import registry

    task = registry.get("sentiment")
    cfg = task.default_config().override(["data.source=demo", "model.units=16", "model.embedding_dim=16",
                                          "model.embedding_dropout=0", "model.head_dropout=0", *overrides])
    task.validate(cfg)
    splits = task.load_data(cfg)
    import tensorflow as tf

    texts, labels = splits.train.materialize()
    texts, labels = texts[:16], labels[:16]
    prep = task.fit_preprocessing(cfg, splits)
    features = task.encoder(cfg, prep)(tf.constant(texts))[0]
    return task, cfg, prep, features, np.asarray([prep.label_ids()[label] for label in labels])


def fitted(*overrides, epochs=40):
    import keras

    task, cfg, prep, features, y = small_batch(*overrides)
    keras.utils.set_random_seed(0)
    model = task.build_model(cfg, prep)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(features, y, epochs=epochs, batch_size=16, verbose=0)
    return task, cfg, prep, model, history


# -- tiny trained runs, shared -------------------------------------------------------------------------
class TinyRuns:
    """Each task's tiny demo run (its ``Task.tiny_overrides``) and one export of it, made when first
    asked for and then shared: for tests that need *a* trained run, not a config of their own. Users
    read them and never write into them (export elsewhere; train their own run to change one)."""

    def __init__(self, tmp_path_factory):
        self._factory, self._runs, self._exports = tmp_path_factory, {}, {}

    def run(self, name: str):
        """The task's tiny run (a ``TrainedRun``)."""
        if name not in self._runs:
            import seqapps
            from seqapps.core import registry

            root = self._factory.mktemp(f"tiny-{name}")
            self._runs[name] = seqapps.train(name, "demo", overrides=tiny(registry.get(name)), run_dir=root / "run",
                                             verbose=0)
        return self._runs[name]

    def export(self, name: str) -> Path:
        """The tiny run's export (a folder beside the run)."""
        if name not in self._exports:
            run = self.run(name)
            self._exports[name] = run.export(run.dir.parent / "export")
        return self._exports[name]


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory) -> TinyRuns:
    """The session's :class:`TinyRuns` (one per xdist worker: each module stays on one worker)."""
    return TinyRuns(tmp_path_factory)


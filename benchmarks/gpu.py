"""The translation and char_lm recipes trained on a GPU host that has JAX and no TensorFlow.

Three steps, each the product's own command (``seqapps.training.prepared``):

1. ``prepare`` (where TensorFlow runs): ``python -m seqapps prepare TASK --data D --preset P``
   for each recipe below, into ``prepared/TASK-PRESET``;
2. ``train`` (on the GPU host): ``python -m seqapps train TASK --data prepared/TASK-PRESET
   --backend jax`` for each, timed; the best checkpoints are then re-saved without their
   optimizer slots (a third of the size, nothing scoring or export reads), and
   ``runs/gpu/summary.json`` names the device;
3. ``score`` (where TensorFlow runs): ``python -m seqapps.training.fit score RUN --seconds S`` for
   each run (the protocol's splits, through the serving path, as ``train`` scores), then the table.

    SEQAPPS_DATA=../shared/datasets python benchmarks/gpu.py prepare
    python benchmarks/gpu.py train --budget 470          # on the GPU host
    SEQAPPS_DATA=../shared/datasets python benchmarks/gpu.py score

``--only NAME`` (repeatable) picks recipes; ``--budget`` is the seconds the train step may take
in all (a recipe that would start with under a minute left is skipped and says so).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

#: name -> (task, dataset, preset): the two recipes the engine is measured on, then their transformers
RECIPES = {
    "char_lm-shakespeare": ("char_lm", "tinyshakespeare", "shakespeare"),
    "translation-fr-en": ("translation", "anki_fra_eng", "fr-en"),
    "translation-fr-en-transformer": ("translation", "anki_fra_eng", "fr-en-transformer"),
    "char_lm-nanogpt-cpu": ("char_lm", "tinyshakespeare", "nanogpt-cpu"),
}
RUNS = Path("runs/gpu")


def _cli(*args, timeout=None) -> int:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    return subprocess.run([sys.executable, "-m", "seqapps", *map(str, args)], env=env, timeout=timeout).returncode


def prepare(names) -> None:
    for name in names:
        task, data, preset = RECIPES[name]
        code = _cli("prepare", task, "--data", data, "--preset", preset, "--out", Path("prepared") / name,
                    "--overwrite")
        if code:
            sys.exit(code)


def train(names, budget: float) -> None:
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # this process and each training's share the GPU
    import jax

    device = jax.devices()[0]
    summary = {"device": f"{device.platform}: {device.device_kind}", "jax": jax.__version__,
               "python": platform.python_version(), "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "runs": {}}
    print(f"training on {summary['device']} (jax {jax.__version__})", flush=True)
    started = time.time()
    for name in names:
        left = budget - (time.time() - started)
        if left < 60:
            print(f"{name}: skipped, {left:.0f} s of the budget left", flush=True)
            summary["runs"][name] = {"skipped": True}
            continue
        t0 = time.time()
        try:
            code = _cli("train", RECIPES[name][0], "--data", Path("prepared") / name, "--backend", "jax",
                        "--run-dir", RUNS / name, "--overwrite", timeout=left - 20)
        except subprocess.TimeoutExpired:
            code = "timeout"
        summary["runs"][name] = {"exit": code, "wall_seconds": round(time.time() - t0, 1)}
        print(f"{name}: exit {code} after {time.time() - t0:.1f} s", flush=True)
        RUNS.mkdir(parents=True, exist_ok=True)
        (RUNS / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    _slim([RUNS / n / "best.keras" for n in names if (RUNS / n / "best.keras").exists()])


def _slim(paths) -> None:
    """Re-save each checkpoint without its optimizer slots (scoring and export read only the weights)."""
    os.environ["KERAS_BACKEND"] = "jax"
    import importlib

    import keras

    from seqapps.training.prepared import model_modules

    for module in ("seqapps.training.losses", *(m for t in ("translation", "char_lm", "captioning") for m in model_modules(t))):  # what the checkpoints name
        importlib.import_module(module)
    for path in paths:
        keras.saving.load_model(path, compile=False).save(path)


def score(names) -> None:
    rows = []
    summary = json.loads((RUNS / "summary.json").read_text())
    for name in names:
        run_dir = RUNS / name
        if not (run_dir / "metrics.json").exists():
            print(f"{name}: not trained")
            continue
        seconds = json.loads((run_dir / "metrics.json").read_text()).get("train_seconds")
        if _score(run_dir, seconds):
            sys.exit(1)
        metrics = json.loads((run_dir / "metrics.json").read_text())
        rows.append((name, summary["runs"][name].get("wall_seconds"), metrics))
    print(f"\ndevice: {summary['device']} (jax {summary['jax']})")
    for name, wall, metrics in rows:
        test, val = metrics.get("test") or {}, metrics.get("val") or {}
        figure = (f"test BLEU {test['bleu']:.2f} ({test.get('decoding')})" if "bleu" in test else
                  f"val {val['nats_per_char']:.4f} nats/char ({val['bits_per_char']:.4f} bits)")
        print(f"{name}: {figure}; fit {metrics['train_seconds']} s, train command {wall} s")


def _score(run_dir, seconds) -> int:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KERAS_BACKEND": "tensorflow"}
    return subprocess.run([sys.executable, "-m", "seqapps.training.fit", "score", str(run_dir), "--seconds", str(seconds)],
                          env=env).returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=["prepare", "train", "score"])
    parser.add_argument("--only", action="append", choices=list(RECIPES))
    parser.add_argument("--budget", type=float, default=3600.0, help="seconds the train step may take in all")
    args = parser.parse_args()
    names = args.only or list(RECIPES)
    {"prepare": lambda: prepare(names), "train": lambda: train(names, args.budget),
     "score": lambda: score(names)}[args.step]()


if __name__ == "__main__":
    main()

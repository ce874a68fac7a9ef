"""Training speed of each task on each installed Keras backend, side by side.

For every task, each backend trains the task's default dataset with its preset (what
``python -m seqapps train TASK --data NAME --backend B`` gives) for two epochs of the same
number of steps; the backends alternate and the whole round repeats, and each figure is
the best of its repeats. Epoch 1 includes compiling (XLA on JAX, tracing on TensorFlow),
epoch 2 is steady: compile time is their difference. For sentiment the hand-written Keras
script (TextVectorization -> Embedding(20000, 128) -> BiLSTM(128) -> Dropout -> Dense, Adam,
batch 64, TensorFlow backend) runs in the same rounds. The float32 matmul peak of this CPU
(numpy sgemm) is measured by the same script, for scale.

    SEQAPPS_DATA=../shared/datasets python benchmarks/engine.py [--tasks sentiment,pos] [--repeats 2]
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
#: task -> (dataset, steps per epoch, what one example is, examples per step from the resolved config)
PLAN = {
    "sentiment": ("sst2", 150, "sentences", lambda cfg: cfg.train.batch_size),
    "pos": ("ud_english_ewt", 25, "sentences", lambda cfg: cfg.train.batch_size),
    "char_lm": ("tinyshakespeare", 100, "characters", lambda cfg: cfg.train.batch_size * cfg.train.bptt),
    "translation": ("anki_fra_eng", 60, "sentence pairs", lambda cfg: cfg.train.batch_size),
    "forecasting": ("pollution", 100, "windows", lambda cfg: cfg.train.batch_size),
}


def train_once(task: str, backend: str, steps: int, out: Path) -> dict:
    """Two epochs of ``steps`` on ``backend`` in a fresh process; epoch times from history.csv."""
    run_dir = out / f"{task}-{backend}"
    cmd = [sys.executable, "-m", "seqapps", "train", task, "--data", PLAN[task][0], "--backend", backend,
           "--epochs", "2", "--set", f"train.steps_per_epoch={steps}", "--set", "train.patience=0",
           "--set", "train.backup_every=0", "--run-dir", run_dir, "--overwrite", "--no-eval"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    proc = subprocess.run(list(map(str, cmd)), cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"}
    rows = list(csv.DictReader(open(run_dir / "history.csv")))
    first, second = (float(r["epoch_seconds"]) for r in rows[:2])
    return {"first": first, "steady": second, "wall": time.perf_counter() - started}


def plain_keras_once(steps: int) -> dict:
    """The hand-written SST-2 script, as a user without seqapps writes it, in a fresh TF process."""
    code = f"""
import json, time, os
os.environ["KERAS_BACKEND"] = "tensorflow"
import numpy as np, keras, tensorflow as tf
from seqapps.data.readers import read_table
frame = read_table(os.path.join(os.environ["SEQAPPS_DATA"], "sst2", "train.tsv"))
texts, labels = frame["sentence"].astype(str).tolist(), frame["label"].astype(int).to_numpy()
keras.utils.set_random_seed(1)
vectorize = keras.layers.TextVectorization(max_tokens=20000)
vectorize.adapt(tf.data.Dataset.from_tensor_slices(texts).batch(1024))
ds = (tf.data.Dataset.from_tensor_slices((texts, labels)).shuffle(len(texts), seed=1).batch(64)
      .map(lambda x, y: (vectorize(x), y)).prefetch(tf.data.AUTOTUNE).repeat())
model = keras.Sequential([keras.Input((None,), dtype="int64"), keras.layers.Embedding(20000, 128),
                          keras.layers.Bidirectional(keras.layers.LSTM(128)), keras.layers.Dropout(0.5),
                          keras.layers.Dense(1, activation="sigmoid")])
model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
times = []
for _ in range(2):
    t = time.perf_counter(); model.fit(ds, epochs=1, steps_per_epoch={steps}, verbose=0)
    times.append(time.perf_counter() - t)
print(json.dumps({{"first": times[0], "steady": times[1]}}))
"""
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True)
    if proc.returncode:
        return {"error": proc.stderr.strip().splitlines()[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def sgemm_gflops(n: int = 2048, repeats: int = 5) -> float:
    import numpy as np

    a, b = (np.random.default_rng(0).standard_normal((n, n), dtype=np.float32) for _ in range(2))
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * n ** 3 / best / 1e9


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def installed_backends() -> list[str]:
    return [b for b, m in (("tensorflow", "tensorflow"), ("jax", "jax"), ("torch", "torch"))
            if importlib.util.find_spec(m) is not None]


def measure(tasks, backends, repeats, out) -> dict:
    from seqapps import registry
    from seqapps.training import resolve_config

    results = {}
    for task in tasks:
        dataset, steps, unit, per_step = PLAN[task]
        examples = per_step(resolve_config(registry.get(task), dataset)) * steps
        runs = {b: [] for b in backends + (["plain keras"] if task == "sentiment" else [])}
        for r in range(repeats):
            for name in runs:
                got = plain_keras_once(steps) if name == "plain keras" else train_once(task, name, steps, out)
                print(f"{task} {name} round {r + 1}: {json.dumps(got)}", flush=True)
                runs[name].append(got)
        results[task] = {"dataset": dataset, "steps": steps, "unit": unit, "examples": examples,
                         "by": {name: _best(rows, examples) for name, rows in runs.items()}}
    return results


def _best(rows, examples) -> dict:
    good = [r for r in rows if "error" not in r]
    if not good:
        return {"error": rows[-1]["error"]}
    steady = min(r["steady"] for r in good)
    compile_s = min(r["first"] - r["steady"] for r in good)
    return {"steady_s": round(steady, 2), "per_second": round(examples / steady, 1), "compile_s": round(compile_s, 1)}


def table(results, peak) -> str:
    lines = [f"float32 matmul peak (numpy sgemm 2048): {peak:.1f} GFLOP/s", "",
             "| task (dataset, preset) | backend | examples/s (steady epoch) | steady epoch s | compile s | "
             "ratio to tensorflow |", "|---|---|---|---|---|---|"]
    for task, r in results.items():
        base = r["by"].get("tensorflow", {}).get("per_second")
        for name, b in r["by"].items():
            if "error" in b:
                lines.append(f"| {task} ({r['dataset']}) | {name} | failed: {b['error']} | | | |")
                continue
            ratio = f"{b['per_second'] / base:.3f}" if base else "-"
            lines.append(f"| {task} ({r['dataset']}, {r['steps']} steps) | {name} | {b['per_second']:.1f} "
                         f"{r['unit']} | {b['steady_s']:.2f} | {b['compile_s']:.1f} | {ratio} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", default="sentiment,pos,char_lm,translation", help=f"some of {', '.join(PLAN)}")
    p.add_argument("--backends", default=",".join(installed_backends()))
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--out", help="folder for the runs and results.json (default: a temporary folder)")
    args = p.parse_args(argv)
    tasks = [t for t in args.tasks.split(",") if t]
    unknown = [t for t in tasks if t not in PLAN]
    if unknown:
        p.error(f"unknown task(s) {', '.join(unknown)}; expected some of {', '.join(PLAN)}")
    out = Path(args.out or tempfile.mkdtemp(prefix="seqapps-engine-"))
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    peak = sgemm_gflops()
    results = measure(tasks, [b for b in args.backends.split(",") if b], args.repeats, out)
    (out / "results.json").write_text(json.dumps({"sgemm_gflops": peak, "tasks": results}, indent=2) + "\n")
    print(table(results, peak))
    print(f"\nwall time {time.time() - started:.0f} s; runs and results.json in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

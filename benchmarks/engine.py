"""Training speed of each task on each installed Keras backend, side by side.

For every task, each backend trains the task's default dataset with its preset (what
``python -m seqapps train TASK --data NAME --backend B`` gives) for ``--epochs`` epochs (3) of the
same number of steps (sentiment: whole epochs); the backends alternate and the whole round
repeats, and each figure is the best of its repeats. Epoch 1 includes compiling (XLA on JAX,
tracing on TensorFlow); the steady epoch is the fastest of the later ones (some hosts run the same
epoch at two speeds, so one later epoch is not enough): compile time is epoch 1 minus it (JAX's
cache of compiled programs is off, so every run compiles as a first run does). For sentiment
the hand-written Keras script (TextVectorization -> Embedding(20000, 128) -> BiLSTM(128) ->
Dropout -> Dense, Adam, batch 64, TensorFlow backend) and the previous engine (the preset's
earlier settings on the TensorFlow backend: a full-width n-gram table, batch 64) and JAX with the
odd-sized last batch of every length bucket (``train.full_batches=false``) run in the same rounds.
The float32 matmul peak of this CPU (numpy sgemm) is measured by the same script; where a task's
matmul FLOPs per example are counted (sentiment, char_lm: 3 x the forward pass's multiply-adds x 2,
on the unpadded lengths), its share of that peak is reported.

    SEQAPPS_DATA=../shared/datasets python benchmarks/engine.py [--tasks sentiment,pos] [--repeats 2] [--epochs 3]
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
#: task -> (dataset, steps per epoch (0: whole epochs), what one example is, examples per step from the
#: resolved config)
PLAN = {
    "sentiment": ("sst2", 0, "sentences", lambda cfg: cfg.train.batch_size),
    "pos": ("ud_english_ewt", 25, "sentences", lambda cfg: cfg.train.batch_size),
    "char_lm": ("tinyshakespeare", 100, "characters", lambda cfg: cfg.train.batch_size * cfg.train.bptt),
    "translation": ("anki_fra_eng", 60, "sentence pairs", lambda cfg: cfg.train.batch_size),
    "forecasting": ("pollution", 100, "windows", lambda cfg: cfg.train.batch_size),
}


#: rows beside the backends: name -> (task, backend, extra overrides); "jax, odd-sized batches" is JAX
#: before train.full_batches (each bucket's partial last batch: twice the shapes to compile)
PREVIOUS = {"previous engine": ("sentiment", "tensorflow", ["model.subword_dim=0", "train.batch_size=64",
                                                           "train.learning_rate=0.001", "train.ema=0"]),
            "jax, odd-sized batches": ("sentiment", "jax", ["train.full_batches=false"])}


def train_once(task: str, backend: str, steps: int, out: Path, epochs: int, extra=()) -> dict:
    """``epochs`` epochs of ``steps`` on ``backend`` in a fresh process; epoch times from history.csv."""
    run_dir = out / f"{task}-{backend}"
    cmd = [sys.executable, "-m", "seqapps", "train", task, "--data", PLAN[task][0], "--backend", backend,
           "--epochs", str(epochs), "--set", f"train.steps_per_epoch={steps}", "--set", "train.patience=0",
           "--set", "train.backup_every=0", "--run-dir", run_dir, "--overwrite", "--no-eval"]
    for override in extra:
        cmd += ["--set", override]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SEQAPPS_JAX_CACHE": "none"}  # every run compiles afresh
    started = time.perf_counter()
    proc = subprocess.run(list(map(str, cmd)), cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"}
    rows = list(csv.DictReader(open(run_dir / "history.csv")))
    times = [float(r["epoch_seconds"]) for r in rows[:epochs]]
    return {"first": times[0], "steady": min(times[1:]), "later": times[1:], "wall": time.perf_counter() - started}


def plain_keras_once(steps: int | None, epochs: int) -> dict:
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
for _ in range({epochs}):
    t = time.perf_counter(); model.fit(ds, epochs=1, steps_per_epoch={steps} or -(-len(texts) // 64), verbose=0)
    times.append(time.perf_counter() - t)
print(json.dumps({{"first": times[0], "steady": min(times[1:]), "later": times[1:]}}))
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


def measure(tasks, backends, repeats, out, epochs: int) -> dict:
    from seqapps.core import registry
    from seqapps.training.fit import resolve_config

    results = {}
    for task in tasks:
        dataset, steps, unit, per_step = PLAN[task]
        cfg = resolve_config(registry.get(task), dataset)
        counted = matmul_flops(task, cfg)
        examples = per_step(cfg) * steps
        if not steps or counted:
            from seqapps.core.task import whole

            splits = registry.get(task).load_data(cfg)
            splits.train = whole(splits.train)
            if not steps:
                examples = len(splits.train[0])
        extra = {name: spec for name, spec in PREVIOUS.items() if spec[0] == task}
        runs = {b: [] for b in backends + (["plain keras"] if task == "sentiment" else []) + list(extra)}
        for r in range(repeats):
            for name in runs:
                if name == "plain keras":
                    got = plain_keras_once(steps, epochs)
                elif name in extra:
                    got = train_once(task, extra[name][1], steps, out, epochs, extra[name][2])
                else:
                    got = train_once(task, name, steps, out, epochs)
                print(f"{task} {name} round {r + 1}: {json.dumps(got)}", flush=True)
                runs[name].append(got)
        per_example = counted(splits) if counted else None
        results[task] = {"dataset": dataset, "steps": steps, "unit": unit, "examples": examples,
                         "flops_per_example": per_example,
                         "by": {name: _best(rows, examples) for name, rows in runs.items()}}
    return results


def matmul_flops(task, cfg):
    """``splits -> training FLOPs per example`` for the tasks whose matmuls are counted, else None:
    3 x (2 x multiply-adds of the forward pass) per token, on the unpadded lengths."""
    m = cfg.model
    if task == "sentiment" and m.architecture == "rnn" and m.cell == "lstm":
        directions = 2 if m.bidirectional else 1
        per_token = directions * (m.embedding_dim + m.units) * 4 * m.units
        per_token += directions * (m.layers - 1) * (directions * m.units + m.units) * 4 * m.units
        per_token += m.subword_dim * m.embedding_dim if m.subwords and m.subword_dim else 0

        def per_example(splits):
            from seqapps.data import text as textlib
            import numpy as np

            words = textlib.words(np.asarray(splits.train[0], dtype=object)).row_lengths().numpy()
            return 6 * per_token * float(np.minimum(words, cfg.data.max_length or 10 ** 9).mean())
        return per_example
    if task == "char_lm" and m.architecture == "rnn" and m.cell == "gru":
        per_char = 3 * (m.embedding_dim + m.units) * m.units + m.units * 66  # GRU gates + the softmax over ~66 symbols
        return lambda splits: 6 * per_char
    return None


def _best(rows, examples) -> dict:
    good = [r for r in rows if "error" not in r]
    if not good:
        return {"error": rows[-1]["error"]}
    steady = min(r["steady"] for r in good)
    compile_s = min(r["first"] - r["steady"] for r in good)
    return {"steady_s": round(steady, 2), "per_second": round(examples / steady, 1), "compile_s": round(compile_s, 1),
            "repeats": [round(r["steady"], 2) for r in good]}


def table(results, peak) -> str:
    lines = [f"float32 matmul peak (numpy sgemm 2048): {peak:.1f} GFLOP/s", "",
             "| task (dataset, preset) | run | examples/s (steady epoch) | steady epoch s | compile s | "
             "share of matmul peak | ratio to tensorflow | ratio to hand-written | ratio to previous |",
             "|---|---|---|---|---|---|---|---|---|"]
    for task, r in results.items():
        base = {k: r["by"].get(k, {}).get("per_second") for k in ("tensorflow", "plain keras", "previous engine")}
        steps = f"{r['steps']} steps" if r["steps"] else "whole epochs"
        for name, b in r["by"].items():
            if "error" in b:
                lines.append(f"| {task} ({r['dataset']}) | {name} | failed: {b['error']} | | | | | | |")
                continue
            ratios = [f"{b['per_second'] / base[k]:.3f}" if base[k] else "-" for k in base]
            share = "-"
            if r.get("flops_per_example") and name != "plain keras" and name != "previous engine":
                share = f"{b['per_second'] * r['flops_per_example'] / (peak * 1e9):.1%}"
            lines.append(f"| {task} ({r['dataset']}, {steps}) | {name} | {b['per_second']:.1f} "
                         f"{r['unit']} | {b['steady_s']:.2f} | {b['compile_s']:.1f} | {share} | {' | '.join(ratios)} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", default="sentiment,pos,char_lm,translation", help=f"some of {', '.join(PLAN)}")
    p.add_argument("--backends", default=",".join(installed_backends()))
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--epochs", type=int, default=3, help="epochs per run (>= 2): the first compiles, the fastest "
                   "later one is the steady epoch")
    p.add_argument("--out", help="folder for the runs and results.json (default: a temporary folder)")
    args = p.parse_args(argv)
    tasks = [t for t in args.tasks.split(",") if t]
    unknown = [t for t in tasks if t not in PLAN]
    if unknown:
        p.error(f"unknown task(s) {', '.join(unknown)}; expected some of {', '.join(PLAN)}")
    if args.epochs < 2:
        p.error("--epochs must be at least 2: the first compiles, a later one is the steady epoch")
    out = Path(args.out or tempfile.mkdtemp(prefix="seqapps-engine-"))
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    peak = sgemm_gflops()
    results = measure(tasks, [b for b in args.backends.split(",") if b], args.repeats, out, args.epochs)
    (out / "results.json").write_text(json.dumps({"sgemm_gflops": peak, "tasks": results}, indent=2) + "\n")
    print(table(results, peak))
    print(f"\nwall time {time.time() - started:.0f} s; runs and results.json in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

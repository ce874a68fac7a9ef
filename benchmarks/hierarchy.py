"""The ladder, measured: bag of words < SimpleRNN < LSTM/GRU < transformer, on the same data.

For each text task, every rung trains by name on the task's protocol dataset and preset, or a
rung's own preset where its model needs another optimizer (the translation transformer's
``fr-en-transformer``: warm-up and label smoothing)
(``python -m seqapps train TASK --data DATASET --preset NAME --set ...``), with only the
encoder changed by documented settings (``model.architecture``, ``model.cell``,
``model.attention``, ``model.units``), and is scored through the serving path:

- sentiment, SST-2 test accuracy: bag (one-to-one) · SimpleRNN · LSTM · GRU · transformer
- pos, UD EWT UPOS and OOV accuracy: SimpleRNN · LSTM · GRU · transformer (all over the
  same character-aware word representation)
- translation, fr->en test BLEU and BLEU by source-length bucket: no-attention GRU ·
  additive-attention GRU · transformer
- char_lm, Tiny Shakespeare validation nats/char: SimpleRNN · LSTM · GRU · transformer

Equal parameter count: the rung marked as the reference is the preset's model; every other
rung's ``model.units`` is chosen (from a grid, the model built but not trained) so that its
trainable parameters are within 10% of the reference's, and the table says which are.
Equal fit time: every rung gets the same ``train.time_limit`` (``--budget``), on top of the
preset's epochs; a rung that finishes sooner reports its own time. Seeds: ``--seeds`` for
sentiment and pos (mean and standard deviation over them), the first seed only for
translation and char_lm.

    SEQAPPS_DATA=../shared/datasets python benchmarks/hierarchy.py --tasks char_lm --budget char_lm=300
    SEQAPPS_DATA=../shared/datasets python benchmarks/hierarchy.py   # everything: several hours on 2 cores

Writes benchmarks/out/hierarchy/results.json (each finished rung at once, so ``--reuse``
continues an interrupted run) and prints one Markdown table per task.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@dataclass
class Rung:
    name: str
    overrides: tuple = ()
    match: bool = True          # search model.units for the reference's parameter count
    reference: bool = False     # the preset's own model: the parameter count the others match
    step: int = 8               # model.units grid step (the heads must divide a transformer's width)
    preset: str = ""             # the rung's own recipe by name (default: the ladder's preset)


@dataclass
class Ladder:
    data: str
    preset: str
    rungs: list = field(default_factory=list)
    budget: float = 600.0       # seconds of fitting per rung (train.time_limit)
    seeds: bool = True          # several seeds (else the first only)


TRANSFORMER = ("model.architecture=transformer", "model.heads=4", "model.layers=2", "model.dropout=0.1")
LADDERS = {
    "sentiment": Ladder("sst2", "sst2", [
        Rung("bag", ("model.architecture=bag", "model.layers=2")),
        Rung("SimpleRNN", ("model.cell=rnn",)),
        Rung("LSTM", ("model.cell=lstm",), match=False, reference=True),
        Rung("GRU", ("model.cell=gru",)),
        Rung("transformer", TRANSFORMER, step=4)], budget=600),
    "pos": Ladder("ud_english_ewt", "ewt", [
        Rung("SimpleRNN", ("model.cell=rnn",)),
        Rung("LSTM", ("model.cell=lstm",), match=False, reference=True),
        Rung("GRU", ("model.cell=gru",)),
        Rung("transformer", TRANSFORMER, step=4)], budget=300),
    "translation": Ladder("anki_fra_eng", "fr-en", [
        Rung("GRU, no attention", ("model.attention=none",)),
        Rung("GRU, additive attention", (), match=False, reference=True),
        Rung("transformer", (), preset="fr-en-transformer", step=4)], budget=900, seeds=False),
    "char_lm": Ladder("tinyshakespeare", "shakespeare", [
        Rung("SimpleRNN", ("model.cell=rnn",)),
        Rung("LSTM", ("model.cell=lstm",)),
        Rung("GRU", ("model.cell=gru",), match=False, reference=True),
        Rung("transformer", ("model.architecture=transformer", "model.heads=4", "model.layers=4",
                             "model.dropout=0.0"), step=4)], budget=300, seeds=False),
}


# -- equal parameter counts ---------------------------------------------------------------------------
def parameters(task_name, data, preset, overrides, cache) -> int:
    """Trainable parameters of the model ``train`` would build (not trained)."""
    import keras

    from seqapps.core import registry
    from seqapps.training.fit import resolve_config

    task = registry.get(task_name)
    cfg = resolve_config(task, data, preset=preset, overrides=list(overrides))
    task.validate(cfg)
    key = (task_name, data, preset)
    if key not in cache:  # the preprocessing does not depend on the encoder
        cache[key] = task.fit_preprocessing(cfg, task.load_data(cfg))
    model = task.build_model(cfg, cache[key])
    count = int(sum(keras.ops.size(w) for w in model.trainable_weights))
    keras.backend.clear_session()
    return count


def matched_units(task_name, ladder, rung, target, cache) -> tuple[int | None, int]:
    """The ``model.units`` on the rung's grid whose parameter count is closest to ``target``."""
    best = None
    for units in range(rung.step, 1025, rung.step):
        n = parameters(task_name, ladder.data, rung.preset or ladder.preset, [*rung.overrides, f"model.units={units}"],
                       cache)
        if best is None or abs(n - target) < abs(best[1] - target):
            best = (units, n)
        if n > target * 1.1:
            break
    return best


# -- one rung ------------------------------------------------------------------------------------------
def headline(task_name, metrics) -> dict:
    test, val = metrics.get("test") or {}, metrics.get("val") or {}
    if task_name == "sentiment":
        return {"test accuracy": test["accuracy"]}
    if task_name == "pos":
        return {"UPOS": test["accuracy"], "OOV": test.get("oov_accuracy")}
    if task_name == "translation":
        buckets = {k: v["bleu"] for k, v in test.get("by_source_length", {}).items()}
        return {"BLEU": test["bleu"], **{f"BLEU {k}": v for k, v in buckets.items()}}
    return {"nats/char": val["nats_per_char"]}


def train_rung(task_name, ladder, rung, units, seed, budget, out) -> dict:
    import pandas as pd

    import seqapps

    overrides = [*rung.overrides, *([f"model.units={units}"] if units else []), f"train.seed={seed}",
                 f"train.time_limit={budget}"]
    run_dir = out / task_name / f"{rung.name.replace(' ', '').replace(',', '-')}-seed{seed}"
    started = time.time()
    run = seqapps.train(task_name, ladder.data, preset=rung.preset or ladder.preset, overrides=overrides,
                        run_dir=run_dir, overwrite=True, verbose=2)
    history = pd.read_csv(run.history_path)
    return {"task": task_name, "rung": rung.name, "seed": seed, "overrides": overrides,
            "fit_seconds": run.metrics["train_seconds"], "wall_seconds": round(time.time() - started, 1),
            "epochs": int(len(history)), **headline(task_name, run.metrics)}


# -- the report ------------------------------------------------------------------------------------------
def table(task_name, rows, params, budget) -> str:
    by_rung = {}
    for r in rows:
        by_rung.setdefault(r["rung"], []).append(r)
    metrics = [k for k in rows[0] if k not in ("task", "rung", "seed", "overrides", "fit_seconds", "wall_seconds",
                                               "epochs")]
    lines = [f"### {task_name} (fit budget {budget:.0f} s per rung)", "",
             "| rung | parameters | within 10% | seeds | " + " | ".join(metrics) + " | fit s | epochs |",
             "|---" * (6 + len(metrics)) + "|"]
    for name, runs in by_rung.items():
        p = params[name]
        cells = []
        for m in metrics:
            values = [r[m] for r in runs if r.get(m) is not None]
            if not values:
                cells.append("-")
            elif len(values) > 1:
                cells.append(f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}")
            else:
                cells.append(f"{values[0]:.4f}")
        fit = statistics.mean(r["fit_seconds"] for r in runs)
        lines.append(f"| {name} | {p['parameters']:,} | {'yes' if p['within'] else 'no'} | {len(runs)} | "
                     + " | ".join(cells) + f" | {fit:.0f} | {statistics.mean(r['epochs'] for r in runs):.1f} |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", default=",".join(LADDERS))
    p.add_argument("--seeds", default="1,2,3", help="seeds for sentiment and pos (translation, char_lm: the first)")
    p.add_argument("--budget", action="append", default=[], metavar="TASK=SECONDS",
                   help="fit seconds per rung, e.g. char_lm=300 (defaults: " +
                        ", ".join(f"{k} {v.budget:.0f}" for k, v in LADDERS.items()) + ")")
    p.add_argument("--only", default="", help="comma list of rung names to run (default: all)")
    p.add_argument("--reuse", action="store_true", help="keep the rungs already in results.json")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "out" / "hierarchy"))
    args = p.parse_args(argv)
    budgets = {k: v.budget for k, v in LADDERS.items()}
    for item in args.budget:
        task_name, _, seconds = item.partition("=")
        if task_name not in LADDERS or not seconds:
            p.error(f"--budget expects TASK=SECONDS with TASK in {', '.join(LADDERS)}, got {item!r}")
        budgets[task_name] = float(seconds)
    tasks = [t for t in args.tasks.split(",") if t]
    unknown = sorted(set(tasks) - set(LADDERS))
    if unknown:
        p.error(f"--tasks: no ladder for {', '.join(unknown)}; ladders: {', '.join(LADDERS)}")
    seeds = [int(s) for s in args.seeds.split(",") if s]
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.json"
    results = json.loads(results_path.read_text()) if args.reuse and results_path.is_file() else {"rows": []}
    results.update(commit=_git("rev-parse", "--short", "HEAD"), date=time.strftime("%Y-%m-%d", time.gmtime()),
                   machine=f"{os.cpu_count()} CPU cores {platform.machine()}", budgets=budgets)
    cache, started = {}, time.time()
    for task_name in tasks:
        ladder = LADDERS[task_name]
        reference = next(r for r in ladder.rungs if r.reference)
        target = parameters(task_name, ladder.data, ladder.preset, reference.overrides, cache)
        params = results.setdefault("parameters", {}).setdefault(task_name, {})
        for rung in ladder.rungs:
            units, n = matched_units(task_name, ladder, rung, target, cache) if rung.match else (None, target)
            params[rung.name] = {"units": units, "parameters": n, "within": abs(n - target) <= 0.1 * target}
            print(f"{task_name} {rung.name}: units {units or 'as the preset'}, {n:,} parameters "
                  f"(reference {target:,})", flush=True)
        for rung in ladder.rungs:
            if only and rung.name not in only:
                continue
            for seed in seeds if ladder.seeds else seeds[:1]:
                done = any(r["task"] == task_name and r["rung"] == rung.name and r["seed"] == seed
                           for r in results["rows"])
                if done:
                    continue
                row = train_rung(task_name, ladder, rung, params[rung.name]["units"], seed, budgets[task_name], out)
                results["rows"].append(row)
                print(json.dumps(row), flush=True)
                results_path.write_text(json.dumps(results, indent=2) + "\n")
    results["total_seconds"] = round(time.time() - started, 1)
    results_path.write_text(json.dumps(results, indent=2) + "\n")
    for task_name in tasks:
        rows = [r for r in results["rows"] if r["task"] == task_name]
        if rows:
            print("\n" + table(task_name, rows, results["parameters"][task_name], budgets[task_name]))


def _git(*args) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()


if __name__ == "__main__":
    main()

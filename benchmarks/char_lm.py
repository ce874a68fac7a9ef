"""char_lm on Tiny Shakespeare: validation nats and bits per character.

Protocol (../shared/datasets/README.md): the first 90% of the characters train, the
last 10% validate; the figure is the validation loss in nats per character (and bits
per character), scored through the serving path (the exported ``score`` signature
reading the validation text as ``data.eval_streams`` contiguous streams).

Every run trains with the char_lm preset ``shakespeare`` (GRU 256, batch 32, 100-character
windows, 10 epochs, cosine decay), so the GRU stateful row is what
``python -m seqapps train char_lm --data tinyshakespeare`` gives; beside it, at the same
budget (epochs x batches x characters), the comparison variants:
- every other cell asked for (LSTM, SimpleRNN) trained with stateful truncated BPTT;
- the first cell again with random windows read from a zero state (non-stateful).
Then three 300-character samples from the first cell's export at temperatures
0.5, 0.8 and 1.2.

    SEQAPPS_DATA=../shared/datasets python benchmarks/char_lm.py --cells gru --no-nonstateful   # the preset alone
    SEQAPPS_DATA=../shared/datasets python benchmarks/char_lm.py --epochs 5   # every cell, a shorter budget
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

DATA, PRESET = "tinyshakespeare", "shakespeare"  # every run is this preset, or it with one variant


def plan_runs(cells, nonstateful: bool) -> list[tuple[str, list[str]]]:
    """``(name, overrides over the preset)`` per run: each cell stateful, then the first cell with random windows."""
    plan = [(f"{cell}-stateful", [f"model.cell={cell}"]) for cell in cells]
    if nonstateful:
        plan.insert(1, (f"{cells[0]}-random-windows", [f"model.cell={cells[0]}", "train.stateful=false"]))
    return plan


def train_or_rescore(name, variant, args, out) -> dict:
    import pandas as pd

    import seqapps

    print(f"== {name}", flush=True)
    t0 = time.time()
    if args.rescore:
        run, val = _rescore(out / name)
        wall = None
    else:
        run = seqapps.train("char_lm", DATA, epochs=args.epochs, overrides=[*variant, *args.overrides],
                            run_dir=out / name, overwrite=True, verbose=2)
        wall = time.time() - t0
        val = run.metrics["val"]
    history = pd.read_csv(run.history_path)
    cfg = run.config
    row = {"run": name, "cell": cfg.model.cell, "stateful": cfg.train.stateful, "epochs": int(len(history)),
           "best_epoch": int(history["val_loss"].idxmin()) + 1, "fit_val_loss": float(history["val_loss"].min()),
           "nats_per_char": val["nats_per_char"], "bits_per_char": val["bits_per_char"],
           "val_chars": val["chars"], "train_seconds": run.metrics["train_seconds"],
           "wall_seconds": None if wall is None else round(wall, 1),
           "scored_after_training": run.metrics["val"]["nats_per_char"], "rescored": args.rescore}
    print(json.dumps(row), flush=True)
    return row


def samples(run_dir, export_dir, prime, seed) -> list[dict]:
    import seqapps
    from seqapps.export import export

    export(run_dir, export_dir)
    predictor = seqapps.load(export_dir)
    out = []
    for temperature in (0.5, 0.8, 1.2):
        t0 = time.time()
        text = predictor.generate(prime, length=300, temperature=temperature, seed=seed)
        out.append({"temperature": temperature, "prime": prime, "seed": seed, "text": text,
                    "seconds": round(time.time() - t0, 2)})
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cells", default="gru,lstm,rnn", help="cells to compare; the preset's is gru")
    p.add_argument("--epochs", type=int, help="a shorter budget than the preset's 10 epochs, for every run "
                   "(not the headline figure)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="a variant over the preset for every run (repeatable), e.g. train.decay=none")
    p.add_argument("--no-nonstateful", action="store_true", help="skip the non-stateful comparison run")
    p.add_argument("--prime", default="ROMEO:")
    p.add_argument("--seed", type=int, default=1, help="the samples' seed")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "out" / "char_lm"))
    p.add_argument("--rescore", action="store_true",
                   help="do not train: score and sample the finished runs already in --out with the current serving "
                        "code (their vocabulary file is re-fitted from the same training text first)")
    args = p.parse_args(argv)

    commit = _git("rev-parse", "--short", "HEAD") + (" (uncommitted changes)" if _git(
        "status", "--porcelain", "tasks/char_lm.py", "seqapps/models/char_lm.py", "seqapps/serving/lm.py") else "")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cells = [c.strip() for c in args.cells.split(",") if c.strip()]
    started = time.time()
    rows = [train_or_rescore(name, variant, args, out) for name, variant in plan_runs(cells, not args.no_nonstateful)]
    result = {"args": vars(args), "preset": PRESET, "runs": rows,
              "samples": samples(out / f"{cells[0]}-stateful", out / "export", args.prime, args.seed),
              "total_seconds": round(time.time() - started, 1), "commit": commit,
              "machine": f"{os.cpu_count()} CPU cores {platform.machine()}",
              "date": time.strftime("%Y-%m-%d", time.gmtime())}
    (out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    print(report(result))


def _rescore(run_dir):
    """Score a finished run's validation text again through the current serving code."""
    from seqapps.serving.trained import TrainedRun as Run

    run = Run.open(run_dir)
    task, cfg = run.task, run.config
    splits = task.load_data(cfg)
    prep = task.fit_preprocessing(cfg, splits)
    if prep.chars != task.load_preprocessing(cfg, run.dir).chars:
        raise SystemExit(f"{run_dir}: the training text's characters changed; retrain instead of --rescore")
    prep.save(run.dir)
    return run, task.evaluate(run.predictor(), splits.val, cfg)


def report(result) -> str:
    lines = ["| run | epochs (best) | val nats/char | val bits/char | nats/char scored by train | train s | wall s |",
             "|---|---|---|---|---|---|---|"]
    for r in result["runs"]:
        wall = "-" if r["wall_seconds"] is None else f"{r['wall_seconds']:.0f}"
        lines.append(f"| {r['run']} | {r['epochs']} ({r['best_epoch']}) | {r['nats_per_char']:.4f} | "
                     f"{r['bits_per_char']:.4f} | {r['scored_after_training']:.4f} | {r['train_seconds']:.0f} | {wall} |")
    for s in result["samples"]:
        lines += ["", f"temperature {s['temperature']} (prime {s['prime']!r}, seed {s['seed']}):", "", "```",
                  s["prime"] + s["text"], "```"]
    lines.append(f"\ntotal {result['total_seconds']:.0f} s, commit {result['commit']}, {result['machine']}")
    return "\n".join(lines)


def _git(*args) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    except OSError:
        return "unknown"


if __name__ == "__main__":
    main()

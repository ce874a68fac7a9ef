"""char_lm on Tiny Shakespeare: validation nats and bits per character.

Protocol (../shared/datasets/README.md): the first 90% of the characters train, the
last 10% validate; the figure is the validation loss in nats per character (and bits
per character), scored through the serving path (the exported ``score`` signature
reading the validation text as ``data.eval_streams`` contiguous streams).

Side by side, at the same budget (epochs x batches x characters):
- every cell asked for (LSTM, GRU, SimpleRNN) trained with stateful truncated BPTT;
- the first cell again with random windows read from a zero state (non-stateful).
Then three 300-character samples from the first cell's export at temperatures
0.5, 0.8 and 1.2.

    SEQAPPS_DATA=../shared/datasets python benchmarks/char_lm.py --epochs 4
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


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="tinyshakespeare")
    p.add_argument("--cells", default="lstm,gru,rnn")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--units", type=int, default=256)
    p.add_argument("--layers", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--bptt", type=int, default=100)
    p.add_argument("--learning-rate", type=float, default=2e-3)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="extra config override for every run (repeatable), e.g. train.decay=cosine")
    p.add_argument("--no-nonstateful", action="store_true", help="skip the non-stateful comparison run")
    p.add_argument("--prime", default="ROMEO:")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "out" / "char_lm"))
    p.add_argument("--rescore", action="store_true",
                   help="do not train: score and sample the finished runs already in --out with the current serving "
                        "code (their vocabulary file is re-fitted from the same training text first)")
    args = p.parse_args(argv)

    import seqapps

    commit = _git("rev-parse", "--short", "HEAD") + (" (uncommitted changes)" if _git("status", "--porcelain",
                                                                                   "tasks/char_lm.py") else "")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cells = [c.strip() for c in args.cells.split(",") if c.strip()]
    plan = [(cell, True) for cell in cells]
    if not args.no_nonstateful:
        plan.insert(1, (cells[0], False))
    common = [f"model.units={args.units}", f"model.layers={args.layers}", f"train.bptt={args.bptt}",
              f"train.learning_rate={args.learning_rate}", "train.patience=0", "train.seed=1",
              *args.overrides]
    started, rows = time.time(), []
    for cell, stateful in plan:
        name = f"{cell}-{'stateful' if stateful else 'random-windows'}"
        print(f"== {name}", flush=True)
        t0 = time.time()
        if args.rescore:
            run, val = _rescore(out / name)
            wall = None
        else:
            run = seqapps.train("char_lm", args.data, epochs=args.epochs, batch_size=args.batch_size,
                                overrides=[*common, f"model.cell={cell}", f"train.stateful={str(stateful).lower()}"],
                                run_dir=out / name, overwrite=True, verbose=2)
            wall = time.time() - t0
            val = run.metrics["val"]
        import pandas as pd

        history = pd.read_csv(run.history_path)
        rows.append({"run": name, "cell": cell, "stateful": stateful, "epochs": int(len(history)),
                     "best_epoch": int(history["val_loss"].idxmin()) + 1,
                     "fit_val_loss": float(history["val_loss"].min()),
                     "nats_per_char": val["nats_per_char"], "bits_per_char": val["bits_per_char"],
                     "val_chars": val["chars"], "train_seconds": run.metrics["train_seconds"],
                     "wall_seconds": None if wall is None else round(wall, 1),
                     "scored_after_training": run.metrics["val"]["nats_per_char"], "rescored": args.rescore})
        print(json.dumps(rows[-1]), flush=True)

    first = out / f"{cells[0]}-stateful"
    export_dir = out / "export"
    from seqapps.export import export

    export(first, export_dir)
    predictor = seqapps.load(export_dir)
    samples = []
    for temperature in (0.5, 0.8, 1.2):
        t0 = time.time()
        text = predictor.generate(args.prime, length=300, temperature=temperature, seed=args.seed)
        samples.append({"temperature": temperature, "prime": args.prime, "seed": args.seed, "text": text,
                        "seconds": round(time.time() - t0, 2)})

    result = {"args": vars(args), "runs": rows, "samples": samples, "total_seconds": round(time.time() - started, 1),
              "commit": commit, "machine": f"{os.cpu_count()} CPU cores "
              f"{platform.machine()}", "date": time.strftime("%Y-%m-%d", time.gmtime())}
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

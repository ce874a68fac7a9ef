"""forecasting on the three protocol series: MAE, RMSE and MASE beside the naive and
seasonal-naive baselines.

Protocol (../shared/datasets/README.md), one-step-ahead forecasts from the actual past:
- airline-passengers.csv: the last 24 months are the test part (the 12 before validate);
- daily-min-temperatures.csv: the last 365 days are the test part (the 365 before validate);
- pollution.csv: the next hour's pm2.5 from the previous 24 hours of every variable
  (pm2.5, DEWP, TEMP, PRES, cbwd one-hot, Iws, Is, Ir), the last 20% of hours are the
  test part (the 10% before validate).
Baselines, scored on exactly the same test windows: naive (the last value) and
seasonal-naive (the value one season earlier: 12 months, 365 days, 24 hours). MASE
divides by the in-sample seasonal-naive MAE of the training part. Every figure is
read back through the exported SavedModel (``python -m seqapps evaluate``'s code path),
which also writes a PNG of the test period per series.

    SEQAPPS_DATA=../shared/datasets flock /tmp/seqapps-cpu.lock python benchmarks/forecasting.py
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

# name -> (dataset, config overrides following the protocol)
SERIES = {
    "airline": ("airline_passengers", [
        "data.window=24", "data.horizon=1", "data.test_size=24", "data.val_size=12", "data.season=12",
        "train.epochs=150", "train.batch_size=16", "train.patience=15"]),
    "temperatures": ("daily_min_temperatures", [
        "data.window=30", "data.horizon=1", "data.test_size=365", "data.val_size=365", "data.season=365",
        "train.epochs=40", "train.batch_size=64", "train.patience=6"]),
    "pollution": ("pollution", [
        "data.target=pm2.5", "data.features=all", "data.window=24", "data.horizon=1", "data.test_fraction=0.2",
        "data.val_fraction=0.1", "data.season=24", "train.epochs=20", "train.batch_size=128", "train.patience=4"]),
}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--series", default=",".join(SERIES), help=f"comma-separated subset of {', '.join(SERIES)}")
    p.add_argument("--epochs", type=int, help="override every series' epoch budget")
    p.add_argument("--cell", default="lstm")
    p.add_argument("--units", type=int, default=64)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--set", dest="extra", action="append", default=[], metavar="KEY=VALUE",
                   help="extra config override for every series")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "out" / "forecasting"))
    args = p.parse_args(argv)

    import seqapps
    from seqapps import registry

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    task = registry.get("forecasting")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "tasks/forecasting.py", "seqapps/data/timeseries.py",
                            "seqapps/metrics.py", "seqapps/viz.py",
                            "benchmarks/forecasting.py"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    commit += " (with uncommitted changes)" if dirty else ""
    started, results = time.time(), {}
    for name in [s.strip() for s in args.series.split(",") if s.strip()]:
        if name not in SERIES:
            p.error(f"unknown series {name!r}; expected some of {', '.join(SERIES)}")
        data, overrides = SERIES[name]
        overrides = overrides + [f"model.cell={args.cell}", f"model.units={args.units}", f"train.seed={args.seed}",
                                 "train.backup_every=0"] + (
            [f"train.epochs={args.epochs}"] if args.epochs is not None else []) + args.extra
        t0 = time.time()
        run = seqapps.train("forecasting", data, run_dir=out / f"run-{name}", overwrite=True, overrides=overrides,
                            verbose=2)
        train_seconds = time.time() - t0
        export_dir = run.export(out / f"export-{name}")
        predictor = seqapps.load(export_dir)
        cfg = task.config_class.from_dict(predictor.metadata["config"])
        splits = task.load_data(cfg)
        metrics = task.evaluate(predictor, splits.test, cfg, out_dir=out)
        renamed = out / f"forecast-{name}.png"
        Path(metrics["plot"]).replace(renamed)
        metrics["plot"] = str(renamed.relative_to(ROOT)) if renamed.is_relative_to(ROOT) else str(renamed)
        epochs = sum(1 for _ in open(run.history_path)) - 1
        results[name] = {"data": data, "overrides": overrides, "epochs_run": epochs,
                         "wall_seconds": round(train_seconds, 1), **metrics}
        print(f"\n== {name} ({data}) ==\n{task.format_metrics(metrics)}\n"
              f"epochs run: {epochs}, train+score seconds: {train_seconds:.1f}\n", flush=True)

    total = time.time() - started
    summary = {"results": results, "wall_seconds": round(total, 1), "commit": commit,
               "machine": f"{os.cpu_count()} CPU cores {platform.machine()}", "cell": args.cell, "units": args.units,
               "seed": args.seed}
    (out / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
    print("| series | test windows | method | MAE | RMSE | MASE |")
    print("|---|---|---|---|---|---|")
    for name, r in results.items():
        for key, label in (("model", f"seqapps ({args.cell} {args.units})"), ("naive", "naive"),
                           ("seasonal_naive", f"seasonal naive (m={r['season']})")):
            if key in r:
                s = r[key]
                print(f"| {name} | {r['windows']} | {label} | {s['mae']:.4f} | {s['rmse']:.4f} | {s['mase']:.4f} |")
    print(f"\ntotal wall time {total:.1f} s at commit {commit}; results in {out / 'results.json'}")


if __name__ == "__main__":
    main()

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
which also writes a PNG of the test period per series. Each series trains with its
forecasting preset (``airline``, ``temperatures``, ``pollution`` in tasks/forecasting.py),
so a figure here is what ``python -m seqapps train forecasting --data DATASET`` gives.

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


def run_series(name, data, args, out, task) -> dict:
    """Train ``data`` with its preset (``--epochs`` / ``--set`` apply over it), export, score the test part."""
    import seqapps

    overrides = ["train.backup_every=0", *args.extra]
    t0 = time.time()
    run = seqapps.train("forecasting", data, epochs=args.epochs, run_dir=out / f"run-{name}", overwrite=True,
                        overrides=overrides, verbose=2)
    train_seconds = time.time() - t0
    predictor = seqapps.load(run.export(out / f"export-{name}"))
    cfg = task.config_class.from_dict(predictor.metadata["config"])
    metrics = task.evaluate(predictor, task.load_data(cfg).test, cfg, out_dir=out)
    renamed = out / f"forecast-{name}.png"
    Path(metrics["plot"]).replace(renamed)
    metrics["plot"] = str(renamed.relative_to(ROOT)) if renamed.is_relative_to(ROOT) else str(renamed)
    epochs = sum(1 for _ in open(run.history_path)) - 1
    print(f"\n== {name} ({data}) ==\n{task.format_metrics(metrics)}\n"
          f"epochs run: {epochs}, train+score seconds: {train_seconds:.1f}\n", flush=True)
    return {"data": data, "preset": name, "overrides": overrides, "epochs_run": epochs,
            "wall_seconds": round(train_seconds, 1), "model_label": f"{cfg.model.cell} {cfg.model.units}", **metrics}


def commit_label() -> str:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "tasks/forecasting.py", "seqapps/data/timeseries.py",
                            "seqapps/data/series_inputs.py", "seqapps/metrics.py", "seqapps/viz.py",
                            "benchmarks/forecasting.py"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    return commit + (" (with uncommitted changes)" if dirty else "")


def print_table(results) -> None:
    print("| series | test windows | method | MAE | RMSE | MASE |")
    print("|---|---|---|---|---|---|")
    for name, r in results.items():
        for key, label in (("model", f"seqapps ({r['model_label']})"), ("naive", "naive"),
                           ("seasonal_naive", f"seasonal naive (m={r['season']})")):
            if key in r:
                s = r[key]
                print(f"| {name} | {r['windows']} | {label} | {s['mae']:.4f} | {s['rmse']:.4f} | {s['mase']:.4f} |")


def main(argv=None):
    from seqapps import registry

    task = registry.get("forecasting")
    series = {p.name: p.data for p in task.presets if p.data}  # each series' protocol is its preset
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--series", default=",".join(series), help=f"comma-separated subset of {', '.join(series)} "
                   "(forecasting presets, each trained on its dataset)")
    p.add_argument("--epochs", type=int, help="a shorter epoch budget than every preset's (not the headline figure)")
    p.add_argument("--set", dest="extra", action="append", default=[], metavar="KEY=VALUE",
                   help="a variant over every series' preset, e.g. model.cell=gru")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "out" / "forecasting"))
    args = p.parse_args(argv)
    names = [s.strip() for s in args.series.split(",") if s.strip()]
    for name in names:
        if name not in series:
            p.error(f"unknown series {name!r}; expected some of {', '.join(series)}")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    commit, started = commit_label(), time.time()
    results = {name: run_series(name, series[name], args, out, task) for name in names}
    total = time.time() - started
    summary = {"results": results, "wall_seconds": round(total, 1), "commit": commit,
               "machine": f"{os.cpu_count()} CPU cores {platform.machine()}"}
    (out / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
    print_table(results)
    print(f"\ntotal wall time {total:.1f} s at commit {commit}; results in {out / 'results.json'}")


if __name__ == "__main__":
    main()

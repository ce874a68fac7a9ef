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
forecasting preset (``airline``, ``temperatures``, ``pollution`` in tasks/forecasting/task.py),
so a figure here is what ``python -m seqapps train forecasting --data DATASET`` gives. The
target's transform (none or log) and the base forecast the network corrects (the last value, or
the last value plus the change one season ago) are chosen per series by the training code on
the validation part (tasks/forecasting/space.py); each series' choice and the validation MAE
of every candidate are printed and kept in the results.

Classical peers (benchmarks/peers/forecasting.py: statsforecast's AutoETS, AutoARIMA,
AutoTheta, SeasonalNaive) forecast exactly the same test times one step ahead from the
actual past, scored like the rows above, with the ratio of seqapps' MAE to theirs:
- they are fitted once on the training and validation parts together (every step before
  the first test time): seqapps reads the validation part only to stop early and keep the
  best epoch, so the peers see at least the data seqapps learns from; then statsforecast's
  ``forward`` applies the fitted model, parameters fixed, to the past at each test time
  (AutoETS, SeasonalNaive: once over the whole series, its one-step in-sample values;
  AutoARIMA, AutoTheta: one call per test time on the past only; the module says why);
- pollution: the peers are univariate on pm2.5 (seqapps reads every variable); missing
  hours are filled with the last observed value (the values the naive baseline and
  seqapps' inputs hold), and only the windows seqapps scores are scored. The peers are
  fitted on the last 8,760 hours (one year) before the test part, AutoTheta on the last
  1,000 and at each test hour applied to the 1,000 hours before it (:data:`PEER_FIT_HOURS`,
  :data:`THETA_CONTEXT`), to keep their cost to minutes;
- temperatures: AutoETS and AutoARIMA fit non-seasonal models (their seasonal forms are
  limited to 24-step seasons here; see the module), AutoTheta and SeasonalNaive use 365.
The SeasonalNaive peer must reproduce the seasonal-naive baseline row: a check that the
peers score the same windows.

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

PEER_FIT_HOURS = {"pollution": 8760}   # preset -> steps before the test part the peers fit on
THETA_CONTEXT = {"pollution": 1000}    # preset -> steps AutoTheta fits on and forecasts from


def run_peers(name, splits, peers) -> dict:
    """Each classical peer's one-step forecasts of the test windows, scored like seqapps'."""
    from benchmarks.peers.forecasting import one_step_forecasts
    from seqapps.analysis.metrics import regression_scores

    test = splits.test
    series, times = test.series, test.times()
    val_stop = splits.info["val_stop"]
    fit_start = max(0, val_stop - PEER_FIT_HOURS.get(name, val_stop))
    out = {}
    for peer in peers:
        r = one_step_forecasts(peer, series.y, fit_start, val_stop, times, test.season,
                               theta_context=THETA_CONTEXT.get(name))
        scores = regression_scores(series.y[times], r.forecast, test.mase_scale)
        fit_steps = val_stop - fit_start
        if peer == "AutoTheta" and name in THETA_CONTEXT:
            fit_steps = min(fit_steps, THETA_CONTEXT[name])
        out[peer] = {**scores, "fit_seconds": round(r.fit_seconds, 2), "forecast_seconds": round(r.forecast_seconds, 2),
                     "chosen": r.model, "season": r.season, "method": r.method, "fit_steps": fit_steps}
        print(f"{peer:>14}: {r.model}, MAE {scores['mae']:.4f}, fit {r.fit_seconds:.1f} s, "
              f"forecasts {r.forecast_seconds:.1f} s", flush=True)
    return out


def run_series(name, data, args, out, task, peers=()) -> dict:
    """Train ``data`` with its preset (``--epochs`` / ``--set`` apply over it), export, score the test part."""
    import seqapps

    overrides = ["train.backup_every=0", *args.extra]
    t0 = time.time()
    run = seqapps.train("forecasting", data, epochs=args.epochs, run_dir=out / f"run-{name}", overwrite=True,
                        overrides=overrides, verbose=2)
    train_seconds = time.time() - t0
    predictor = seqapps.load(run.export(out / f"export-{name}"))
    cfg = task.config_class.from_dict(predictor.metadata["config"])
    splits = task.load_data(cfg)
    metrics = task.evaluate(predictor, splits.test, cfg, out_dir=out)
    renamed = out / f"forecast-{name}.png"
    Path(metrics["plot"]).replace(renamed)
    metrics["plot"] = str(renamed.relative_to(ROOT)) if renamed.is_relative_to(ROOT) else str(renamed)
    epochs = sum(1 for _ in open(run.history_path)) - 1
    from tasks.forecasting.space import TargetSpace, space_of

    chosen = space_of(predictor.prep).label()
    tried = [f"{TargetSpace.from_dict(s).label()}: {s['val_mae']:.4f}" for s in predictor.metadata.get("selection", [])]
    print(f"target space: {chosen}" + (f" (validation MAE of each candidate: {'; '.join(tried)})" if tried else
                                       " (the only admissible one)"), flush=True)
    print(f"\n== {name} ({data}) ==\n{task.format_metrics(metrics)}\n"
          f"epochs run: {epochs}, train+score seconds: {train_seconds:.1f}\n", flush=True)
    if peers:
        metrics["peers"] = run_peers(name, splits, peers)
    return {"data": data, "preset": name, "overrides": overrides, "epochs_run": epochs, "space": chosen,
            "selection": predictor.metadata.get("selection", []),
            "wall_seconds": round(train_seconds, 1),
            "model_label": f"{cfg.model.cell} {cfg.model.units}{' + linear' if cfg.model.linear else ''}, {chosen}",
            **metrics}


def commit_label() -> str:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "tasks/forecasting/task.py", "tasks/forecasting/data.py",
                            "tasks/forecasting/inputs.py", "tasks/forecasting/space.py",
                            "tasks/forecasting/layers.py", "seqapps/analysis/metrics.py", "seqapps/analysis/plots.py",
                            "benchmarks/forecasting.py", "benchmarks/peers/forecasting.py"],
                           cwd=ROOT, capture_output=True, text=True).stdout.strip()
    return commit + (" (with uncommitted changes)" if dirty else "")


def print_table(results) -> None:
    print("| series | test windows | method | MAE | RMSE | MASE | fit s | seqapps MAE / its MAE |")
    print("|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        rows = [(f"seqapps ({r['model_label']})", r["model"], "")]
        rows += [(label, r[key], "") for key, label in (("naive", "naive"),
                 ("seasonal_naive", f"seasonal naive (m={r['season']})")) if key in r]
        rows += [(f"{peer}: {s['chosen']}", s, f"{s['fit_seconds']:.1f}") for peer, s in r.get("peers", {}).items()]
        for label, s, fit in rows:
            ratio = r["model"]["mae"] / s["mae"]
            print(f"| {name} | {r['windows']} | {label} | {s['mae']:.4f} | {s['rmse']:.4f} | {s['mase']:.4f} | {fit} "
                  f"| {ratio:.3f} |")


def main(argv=None):
    from seqapps.core import registry

    task = registry.get("forecasting")
    series = {p.name: p.data for p in task.presets if p.data}  # each series' protocol is its preset
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--series", default=",".join(series), help=f"comma-separated subset of {', '.join(series)} "
                   "(forecasting presets, each trained on its dataset)")
    p.add_argument("--epochs", type=int, help="a shorter epoch budget than every preset's (not the headline figure)")
    p.add_argument("--set", dest="extra", action="append", default=[], metavar="KEY=VALUE",
                   help="a variant over every series' preset, e.g. model.cell=gru")
    p.add_argument("--peers", default="AutoETS,AutoARIMA,AutoTheta,SeasonalNaive",
                   help="comma-separated classical peers (benchmarks/peers/forecasting.py), or none")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "out" / "forecasting"))
    args = p.parse_args(argv)
    names = [s.strip() for s in args.series.split(",") if s.strip()]
    for name in names:
        if name not in series:
            p.error(f"unknown series {name!r}; expected some of {', '.join(series)}")

    from benchmarks.peers.forecasting import PEERS

    peers = [] if args.peers.strip().lower() == "none" else [s.strip() for s in args.peers.split(",") if s.strip()]
    for peer in peers:
        if peer not in PEERS:
            p.error(f"unknown peer {peer!r}; expected some of {', '.join(PEERS)} or none")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    commit, started = commit_label(), time.time()
    results = {name: run_series(name, series[name], args, out, task, peers) for name in names}
    total = time.time() - started
    summary = {"results": results, "wall_seconds": round(total, 1), "commit": commit,
               "machine": f"{os.cpu_count()} CPU cores {platform.machine()}"}
    (out / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
    print_table(results)
    print(f"\ntotal wall time {total:.1f} s at commit {commit}; results in {out / 'results.json'}")


if __name__ == "__main__":
    main()

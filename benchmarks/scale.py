"""Data of any size: peak memory and time to the first step against the size of the training file,
and the steady training speed beside another checkout's.

    python benchmarks/scale.py                               # sentiment at 0.1M / 1.6M / 10M rows
    python benchmarks/scale.py --tasks sentiment --sizes sentiment=100000,1600000
    python benchmarks/scale.py --against ../old-checkout     # and the speed on SST-2 beside it

For each task and size it writes a file resampled from a shared dataset (rows drawn with
replacement under a fixed seed, into a temporary folder that is removed afterwards; nothing is
committed), then runs the command a user runs,

    python -m seqapps train TASK --data FILE --epochs 1 --set train.steps_per_epoch=STEPS --no-eval

(two epochs, validation cut to ``train.validation_steps=20`` batches) in a child process, cold (the
fitting pass runs and is cached), then a one-step run with the pass cached (command to the end of
the first training step, checkpoint included: an upper bound on the time to the first step). It
reports each child's peak resident memory (``wait4``'s ``ru_maxrss``) and wall time, the steady
examples/s of the second epoch (``epoch_seconds`` in the run's history) and the file's size.

With ``--against DIR`` (a checkout of the code before streaming, say), it also measures the
steady training speed on the task's shared benchmark dataset by name (``train sentiment --data
sst2``, its preset, the default backend) with both checkouts in alternating rounds: examples/s of
the second of two epochs of ``--speed-steps`` batches, the median of ``--rounds`` rounds each.

The targets (peak memory at the largest size within 1.15x of the smallest; every size trains;
time to the first step at the largest size <= 60 s once cached; speed >= 0.95x) are printed as met
or not met; ``--json OUT`` keeps every figure.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("SEQAPPS_DATA", ROOT.parent / "shared" / "datasets"))

TASKS = {
    # task: (the shared file it resamples, the suffix of the file it writes, the default sizes (rows;
    #        characters for char_lm), the shared benchmark dataset of the speed comparison, its batch
    #        size by name, how the file is made: "table" rows under its header, "lines" without one,
    #        "text" the file repeated)
    "sentiment": (DATA / "sst2" / "train.tsv", ".tsv", [100_000, 1_600_000, 10_000_000], "sst2", 256, "table"),
    "translation": (DATA / "anki_fra_eng" / "fra.txt", ".txt", [140_000, 2_240_000, 10_000_000], "anki_fra_eng",
                    64, "lines"),
    "char_lm": (DATA / "tinyshakespeare" / "input.txt", ".txt", [1_000_000, 64_000_000, 1_000_000_000],
                "tinyshakespeare", 64, "text"),
}


def resample(task: str, rows: int, folder: Path, seed: int = 0) -> Path:
    """A file of ``rows`` data rows drawn with replacement from the task's shared file (for char_lm, its
    text repeated up to ``rows`` characters)."""
    source, suffix, kind = TASKS[task][0], TASKS[task][1], TASKS[task][5]
    out = folder / f"{task}-{rows}{suffix}"
    if out.exists():
        return out
    if kind == "text":  # the text repeated up to ``rows`` characters
        text = source.read_text(encoding="utf-8")
        with open(out, "w", encoding="utf-8") as f:
            left = rows
            while left:
                f.write(text[:left])
                left -= min(left, len(text))
        return out
    lines = source.read_text(encoding="utf-8").splitlines(keepends=True)
    header, body = (lines[0], lines[1:]) if kind == "table" else ("", lines)
    rng = random.Random(seed)
    with open(out, "w", encoding="utf-8") as f:
        f.write(header)
        left = rows
        while left:
            n = min(left, 100_000)
            f.writelines(rng.choices(body, k=n))
            left -= n
    return out


def run_child(argv: list[str], env: dict, cwd: Path) -> dict:
    """Run ``argv``; its exit code, wall seconds and peak resident memory in MB."""
    started = time.time()
    proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out_lines = []
    for line in proc.stdout:
        out_lines.append(line)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {"code": proc.returncode, "seconds": round(time.time() - started, 2),
            "peak_mb": round(usage.ru_maxrss / 1024, 1), "tail": "".join(out_lines[-5:])}


def train_argv(python: str, task: str, data, run_dir: Path, steps: int, epochs: int, validation_steps: int = 20
               ) -> list[str]:
    return [python, "-m", "seqapps", "train", task, "--data", str(data), "--epochs", str(epochs),
            "--set", f"train.steps_per_epoch={steps}", "--set", "train.patience=0", "--run-dir", str(run_dir),
            *(["--set", f"train.validation_steps={validation_steps}"] if validation_steps else []),
            "--overwrite", "--no-eval"]


def child_env(checkout: Path, cache: Path) -> dict:
    return {**os.environ, "SEQAPPS_CACHE": str(cache), "PYTHONPATH": str(checkout), "SEQAPPS_DATA": str(DATA),
            "TF_CPP_MIN_LOG_LEVEL": "2"}


def speed(checkouts: list, task: str, folder: Path, steps: int, rounds: int) -> dict:
    """Examples/s of the second epoch of ``train TASK --data DATASET`` by name, checkouts alternating."""
    dataset, batch_size = TASKS[task][3], TASKS[task][4]
    rates = {name: [] for name, _ in checkouts}
    for r in range(rounds):
        for name, checkout in (checkouts if r % 2 == 0 else checkouts[::-1]):
            run_dir = folder / f"speed-{name}"
            out = run_child(train_argv(sys.executable, task, dataset, run_dir, steps, 2, validation_steps=0),
                            child_env(checkout, folder / f"cache-speed-{name}"), checkout)
            rate = steady_rate(run_dir, batch_size, steps) if out["code"] == 0 else None
            rates[name].append(rate)
            print(json.dumps({"speed": name, "round": r, "examples_per_second": rate, "code": out["code"]}),
                  flush=True)
    med = {name: sorted(v)[len(v) // 2] if all(x is not None for x in v) else None for name, v in rates.items()}
    ratio = (med["this"] / med["against"]) if med.get("against") and med.get("this") else None
    return {"task": task, "data": dataset, "steps": steps, "rates": rates, "median": med,
            "ratio": round(ratio, 3) if ratio else None}


def steady_rate(run_dir: Path, batch_size: int, steps: int) -> float | None:
    """Training examples per second of the run's last epoch (its ``epoch_seconds``)."""
    history = run_dir / "history.csv"
    if not history.exists():
        return None
    rows = list(csv.DictReader(history.open()))
    if not rows or "epoch_seconds" not in rows[-1]:
        return None
    return round(steps * batch_size / float(rows[-1]["epoch_seconds"]), 1)


def measure(checkout: Path, task: str, data: Path, folder: Path, steps: int, batch_size: int, cache: Path,
            validation_steps: int = 20) -> dict:
    """``validation_steps``: 0 for a checkout without ``train.validation_steps`` (it validates whole)."""
    env = child_env(checkout, cache)
    python = sys.executable
    run_dir = folder / "run"
    shutil.rmtree(cache, ignore_errors=True)
    cold = run_child(train_argv(python, task, data, run_dir, steps, 2, validation_steps), env, checkout)
    rate = steady_rate(run_dir, batch_size, steps)
    first = run_child(train_argv(python, task, data, run_dir, 1, 1, validation_steps), env, checkout)  # pass cached
    return {"cold": cold, "first_step": first, "examples_per_second": rate}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tasks", default="sentiment")
    p.add_argument("--sizes", action="append", default=[], metavar="TASK=N,N,...",
                   help="a task's sizes (rows; characters for char_lm) instead of its three defaults; repeatable")
    p.add_argument("--steps", type=int, default=30, help="training steps per epoch of each run")
    p.add_argument("--batch-size", type=int, default=64, help="the task's batch size (for examples/s)")
    p.add_argument("--against", type=Path, help="another checkout: the speed comparison runs it beside this one")
    p.add_argument("--against-sizes", default="100000",
                   help="sizes the other checkout also trains at (its memory beside this one's; a checkout "
                        "that reads whole files is killed at large sizes)")
    p.add_argument("--speed-steps", type=int, default=100, help="batches per epoch of the speed comparison")
    p.add_argument("--rounds", type=int, default=3, help="rounds of the speed comparison")
    p.add_argument("--speed-tasks", default="sentiment", help="tasks whose speed is compared with --against")
    p.add_argument("--json", type=Path)
    p.add_argument("--keep", type=Path, help="write the generated files here and keep them")
    p.add_argument("--plot", type=Path, help="draw peak memory and time against size into this PNG")
    p.add_argument("--from-json", type=Path, help="report (and --plot) a run saved by --json, running nothing")
    args = p.parse_args(argv)
    if args.from_json:
        results = json.loads(args.from_json.read_text())
        report(results)
        if args.plot:
            plot(results, args.plot)
        return 0
    results = {"date": time.strftime("%Y-%m-%d"), "commit": _commit(ROOT), "machine": _machine(), "runs": []}
    folder = args.keep or Path(tempfile.mkdtemp(prefix="seqapps-scale-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        for task in args.tasks.split(","):
            asked = dict(item.split("=", 1) for item in args.sizes)
            sizes = [int(n) for n in asked[task].split(",")] if task in asked else TASKS[task][2]
            for rows in sizes:
                data = resample(task, rows, folder)
                checkouts = [("this", ROOT)]
                if args.against and str(rows) in args.against_sizes.split(","):
                    checkouts.append(("against", args.against.resolve()))
                for name, checkout in checkouts:
                    figures = measure(checkout, task, data, folder / name, args.steps, args.batch_size,
                                      folder / f"cache-{name}", 20 if name == "this" else 0)
                    row = {"task": task, "rows": rows, "checkout": name, "file_mb": round(data.stat().st_size / 1e6, 1),
                           **figures}
                    results["runs"].append(row)
                    print(json.dumps({k: ({kk: vv for kk, vv in v.items() if kk != "tail"} if isinstance(v, dict) else v)
                                      for k, v in row.items()}, default=str), flush=True)
            if args.against and task in args.speed_tasks.split(","):
                results.setdefault("speed", []).append(
                    speed([("this", ROOT), ("against", args.against.resolve())], task, folder, args.speed_steps,
                          args.rounds))
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)
    report(results)
    if args.plot:
        plot(results, args.plot)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


def report(results: dict) -> None:
    for sp in results.get("speed", []):
        print(f"{sp['task']} on {sp['data']} by name, steady examples/s (median of {len(sp['rates']['this'])} "
              f"rounds of {sp['steps']} batches): this {sp['median']['this']}, against {sp['median']['against']}, "
              f"ratio {sp['ratio']} ({'met' if sp['ratio'] and sp['ratio'] >= 0.95 else 'not met'}: >= 0.95)")
    print(f"\n{results['date']} commit {results['commit']} on {results['machine']}")
    print("task       size           file MB  peak MB cold  peak MB cached  cold s  first step s (cached)  "
          "examples/s  exit")
    for r in results["runs"]:
        print(f"{r['task']:<10} {r['rows']:>13,} {r['file_mb']:>9} {r['cold']['peak_mb']:>13} "
              f"{r['first_step']['peak_mb']:>15} {r['cold']['seconds']:>7} {r['first_step']['seconds']:>22} "
              f"{r['examples_per_second'] or '-':>11} {r['cold']['code']},{r['first_step']['code']}  {r['checkout']}")
    for task in sorted({r["task"] for r in results["runs"]}):
        mine = [r for r in results["runs"] if r["task"] == task and r["checkout"] == "this"]
        if len(mine) < 2:
            continue
        small, large = mine[0], mine[-1]
        ratio = max(large["cold"]["peak_mb"], large["first_step"]["peak_mb"]) / max(
            small["cold"]["peak_mb"], small["first_step"]["peak_mb"])
        ok = all(r[k]["code"] == 0 for r in mine for k in ("cold", "first_step"))
        print(f"{task}: peak memory {large['rows']:,} / {small['rows']:,} rows = {ratio:.3f} "
              f"({'met' if ratio <= 1.15 else 'not met'}: <= 1.15); every size trained: {'yes' if ok else 'no'}; "
              f"first step at {large['rows']:,} rows, cached: {large['first_step']['seconds']} s "
              f"({'met' if large['first_step']['seconds'] <= 60 else 'not met'}: <= 60 s)")


def plot(results: dict, out: Path) -> None:
    """Peak memory (cold: with the fitting pass; cached) and wall times against the file's size, per task."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (mem, sec) = plt.subplots(1, 2, figsize=(11, 4))
    for task in sorted({r["task"] for r in results["runs"]}):
        runs = [r for r in results["runs"] if r["task"] == task and r["checkout"] == "this"]
        size = [r["file_mb"] for r in runs]
        mem.plot(size, [r["cold"]["peak_mb"] for r in runs], "o-", label=f"{task}, cold")
        mem.plot(size, [r["first_step"]["peak_mb"] for r in runs], "s--", label=f"{task}, pass cached")
        sec.plot(size, [r["cold"]["seconds"] for r in runs], "o-", label=f"{task}, cold run")
        sec.plot(size, [r["first_step"]["seconds"] for r in runs], "s--", label=f"{task}, to the first step, cached")
    for ax, ylabel in ((mem, "peak resident memory (MB)"), (sec, "wall seconds")):
        ax.set_xscale("log")
        ax.set_xlabel("training file (MB)")
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
    mem.set_ylim(bottom=0)
    mem.legend(fontsize=7)
    sec.legend(fontsize=7)
    fig.suptitle(f"benchmarks/scale.py, {results['date']}, {results['commit']}, {results['machine']}", fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


def _commit(root: Path) -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "unknown CPU")
    return f"{os.cpu_count()} cores, {cpu}"


if __name__ == "__main__":
    sys.exit(main())

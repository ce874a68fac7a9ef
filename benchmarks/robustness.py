"""Hostile inputs against every exported signature, and predicting a very long input file.

Part 1: every task trains tiny on ``--data demo`` (its ``tiny_overrides``) and exports;
then, in a child process per task (so a native crash is counted, not fatal), each
signature gets ``--examples`` fuzzed calls (``seqapps.core.testing.fuzz_signature``: random
bytes and invalid UTF-8, control characters, empty and huge strings, NaN/inf/extreme
numbers, batches of 0..5) and the batch-independence property on ``--examples // 5``
random batches (``seqapps.core.testing.batch_independence``). Reported: calls tried, answered,
refused with seqapps' documented error, other exceptions, process deaths, rows compared
and batch-dependent answers.

Part 2: ``python -m seqapps predict EXPORT --input FILE`` on files of 10,000 and
``--lines`` lines (sentiment, the demo-trained export), output to /dev/null, with the
child's peak resident memory and wall time: the peak stays flat when the input grows.

    python benchmarks/robustness.py [--examples 60] [--lines 1000000] [--tasks sentiment,pos]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def build(task_name: str, root: Path) -> Path:
    import seqapps
    from seqapps.core import registry

    task = registry.get(task_name)
    run = seqapps.train(task_name, "demo", overrides=list(type(task).tiny_overrides), run_dir=root / "run", verbose=0)
    return run.export(root / "export")


def fuzz_child(task_name: str, export: str, examples: int) -> dict:
    """In the child: fuzz and check every signature of ``export``; one JSON line on stdout."""
    import json as _json

    import seqapps
    from seqapps.core.testing import batch_independence, fuzz_signature

    predictor = seqapps.load(export)
    out = {}
    for signature in predictor.signatures:
        started = time.time()
        row = {"tried": 0, "answered": 0, "refused": 0, "other_errors": 0, "rows_compared": 0, "batch_dependent": 0}
        try:
            row.update(fuzz_signature(predictor, signature, max_examples=examples, seed=1))
        except Exception as e:  # anything but a documented refusal
            row["other_errors"] += 1
            row["first_error"] = " ".join(str(e).split())[:300]
        try:
            row["rows_compared"] = batch_independence(predictor.task, predictor, predictor.metadata, signature,
                                                      max_examples=max(1, examples // 5), seed=1)
        except AssertionError as e:
            row["batch_dependent"] += 1
            row["first_dependence"] = " ".join(str(e).split())[:300]
        row["seconds"] = round(time.time() - started, 1)
        out[signature] = row
    print(_json.dumps(out))
    return out


def fuzz(task_name: str, export: Path, examples: int) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--child", task_name, str(export), str(examples)],
                          cwd=ROOT, env=ENV, capture_output=True, text=True)
    if proc.returncode != 0:
        return {"process_death": proc.returncode, "stderr": proc.stderr[-500:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def predict_file(export: Path, lines: int, folder: Path) -> dict:
    """Peak RSS (MiB) and wall time of ``predict --input`` over ``lines`` generated reviews."""
    import numpy as np

    from seqapps.core.testing import random_texts

    path = folder / f"lines-{lines}.txt"
    rng = np.random.default_rng(0)
    pool = [t.replace("\n", " ").replace("\r", " ") for t in random_texts(rng, 5000, long_words=60)]
    with open(path, "w", encoding="utf-8") as f:
        for i in range(lines):
            f.write(pool[i % len(pool)] + "\n")
    started = time.time()
    with open(os.devnull, "w") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "seqapps", "predict", str(export), "--input", str(path)],
                                cwd=ROOT, env=ENV, stdout=sink, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.time() - started
    return {"lines": lines, "exit_code": os.waitstatus_to_exitcode(status), "seconds": round(seconds, 1),
            "lines_per_second": round(lines / seconds, 1), "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
            "input_mib": round(path.stat().st_size / 2 ** 20, 1)}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        fuzz_child(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return
    from seqapps.core import registry

    parser = argparse.ArgumentParser()
    parser.add_argument("--examples", type=int, default=60, help="fuzzed calls per signature")
    parser.add_argument("--lines", type=int, default=1_000_000, help="lines of the long predict input")
    parser.add_argument("--tasks", default=",".join(registry.names()))
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "out" / "robustness.json"))
    args = parser.parse_args()
    started = time.time()
    results = {"date": time.strftime("%Y-%m-%d"), "machine": f"{os.cpu_count()} CPU cores {platform.machine()}",
               "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                        text=True).stdout.strip(), "examples_per_signature": args.examples,
               "fuzz": {}, "predict": []}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        exports = {}
        for name in args.tasks.split(","):
            exports[name] = build(name, tmp / name)
            results["fuzz"][name] = fuzz(name, exports[name], args.examples)
            print(name, json.dumps(results["fuzz"][name]), flush=True)
        sentiment = exports.get("sentiment") or build("sentiment", tmp / "sentiment")
        for lines in sorted({10_000, args.lines}):
            results["predict"].append(predict_file(sentiment, lines, tmp))
            print(json.dumps(results["predict"][-1]), flush=True)
    results["wall_seconds"] = round(time.time() - started, 1)
    totals = {k: sum(r.get(k, 0) for t in results["fuzz"].values() for r in t.values() if isinstance(r, dict))
              for k in ("tried", "answered", "refused", "other_errors", "rows_compared", "batch_dependent")}
    totals["process_deaths"] = sum("process_death" in t for t in results["fuzz"].values())
    results["totals"] = totals
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(totals))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

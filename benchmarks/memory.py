"""Long-range memory, measured: the longest lag SimpleRNN, LSTM, GRU and a transformer solve.

Runs the product's command with the settings below (the task definitions are in
``seqapps/analysis/memory.py``), keeps its files in benchmarks/out/memory/ and prints
the Markdown tables RESULTS.md quotes: the longest lag solved per task and model, every
run's held-out score, steps to solve and time, and the gradient reaching the first step
(relative to the last) before and after training.

    python benchmarks/memory.py                        # the figures in RESULTS.md
    python benchmarks/memory.py --budget-minutes 20    # a shorter budget
    python benchmarks/memory.py --extra --clip 0       # any option of the command, e.g. clipping off

The command is ``python -m seqapps diagnose memory`` with ``--steps 2000 --lr 0.01 --batch 64``
(the defaults but for a larger learning rate and batch, which the recurrent cells need to
learn anything in 2,000 steps) and ``--budget-minutes``; the defaults otherwise (6,000
parameters, lags 10-500, clipping at 1, forget-gate bias 1, seed 0).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from seqapps.analysis.memory import MODELS, longest_solved  # noqa: E402  (numpy only: no TensorFlow here)


def command(budget: float, out: Path, extra) -> list[str]:
    return [sys.executable, "-m", "seqapps", "diagnose", "memory", "--steps", "2000", "--lr", "0.01",
            "--batch", "64", "--budget-minutes", f"{budget:g}", "--out", str(out), *extra]


def tables(rows) -> str:
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    models = list(dict.fromkeys(r["model"] for r in rows))
    out = ["| task | " + " | ".join(MODELS[m] for m in models) + " |", "|---" * (len(models) + 1) + "|"]
    best = longest_solved(rows)
    for t in tasks:
        cells = []
        for m in models:
            budget = [r["lag"] for r in rows if (r["task"], r["model"]) == (t, m) and r["status"] == "out of budget"]
            cell = str(best[(t, m)]) if best[(t, m)] else "none"
            if budget:
                cell += f" (lag {min(budget)}+ out of budget)"
            cells.append(cell)
        out.append(f"| {t} | " + " | ".join(cells) + " |")
    out += ["", "| task | model | lag | params | score | steps to solve | steps run | seconds | "
            "gradient at the first step / last, untrained -> trained |", "|---" * 9 + "|"]
    for r in rows:
        if r["status"] != "run":
            continue
        ratio = ""
        if "grad_trained" in r:
            u, tr = r["grad_untrained"], r["grad_trained"]
            ratio = f"{u[0] / u[-1]:.3g} -> {tr[0] / tr[-1]:.3g}" if u[-1] and tr[-1] else ""
        out.append(f"| {r['task']} | {MODELS[r['model']]} | {r['lag']} | {r['params']} | {r['metric']} {r['score']:.4f} | "
                   f"{r['steps_to_solve'] or '-'} | {r['steps_run']} | {r['seconds']:.0f} | {ratio} |")
    return "\n".join(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--budget-minutes", type=float, default=75.0)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "out" / "memory"))
    p.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more options for the command")
    args = p.parse_args(argv)
    out = Path(args.out)
    cmd = command(args.budget_minutes, out, args.extra)
    start = time.time()
    subprocess.run(cmd, cwd=ROOT, check=True)
    rows = json.load(open(out / "memory.json"))["rows"]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    print(f"\ncommand: python -m seqapps {' '.join(cmd[3:])}")
    print(f"date {time.strftime('%Y-%m-%d')}, commit {commit}, {platform.processor() or platform.machine()}, "
          f"{time.time() - start:.0f} s in all\n")
    print(tables(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""char_lm on Tiny Shakespeare: validation nats and bits per character.

Protocol (../shared/datasets/README.md): the first 90% of the characters train, the
last 10% validate; the figure is the validation loss in nats per character (and bits
per character), scored through the serving path (the exported ``score`` signature
reading the validation text as ``data.eval_streams`` contiguous streams).

Every run trains with the char_lm preset ``shakespeare`` (GRU 256, batch 64, 100-character
windows, 12 epochs of Adam 3e-3, cosine decay), so the GRU stateful row is what
``python -m seqapps train char_lm --data tinyshakespeare`` gives; beside it, at the same
budget (epochs x batches x characters), the comparison variants:
- every other cell asked for (LSTM, SimpleRNN) trained with stateful truncated BPTT;
- the first cell again with random windows read from a zero state (non-stateful).
Then three 300-character samples from the first cell's export at temperatures
0.5, 0.8 and 1.2.

Peers, on the same validation text (:mod:`benchmarks.peers.ngram_lm`): add-one unigram
and bigram (the floor) and interpolated modified Kneser-Ney character n-grams of orders 3
to 7, each fitted on the training text and scoring the same 111,538 characters as the
seqapps rows (every validation character but the first, the history read from the
validation text itself); the report gives each seqapps row's nats/char over the best
order's (``--peers-only``: the peers alone, compared with the seqapps rows of an earlier
run's ``results.json`` in ``--out`` if there is one).

    SEQAPPS_DATA=../shared/datasets python benchmarks/char_lm.py --cells gru --no-nonstateful   # the preset alone
    SEQAPPS_DATA=../shared/datasets python benchmarks/char_lm.py --epochs 5   # every cell, a shorter budget
    SEQAPPS_DATA=../shared/datasets python benchmarks/char_lm.py --peers-only   # the n-gram rows alone, about 20 s
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
           "val_chars": val["chars"],
           # a run whose fit finished but whose scoring after training did not has no metrics file: its epochs' time
           "train_seconds": run.metrics.get("train_seconds", float(history["epoch_seconds"].sum())),
           "wall_seconds": None if wall is None else round(wall, 1),
           "scored_after_training": run.metrics.get("val", {}).get("nats_per_char"), "rescored": args.rescore}
    print(json.dumps(row), flush=True)
    return row


def samples(run_dir, export_dir, prime, seed) -> list[dict]:
    import seqapps
    from seqapps.inference.export import export

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
    p.add_argument("--no-peers", action="store_true", help="skip the n-gram peers")
    p.add_argument("--peers-only", action="store_true",
                   help="score the n-gram peers alone (written to peers.json in --out; the ratio uses an earlier "
                        "run's results.json there, if any)")
    p.add_argument("--rescore", action="store_true",
                   help="do not train: score and sample the finished runs already in --out with the current serving "
                        "code (their vocabulary file is re-fitted from the same training text first)")
    args = p.parse_args(argv)

    commit = _git("rev-parse", "--short", "HEAD") + (" (uncommitted changes)" if _git(
        "status", "--porcelain", "tasks/char_lm/task.py", "tasks/char_lm/model.py", "tasks/char_lm/serving.py",
        "benchmarks/peers/ngram_lm.py") else "")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cells = [c.strip() for c in args.cells.split(",") if c.strip()]
    started = time.time()
    stamp = {"commit": commit, "machine": f"{os.cpu_count()} CPU cores {platform.machine()}",
             "date": time.strftime("%Y-%m-%d", time.gmtime())}
    if args.peers_only:
        earlier = out / "results.json"
        earlier = json.loads(earlier.read_text()) if earlier.is_file() else {}
        result = {"args": vars(args), "runs": earlier.get("runs", []), "samples": [], "peers": peers(args),
                  "runs_from": {k: earlier.get(k) for k in ("commit", "date")} if earlier else None,
                  "total_seconds": round(time.time() - started, 1), **stamp}
        (out / "peers.json").write_text(json.dumps(result, indent=2) + "\n")
        print(report(result))
        return
    rows = [train_or_rescore(name, variant, args, out) for name, variant in plan_runs(cells, not args.no_nonstateful)]
    result = {"args": vars(args), "preset": PRESET, "runs": rows,
              "samples": samples(out / f"{cells[0]}-stateful", out / "export", args.prime, args.seed),
              "peers": None if args.no_peers else peers(args),
              "total_seconds": round(time.time() - started, 1), **stamp}
    (out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    print(report(result))
    for r in rows:
        if result["peers"] and r["val_chars"] != result["peers"]["rows"][0]["val_chars"]:
            raise SystemExit(f"{r['run']} scored {r['val_chars']} characters, the peers "
                             f"{result['peers']['rows'][0]['val_chars']}: not the same validation text")


def peers(args) -> dict:
    """The n-gram rows on the task's own split of the same data (the runs' data config)."""
    from benchmarks.peers.ngram_lm import peer_rows
    from seqapps.core import registry
    from seqapps.core.task import whole
    from seqapps.training.fit import resolve_config

    task = registry.get("char_lm")
    splits = task.load_data(resolve_config(task, DATA, overrides=args.overrides))
    print("== n-gram peers", flush=True)
    out = peer_rows(whole(splits.train), whole(splits.val))  # a file's splits are read as text here
    out.update(train_chars=len(splits.train), val_text_chars=len(splits.val))
    for r in out["rows"]:
        print(json.dumps(r), flush=True)
    return out


def _rescore(run_dir):
    """Score a finished run's validation text again through the current serving code."""
    from seqapps.inference.trained import TrainedRun as Run

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
                     f"{r['bits_per_char']:.4f} | {_num(r['scored_after_training'])} | {r['train_seconds']:.0f} | {wall} |")
    if result.get("peers"):
        lines += ["", *peer_report(result)]
    for s in result["samples"]:
        lines += ["", f"temperature {s['temperature']} (prime {s['prime']!r}, seed {s['seed']}):", "", "```",
                  s["prime"] + s["text"], "```"]
    lines.append(f"\ntotal {result['total_seconds']:.0f} s, commit {result['commit']}, {result['machine']}")
    return "\n".join(lines)


def _num(x) -> str:
    return "-" if x is None else f"{x:.4f}"


def peer_report(result) -> list[str]:
    p = result["peers"]
    lines = ["| peer (fitted on the training text) | val nats/char | val bits/char | fit s | score s |",
             "|---|---|---|---|---|"]
    for r in p["rows"]:
        name = f"**{r['model']}** (best)" if r == p["best"] else r["model"]
        lines.append(f"| {name} | {r['nats_per_char']:.4f} | {r['bits_per_char']:.4f} | {r['fit_seconds']:.2f} | "
                     f"{r['score_seconds']:.2f} |")
    unseen = p["unseen_val_chars"]
    lines.append(f"\n{p['rows'][0]['val_chars']:,} validation characters scored, vocabulary {p['vocabulary_size']} "
                 f"(training characters and the unknown symbol), {unseen['count']} validation characters unseen "
                 "in training")
    source = result.get("runs_from")
    for r in result["runs"]:
        where = f" (from an earlier run: commit {source['commit']}, {source['date']})" if source else ""
        lines.append(f"- {r['run']}{where}: {r['nats_per_char']:.4f} nats/char, "
                     f"{r['nats_per_char'] / p['best']['nats_per_char']:.4f}x the best n-gram's "
                     f"(order {p['best']['order']}, {p['best']['nats_per_char']:.4f})")
    return lines


def _git(*args) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    except OSError:
        return "unknown"


if __name__ == "__main__":
    main()

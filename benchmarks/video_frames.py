"""video_frames on moving_digits: per-frame test accuracy and segment F1 of three models.

Each model is trained by name, one after another, exactly as a user would:

    python -m seqapps train video_frames --data moving_digits                  # (c) bidirectional (the dataset's preset)
    python -m seqapps train video_frames --data moving_digits --preset online  # (b) unidirectional, causal
    python -m seqapps train video_frames --data moving_digits --preset frame   # (a) each frame alone (one-to-one)

and scored on the test split through the serving path (metrics.json). Targets: (c) per-frame
accuracy >= 0.95; (a) near chance (the share of the most frequent label in the test frames,
printed beside it). Accuracy by position in the video is plotted for all three
(``docs/images/video_frames-accuracy-by-position.png``).

    SEQAPPS_DATA=../shared/datasets python benchmarks/video_frames.py
    python benchmarks/video_frames.py --set data.videos=200 --set train.epochs=2   # a quick look, not the figure
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = [("bidirectional", []), ("online", ["--preset", "online"]), ("frame", ["--preset", "frame"])]


def _git(*args) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()


def train(name, preset_args, args, out) -> dict:
    command = [sys.executable, "-m", "seqapps", "train", "video_frames", "--data", "moving_digits", *preset_args,
               "--run-dir", str(out / name), "--overwrite", *[x for s in args.overrides for x in ("--set", s)]]
    if args.rescore:  # score the finished run's best checkpoint again with the current scoring code
        command = [sys.executable, "-m", "seqapps", "evaluate", str(out / name)]
    print("==", " ".join(["python", *command[1:]]), flush=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    t0 = time.time()
    code = subprocess.run(command, cwd=ROOT, env=env).returncode
    wall = time.time() - t0
    if code != 0:
        print(f"{name}: training failed with exit code {code}", flush=True)
        return {"model": name, "failed": code}
    metrics = json.loads((out / name / "metrics.json").read_text())
    test = json.loads((out / name / "evaluation-test.json").read_text()) if args.rescore else metrics["test"]
    row = {"model": name, "command": " ".join(["python", *command[1:]]).replace(str(out), "OUT"),
           "test_accuracy": test["accuracy"], "test_macro_f1": test["macro_f1"], "test_segment_f1": test["segment_f1"],
           "val_accuracy": metrics["val"]["accuracy"], "test_frames": test["frames"], "test_videos": test["videos"],
           "accuracy_by_position": test["accuracy_by_position"], "accuracy_after_change": test.get("accuracy_after_change"),
           "train_seconds": metrics["train_seconds"], "wall_seconds": None if args.rescore else round(wall, 1),
           "rescored": args.rescore}
    print(json.dumps({k: v for k, v in row.items() if not k.startswith("accuracy_")}), flush=True)
    return row


def chance(args) -> float:
    """The share of the most frequent label among the test frames (what always guessing it scores)."""
    sys.path.insert(0, str(ROOT))
    import tasks.video_frames.task as vf
    from seqapps.core.config import Config  # noqa: F401

    cfg = vf.VideoConfig()
    cfg.data.source = "moving_digits"
    cfg.override(args.overrides)
    test = vf.VideoFrames().load_data(cfg).test
    counts = collections.Counter(x for labels in test.labels for x in labels)
    return max(counts.values()) / sum(counts.values())


def plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 3.5))
    for r in rows:
        ax.plot(range(len(r["accuracy_by_position"])), r["accuracy_by_position"], label=r["model"])
        if r.get("accuracy_after_change"):
            bx.plot(range(len(r["accuracy_after_change"])), r["accuracy_after_change"], marker="o", label=r["model"])
    ax.set_xlabel("frame index in the video")
    bx.set_xlabel("frames since the true label changed")
    for a, title in ((ax, "by position in the video"), (bx, "after a change of direction")):
        a.set_ylabel("test accuracy")
        a.set_ylim(0, 1.02)
        a.set_title(f"moving_digits: per-frame accuracy {title}", fontsize=10)
        a.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def report(result) -> str:
    lines = ["| model | test per-frame accuracy | macro-F1 | segment F1 | val accuracy | train s | wall s |",
             "|---|---|---|---|---|---|---|"]
    for r in result["runs"]:
        if r.get("failed"):
            lines.append(f"| {r['model']} | training failed (exit code {r['failed']}) | | | | | |")
            continue
        lines.append(f"| {r['model']} | {r['test_accuracy']:.4f} | {r['test_macro_f1']:.4f} | "
                     f"{r['test_segment_f1']:.4f} | {r['val_accuracy']:.4f} | {r['train_seconds']:.0f} | "
                     f"{'-' if r['wall_seconds'] is None else format(r['wall_seconds'], '.0f')} |")
    runs = {r["model"]: r for r in result["runs"] if not r.get("failed")}
    lines += ["", f"chance (most frequent test label): {result['chance']:.4f}"]
    if "bidirectional" in runs:
        ok = runs["bidirectional"]["test_accuracy"] >= 0.95
        lines.append(f"target (c) bidirectional >= 0.95: {'met' if ok else 'NOT met'} "
                     f"({runs['bidirectional']['test_accuracy']:.4f})")
    if "frame" in runs:
        lines.append(f"target (a) per-frame baseline near chance: {runs['frame']['test_accuracy']:.4f} "
                     f"against {result['chance']:.4f}")
    for name in ("online", "bidirectional"):
        if name in runs:
            acc, after = runs[name]["accuracy_by_position"], runs[name]["accuracy_after_change"] or []
            lines.append(f"{name}: accuracy at frames 0, 1, 2: {', '.join(f'{a:.4f}' for a in acc[:3])}; "
                         f"0, 1, 2, 3 frames after a change: {', '.join(f'{a:.4f}' for a in after[:4])}")
    if result.get("trained_at"):
        lines.append(f"rescored at commit {result['commit']}; trained at commit {result['trained_at']}")
    lines.append(f"commit {result['commit']}, {result['date']}, {result['machine']}, total {result['total_seconds']} s")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", default="", help="comma-separated subset of bidirectional,online,frame")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="a variant for every run (repeatable); not the headline figure")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "out" / "video_frames"))
    p.add_argument("--rescore", action="store_true", help="do not train: score the finished runs in --out again "
                   "(python -m seqapps evaluate RUN_DIR) with the current scoring code")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    commit = _git("rev-parse", "--short", "HEAD") + (" (uncommitted changes)" if _git(
        "status", "--porcelain", "tasks/video_frames/task.py", "tasks/video_frames/model.py", "tasks/video_frames/serving.py",
        "tasks/video_frames/data.py", "tasks/video_frames/moving_digits.py") else "")
    only = {x.strip() for x in args.only.split(",") if x.strip()}
    started = time.time()
    previous = out / "results.json"
    trained_at = json.loads(previous.read_text()).get("commit") if args.rescore and previous.exists() else None
    rows = [train(name, preset, args, out) for name, preset in VARIANTS if not only or name in only]
    result = {"args": vars(args), "runs": rows, "chance": chance(args), "commit": commit, "trained_at": trained_at,
              "total_seconds": round(time.time() - started, 1),
              "machine": f"{os.cpu_count()} CPU cores {platform.machine()}",
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    (out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    figure = ROOT / "docs" / "images" / "video_frames-accuracy-by-position.png"
    plot([r for r in rows if not r.get("failed")], figure if not args.overrides else out / figure.name)
    print(report(result))


if __name__ == "__main__":
    main()

"""Data of any size: peak memory and time to the first step against the size of the training data,
the folder ``prepare`` writes from it, and the steady training speed beside another checkout's.

    python benchmarks/scale.py                               # sentiment at 0.1M / 1.6M / 10M rows
    python benchmarks/scale.py --tasks pos --sizes pos=20000,200000
    python benchmarks/scale.py --tasks sentiment,pos --against-for sentiment=../old --against-for pos=../older
    python benchmarks/scale.py --from-json scale.json --plot scale.png   # report a saved run again

Seven tasks. For each task and size it writes training data resampled from a shared dataset
(under a fixed seed, into a temporary folder that is removed afterwards; nothing is committed):

- sentiment, translation: rows drawn with replacement from SST-2's ``train.tsv`` (under its
  header) and Anki's ``fra.txt``; char_lm: Tiny Shakespeare's text repeated up to N characters;
- pos: CoNLL-U sentences (each with its comment lines) drawn with replacement from EWT's dev file
  into one file, which pos splits by position (its last ``data.val_fraction`` validates);
- forecasting: ``pollution.csv``'s rows repeated in order under one ``date`` column that goes up
  hourly from 1680-01-01 (every 30 minutes for a series too long for hours to stay within
  ``datetime64[ns]``, which ends in 2262), the other columns as they are; trained with the
  ``pollution`` preset (pm2.5 from 24 steps of every variable);
- captioning: a folder of ``captions.txt`` whose rows are the captions of Flickr8k images drawn with
  replacement (five a name) and ``images/``, N/5 distinct names that are links to the 1,000 JPEGs;
- video_frames: a folder of N video names, links to 20 moving-digits videos (MPEG-4, 16 to 48
  frames) written once, and their ``labels.csv`` (segments).

For each, it runs the command a user runs,

    python -m seqapps train TASK --data FILE --epochs 1 --set train.steps_per_epoch=STEPS --no-eval

(two epochs, validation cut to ``train.validation_steps=20`` batches, plus the task's ``args``
below) in a child process, cold (the fitting pass runs and is cached), then a one-step run with the
pass cached (command to the end of the first training step, checkpoint included: an upper bound on
the time to the first step). It reports each child's peak resident memory (``wait4``'s
``ru_maxrss``) and wall time, the steady examples/s of the second epoch (``epoch_seconds`` in the
run's history, times the batch size in the run's ``config.json``) and the data's size (links
counted at the size of what they point to).

At each task's middle size (``--prepare-sizes`` for others), with the fitting pass cached, it also runs

    python -m seqapps prepare TASK --data FILE --out DIR --epochs 1 --set train.steps_per_epoch=STEPS \\
        --backend tensorflow

and reports its wall time, peak memory, the folder's size in MB (training and validation shards
apart: validation is written whole) and its number of shard files.

With ``--against DIR`` (a checkout of the code before streaming, say; ``--against-for TASK=DIR`` for
one task's, repeatable) the older checkout also trains at the task's smallest size
(``--against-sizes``), and the steady training speed on the task's shared benchmark by name
(``train pos --data ud_english_ewt``, its preset, the default backend) is measured with both
checkouts in alternating rounds: examples/s of the second of two epochs of ``--speed-steps``
batches, the median of ``--rounds`` rounds each. A checkout without ``train.validation_steps``
validates whole.

The targets (peak memory at the largest size within 1.15x of the smallest; every size trains;
time to the first step at the largest size <= 60 s once cached; speed >= 0.95x) are printed as met
or not met; ``--json OUT`` keeps every figure, ``--plot OUT.png`` draws memory and times per task.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
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
DATA = Path(os.environ.get("SEQAPPS_DATA", ROOT.parent / "shared" / "datasets")).resolve()


@dataclasses.dataclass(frozen=True)
class Bench:
    """A task's scale benchmark."""

    source: Path            # the shared file (or folder) the training data is resampled from
    sizes: tuple            # the default sizes, in ``unit``
    unit: str               # what a size counts
    kind: str               # how the data is written (see WRITERS)
    suffix: str             # of the written file; "" for a folder
    batch_size: int         # the batch size of the runs on the written data (for examples/s when the run has no config)
    dataset: str            # the shared benchmark dataset of the speed comparison, by name
    dataset_batch_size: int  # its batch size by name (its preset's, else the task's)
    args: tuple = ()        # what the runs on the written data add to the command line


TASKS = {
    "sentiment": Bench(DATA / "sst2" / "train.tsv", (100_000, 1_600_000, 10_000_000), "rows", "table", ".tsv",
                       64, "sst2", 256),
    "translation": Bench(DATA / "anki_fra_eng" / "fra.txt", (140_000, 2_240_000, 10_000_000), "pairs", "lines",
                         ".txt", 64, "anki_fra_eng", 64),
    "char_lm": Bench(DATA / "tinyshakespeare" / "input.txt", (1_000_000, 64_000_000, 1_000_000_000), "characters",
                     "text", ".txt", 64, "tinyshakespeare", 64),
    "pos": Bench(DATA / "ud_english_ewt" / "en_ewt-ud-dev.conllu", (20_000, 200_000, 1_000_000), "sentences",
                 "conllu", ".conllu", 32, "ud_english_ewt", 32),
    "forecasting": Bench(DATA / "timeseries" / "pollution.csv", (43_824, 1_000_000, 10_000_000), "rows", "series",
                         ".csv", 128, "pollution", 128, ("--preset", "pollution")),
    "captioning": Bench(DATA / "flickr8k_1000" / "captions.txt", (5_000, 100_000, 1_000_000), "caption rows",
                        "captions", "", 64, "flickr8k_1000", 64),
    "video_frames": Bench(ROOT / "tasks" / "video_frames" / "moving_digits.py", (200, 2_000, 20_000), "videos", "videos", "", 16, "moving_digits", 16),
}


def resample(task: str, rows: int, folder: Path, seed: int = 0) -> Path:
    """The training data of ``task`` at size ``rows`` (in its unit), written once into ``folder``."""
    bench = TASKS[task]
    out = folder / f"{task}-{rows}{bench.suffix}"
    if not out.exists():
        WRITERS[bench.kind](bench.source, rows, out, random.Random(seed))
    return out


def write_table(source: Path, rows: int, out: Path, rng: random.Random, header: bool = True) -> None:
    """Rows drawn with replacement from ``source`` (under its header when ``header``)."""
    lines = source.read_text(encoding="utf-8").splitlines(keepends=True)
    head, body = (lines[0], lines[1:]) if header else ("", lines)
    with open(out, "w", encoding="utf-8") as f:
        f.write(head)
        left = rows
        while left:
            n = min(left, 100_000)
            f.writelines(rng.choices(body, k=n))
            left -= n


def write_text(source: Path, chars: int, out: Path, rng: random.Random) -> None:
    """The text repeated up to ``chars`` characters."""
    text = source.read_text(encoding="utf-8")
    with open(out, "w", encoding="utf-8") as f:
        left = chars
        while left:
            f.write(text[:left])
            left -= min(left, len(text))


def conllu_sentences(source: Path) -> list[str]:
    """A CoNLL-U file's sentences (split on blank lines), each with its comment lines and a closing blank line."""
    blocks = source.read_text(encoding="utf-8").split("\n\n")
    return [b.strip("\n") + "\n\n" for b in blocks if b.strip()]


def write_conllu(source: Path, sentences: int, out: Path, rng: random.Random) -> None:
    """Sentences drawn with replacement from a CoNLL-U file, into one file."""
    pool = conllu_sentences(source)
    with open(out, "w", encoding="utf-8") as f:
        left = sentences
        while left:
            n = min(left, 50_000)
            f.writelines(rng.choices(pool, k=n))
            left -= n


SERIES_START = "1680-01-01T00:00"  # as early as datetime64[ns] allows, rounded: long series stay before 2262
SERIES_END = "2262-01-01T00:00"


def series_step_minutes(rows: int) -> int:
    """Hourly, or the longest step of (30, 20, 15, 10, 5, 1) minutes that keeps ``rows`` steps before 2262."""
    import numpy as np

    span = (np.datetime64(SERIES_END) - np.datetime64(SERIES_START)) // np.timedelta64(1, "m")
    return next((m for m in (60, 30, 20, 15, 10, 5, 1) if rows * m < span), 1)


def write_series(source: Path, rows: int, out: Path, rng: random.Random) -> None:
    """``pollution.csv``'s rows repeated in order (the series starts over after its last hour) with a
    running ``No`` and one ``date`` column going up by :func:`series_step_minutes` from
    :data:`SERIES_START` in place of its year, month, day and hour columns."""
    import numpy as np

    with open(source, encoding="utf-8", newline="") as f:
        table = list(csv.reader(f))
    header, body = table[0], table[1:]
    dropped = {"no", "year", "month", "day", "hour"}
    keep = [i for i, name in enumerate(header) if name.lower() not in dropped]
    rests = [",".join(r[i] for i in keep) for r in body]
    step = np.timedelta64(series_step_minutes(rows), "m")
    start = np.datetime64(SERIES_START)
    with open(out, "w", encoding="utf-8") as f:
        f.write(",".join(["No", "date", *(header[i] for i in keep)]) + "\n")
        done = 0
        while done < rows:
            n = min(rows - done, len(rests))
            stamps = np.datetime_as_string(start + step * np.arange(done, done + n), unit="m")
            f.write("".join(f"{done + k + 1},{str(d).replace('T', ' ')},{rest}\n"
                            for k, (d, rest) in enumerate(zip(stamps, rests[:n]))))
            done += n


def write_captions(source: Path, rows: int, out: Path, rng: random.Random) -> None:
    """A captions folder: ``captions.txt`` (``image,caption``) and ``images/``. Image name k is a link to a
    Flickr8k JPEG drawn with replacement and carries that image's captions (five a name, the last name
    fewer when ``rows`` is not a multiple of five); the names are distinct, so there are ceil(rows / 5)."""
    lines = source.read_text(encoding="utf-8").splitlines(keepends=True)
    header, by_image = lines[0], {}
    for line in lines[1:]:
        name, rest = line.split(",", 1)
        by_image.setdefault(name, []).append(rest)
    real = sorted(by_image)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "images").mkdir(parents=True)
    with open(tmp / "captions.txt", "w", encoding="utf-8") as f:
        f.write(header)
        left, k = rows, 0
        while left:
            picked = rng.choice(real)
            name = f"{k:07d}_{picked}"
            os.symlink(source.parent / "images" / picked, tmp / "images" / name)
            caps = by_image[picked][:left]
            f.writelines(f"{name},{rest}" for rest in caps)
            left -= len(caps)
            k += 1
    tmp.rename(out)


VIDEO_SOURCES = 20  # distinct videos the video names link to


def write_videos(source: Path, videos: int, out: Path, rng: random.Random, distinct: int = VIDEO_SOURCES) -> None:
    """A labelled video folder: ``videos`` names (``v000000.mp4``...) that are links to ``distinct``
    moving-digits videos written once beside the folder, and ``labels.csv`` with each name's segments."""
    sources = out.parent / f"video-sources-{distinct}"
    if not sources.is_dir():
        sys.path.insert(0, str(ROOT))
        from tasks.video_frames import moving_digits
        from tasks.video_frames.data import write_video
        from tasks.video_frames.segments import to_segments

        tmp = sources.with_name(sources.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        clips = moving_digits.generate(0, {"train": distinct, "val": 0, "test": 0})["train"]
        for k, (_, frames, labels) in enumerate(clips):
            write_video(tmp / f"{k:02d}.mp4", frames, fps=10)
            (tmp / f"{k:02d}.segments").write_text("".join(f"{s},{e},{x}\n" for s, e, x in to_segments(labels)))
        tmp.rename(sources)
    segments = [(sources / f"{k:02d}.segments").read_text().split() for k in range(distinct)]
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    with open(tmp / "labels.csv", "w", encoding="utf-8") as f:
        f.write("video,start,end,label\n")
        for k in range(videos):
            picked = rng.randrange(distinct)
            name = f"v{k:06d}.mp4"
            os.symlink(sources / f"{picked:02d}.mp4", tmp / name)
            f.writelines(f"{name},{segment}\n" for segment in segments[picked])
    tmp.rename(out)


WRITERS = {
    "table": write_table,
    "lines": lambda source, rows, out, rng: write_table(source, rows, out, rng, header=False),
    "text": write_text,
    "conllu": write_conllu,
    "series": write_series,
    "captions": write_captions,
    "videos": write_videos,
}


def data_mb(path: Path) -> float:
    """The size of a file, or of a folder's files, in MB (links at the size of what they point to)."""
    if path.is_file():
        return round(path.stat().st_size / 1e6, 1)
    return round(sum(os.stat(Path(d) / f).st_size for d, _, files in os.walk(path) for f in files) / 1e6, 1)


def run_child(argv: list[str], env: dict, cwd: Path) -> dict:
    """Run ``argv``; its exit code, wall seconds and peak resident memory in MB."""
    started = time.time()
    proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out_lines = []
    for line in proc.stdout:
        out_lines.append(line)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    out = {"code": proc.returncode, "seconds": round(time.time() - started, 2),
           "peak_mb": round(usage.ru_maxrss / 1024, 1), "tail": "".join(out_lines[-5:])}
    if out["code"] != 0:
        print(f"exit {out['code']}: {' '.join(argv[1:])}\n{out['tail']}", file=sys.stderr, flush=True)
    return out


def train_argv(python: str, task: str, data, run_dir: Path, steps: int, epochs: int, validation_steps: int = 20,
               extra=()) -> list[str]:
    return [python, "-m", "seqapps", "train", task, "--data", str(data), "--epochs", str(epochs),
            "--set", f"train.steps_per_epoch={steps}", "--set", "train.patience=0", "--run-dir", str(run_dir),
            *(["--set", f"train.validation_steps={validation_steps}"] if validation_steps else []),
            *extra, "--overwrite", "--no-eval"]


def child_env(checkout: Path, cache: Path) -> dict:
    return {**os.environ, "SEQAPPS_CACHE": str(cache), "PYTHONPATH": str(checkout), "SEQAPPS_DATA": str(DATA),
            "TF_CPP_MIN_LOG_LEVEL": "2"}


def knows_validation_steps(checkout: Path) -> bool:
    """Whether the checkout's training config has ``train.validation_steps`` (older ones validate whole)."""
    return any("validation_steps" in p.read_text(encoding="utf-8", errors="replace")
               for p in (checkout / "seqapps").rglob("config.py"))


def speed(checkouts: list, task: str, folder: Path, steps: int, rounds: int) -> dict:
    """Examples/s of the second epoch of ``train TASK --data DATASET`` by name, checkouts alternating."""
    dataset, batch_size = TASKS[task].dataset, TASKS[task].dataset_batch_size
    rates = {name: [] for name, _ in checkouts}
    for r in range(rounds):
        for name, checkout in (checkouts if r % 2 == 0 else checkouts[::-1]):
            run_dir = folder / f"speed-{task}-{name}"
            out = run_child(train_argv(sys.executable, task, dataset, run_dir, steps, 2, validation_steps=0),
                            child_env(checkout, folder / f"cache-speed-{name}"), checkout)
            rate = steady_rate(run_dir, batch_size, steps) if out["code"] == 0 else None
            rates[name].append(rate)
            print(json.dumps({"speed": task, "checkout": name, "round": r, "examples_per_second": rate,
                              "code": out["code"]}), flush=True)
    med = {name: sorted(v)[len(v) // 2] if all(x is not None for x in v) else None for name, v in rates.items()}
    ratio = (med["this"] / med["against"]) if med.get("against") and med.get("this") else None
    return {"task": task, "data": dataset, "steps": steps, "rates": rates, "median": med,
            "against": str(checkouts[1][1]) if len(checkouts) > 1 else None,
            "ratio": round(ratio, 3) if ratio else None}


def run_batch_size(run_dir: Path, default: int) -> int:
    """The batch size the run trained with (its ``config.json``), else ``default``."""
    try:
        return int(json.loads((run_dir / "config.json").read_text())["train"]["batch_size"])
    except (OSError, ValueError, KeyError, TypeError):
        return default


def steady_rate(run_dir: Path, batch_size: int, steps: int) -> float | None:
    """Training examples per second of the run's last epoch (its ``epoch_seconds``)."""
    history = run_dir / "history.csv"
    if not history.exists():
        return None
    rows = list(csv.DictReader(history.open()))
    if not rows or "epoch_seconds" not in rows[-1]:
        return None
    return round(steps * run_batch_size(run_dir, batch_size) / float(rows[-1]["epoch_seconds"]), 1)


def measure(checkout: Path, task: str, data: Path, folder: Path, steps: int, batch_size: int, cache: Path,
            validation_steps: int = 20) -> dict:
    """``validation_steps``: 0 for a checkout without ``train.validation_steps`` (it validates whole)."""
    env = child_env(checkout, cache)
    python, extra = sys.executable, TASKS[task].args
    run_dir = folder / "run"
    shutil.rmtree(cache, ignore_errors=True)
    cold = run_child(train_argv(python, task, data, run_dir, steps, 2, validation_steps, extra), env, checkout)
    rate = steady_rate(run_dir, batch_size, steps)
    first = run_child(train_argv(python, task, data, run_dir, 1, 1, validation_steps, extra), env, checkout)  # cached
    return {"cold": cold, "first_step": first, "examples_per_second": rate}


def prepare_folder(task: str, data: Path, folder: Path, steps: int, cache: Path) -> dict:
    """``prepare TASK --data DATA`` (one epoch of ``steps`` batches, TensorFlow) in a child: its wall time and
    peak memory, the folder's size in MB (training and validation shards apart) and its shard files."""
    out_dir = folder / f"prepared-{task}"
    argv = [sys.executable, "-m", "seqapps", "prepare", task, "--data", str(data), "--out", str(out_dir),
            "--epochs", "1", "--set", f"train.steps_per_epoch={steps}", "--backend", "tensorflow",
            *TASKS[task].args, "--overwrite"]
    out = run_child(argv, child_env(ROOT, cache), ROOT)
    files = [p for p in out_dir.rglob("*") if p.is_file()] if out_dir.is_dir() else []
    shards = [p for p in files if p.suffix == ".npz"]

    def mb(paths):
        return round(sum(p.stat().st_size for p in paths) / 1e6, 2)

    figures = {"code": out["code"], "seconds": out["seconds"], "peak_mb": out["peak_mb"], "steps": steps,
               "folder_mb": mb(files), "train_mb": mb([p for p in shards if p.name.startswith("train-")]),
               "val_mb": mb([p for p in shards if p.name.startswith("val-")]), "shards": len(shards),
               "tail": out["tail"]}
    shutil.rmtree(out_dir, ignore_errors=True)
    return figures


def per_task(items: list[str], tasks: list[str], what: str) -> dict:
    """``TASK=VALUE`` items as ``{task: value}``; a plain ``VALUE`` item is every task's."""
    out = {}
    for item in items:
        task, sep, value = item.partition("=")
        if not sep:
            out.update({t: item for t in tasks})
        elif task not in TASKS:
            raise SystemExit(f"{what}: unknown task {task!r} (tasks: {', '.join(TASKS)})")
        else:
            out[task] = value
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tasks", default="sentiment", help=f"comma-separated, of: {', '.join(TASKS)}; or all")
    p.add_argument("--sizes", action="append", default=[], metavar="TASK=N,N,...",
                   help="a task's sizes (in its unit: rows, pairs, characters, sentences, caption rows, videos) "
                        "instead of its three defaults; repeatable")
    p.add_argument("--steps", type=int, default=30, help="training steps per epoch of each run")
    p.add_argument("--batch-size", type=int, help="the batch size for examples/s when a run has no config.json "
                                                   "(default: the task's)")
    p.add_argument("--against", type=Path, help="another checkout, for every task: its memory at the smallest size "
                                                "and the speed comparison beside this one")
    p.add_argument("--against-for", action="append", default=[], metavar="TASK=DIR",
                   help="another checkout for one task (over --against); repeatable")
    p.add_argument("--against-sizes", action="append", default=[], metavar="[TASK=]N,N,...",
                   help="sizes the other checkout also trains at (default: each task's smallest; a checkout "
                        "that reads whole files is killed at large sizes); repeatable")
    p.add_argument("--speed-steps", type=int, default=100, help="batches per epoch of the speed comparison")
    p.add_argument("--rounds", type=int, default=3, help="rounds of the speed comparison")
    p.add_argument("--speed-tasks", default="",
                   help="tasks whose speed is compared with their other checkout (default: every task that has one)")
    p.add_argument("--prepare-sizes", action="append", default=[], metavar="[TASK=]N",
                   help="the sizes `prepare` writes a folder from (default: each task's middle size; 0: none)")
    p.add_argument("--prepare-steps", type=int, help="batches the prepared folder holds (default: --steps)")
    p.add_argument("--json", type=Path)
    p.add_argument("--keep", type=Path, help="write the generated data here and keep it")
    p.add_argument("--plot", type=Path, help="draw peak memory and time against size into this PNG")
    p.add_argument("--from-json", type=Path, help="report (and --plot) a run saved by --json, running nothing")
    args = p.parse_args(argv)
    if args.from_json:
        results = json.loads(args.from_json.read_text())
        report(results)
        if args.plot:
            plot(results, args.plot)
        return 0
    tasks = list(TASKS) if args.tasks == "all" else args.tasks.split(",")
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        p.error(f"unknown task(s) {', '.join(unknown)}; tasks: {', '.join(TASKS)}")
    asked = per_task(args.sizes, tasks, "--sizes")
    sizes = {t: [int(n) for n in asked[t].split(",")] if t in asked else list(TASKS[t].sizes) for t in tasks}
    against = {t: args.against for t in tasks if args.against}
    against.update({t: Path(d) for t, d in per_task(args.against_for, tasks, "--against-for").items()})
    against = {t: d.resolve() for t, d in against.items() if t in tasks}
    missing = [str(d) for d in against.values() if not (d / "seqapps").is_dir()]
    if missing:
        p.error(f"not a checkout of this project: {', '.join(sorted(set(missing)))}")
    against_sizes = per_task(args.against_sizes, tasks, "--against-sizes")
    against_sizes = {t: [int(n) for n in against_sizes[t].split(",")] if t in against_sizes else [min(sizes[t])]
                     for t in tasks}
    prepare_sizes = per_task(args.prepare_sizes, tasks, "--prepare-sizes")
    prepare_sizes = {t: [int(n) for n in prepare_sizes[t].split(",")] if t in prepare_sizes
                     else [sorted(sizes[t])[len(sizes[t]) // 2]] for t in tasks}
    speed_tasks = args.speed_tasks.split(",") if args.speed_tasks else list(against)
    results = {"date": time.strftime("%Y-%m-%d"), "commit": _commit(ROOT), "machine": _machine(), "steps": args.steps,
               "args": {t: list(TASKS[t].args) for t in tasks if TASKS[t].args},
               "units": {t: TASKS[t].unit for t in tasks},
               "against": {t: f"{d} ({_commit(d)})" for t, d in against.items()}, "runs": [], "prepared": []}
    folder = args.keep or Path(tempfile.mkdtemp(prefix="seqapps-scale-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        for task in tasks:
            batch_size = args.batch_size or TASKS[task].batch_size
            for rows in sizes[task]:
                started = time.time()
                data = resample(task, rows, folder)
                size_mb = data_mb(data)
                print(json.dumps({"task": task, "rows": rows, "wrote": str(data), "mb": size_mb,
                                  "seconds": round(time.time() - started, 1)}), flush=True)
                checkouts = [("this", ROOT)]
                if task in against and rows in against_sizes[task]:
                    checkouts.append(("against", against[task]))
                for name, checkout in checkouts:
                    figures = measure(checkout, task, data, folder / name, args.steps, batch_size,
                                      folder / f"cache-{name}", 20 if knows_validation_steps(checkout) else 0)
                    row = {"task": task, "rows": rows, "checkout": name, "file_mb": size_mb, **figures}
                    results["runs"].append(row)
                    print(json.dumps(_brief(row), default=str), flush=True)
                    if name == "this" and rows in prepare_sizes[task]:
                        prepared = {"task": task, "rows": rows, "file_mb": row["file_mb"],
                                    **prepare_folder(task, data, folder, args.prepare_steps or args.steps,
                                                     folder / f"cache-{name}")}
                        results["prepared"].append(prepared)
                        print(json.dumps(_brief(prepared)), flush=True)
                if args.keep is None:  # the data of one size at a time on disk
                    (shutil.rmtree if data.is_dir() else Path.unlink)(data)
            if task in against and task in speed_tasks:
                results.setdefault("speed", []).append(
                    speed([("this", ROOT), ("against", against[task])], task, folder, args.speed_steps, args.rounds))
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)
    report(results)
    if args.plot:
        plot(results, args.plot)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


def _brief(row: dict) -> dict:
    """``row`` without the children's output."""
    return {k: ({kk: vv for kk, vv in v.items() if kk != "tail"} if isinstance(v, dict) else v)
            for k, v in row.items() if k != "tail"}


def report(results: dict) -> None:
    for sp in results.get("speed", []):
        print(f"{sp['task']} on {sp['data']} by name, steady examples/s (median of {len(sp['rates']['this'])} "
              f"rounds of {sp['steps']} batches): this {sp['median']['this']}, against {sp['median']['against']}"
              f"{' (' + sp['against'] + ')' if sp.get('against') else ''}, ratio {sp['ratio']} "
              f"({'met' if sp['ratio'] and sp['ratio'] >= 0.95 else 'not met'}: >= 0.95)")
    print(f"\n{results['date']} commit {results['commit']} on {results['machine']}")
    for task, extra in results.get("args", {}).items():
        print(f"{task} trains on the written data with: {' '.join(extra)}")
    for task, checkout in results.get("against", {}).items():
        print(f"{task} against {checkout}")
    units = results.get("units", {})
    print(f"{'task':<12} {'size':>13} {'unit':<12} {'file MB':>9} {'peak MB cold':>13} {'peak MB cached':>15} "
          f"{'cold s':>7} {'first step s (cached)':>22} {'examples/s':>11} exit")
    for r in results["runs"]:
        print(f"{r['task']:<12} {r['rows']:>13,} {units.get(r['task'], 'rows'):<12} {r['file_mb']:>9} "
              f"{r['cold']['peak_mb']:>13} {r['first_step']['peak_mb']:>15} {r['cold']['seconds']:>7} "
              f"{r['first_step']['seconds']:>22} {r['examples_per_second'] or '-':>11} "
              f"{r['cold']['code']},{r['first_step']['code']}  {r['checkout']}")
    if results.get("prepared"):
        print("\nprepare (one epoch, TensorFlow, fitting pass cached)")
        print(f"{'task':<12} {'size':>13} {'file MB':>8} {'batches':>8} {'write s':>8} {'peak MB':>8} "
              f"{'folder MB':>10} {'train MB':>9} {'val MB':>7} {'shards':>7} {'exit':>5}")
        for r in results["prepared"]:
            print(f"{r['task']:<12} {r['rows']:>13,} {r['file_mb']:>8} {r['steps']:>8} {r['seconds']:>8} "
                  f"{r['peak_mb']:>8} {r['folder_mb']:>10} {r['train_mb']:>9} {r['val_mb']:>7} {r['shards']:>7} "
                  f"{r['code']:>5}")
    for task in dict.fromkeys(r["task"] for r in results["runs"]):
        mine = [r for r in results["runs"] if r["task"] == task and r["checkout"] == "this"]
        if len(mine) < 2:
            continue
        small, large = mine[0], mine[-1]
        ratio = max(large["cold"]["peak_mb"], large["first_step"]["peak_mb"]) / max(
            small["cold"]["peak_mb"], small["first_step"]["peak_mb"])
        ok = all(r[k]["code"] == 0 for r in mine for k in ("cold", "first_step"))
        unit = units.get(task, "rows")
        print(f"{task}: peak memory {large['rows']:,} / {small['rows']:,} {unit} = {ratio:.3f} "
              f"({'met' if ratio <= 1.15 else 'not met'}: <= 1.15); every size trained: {'yes' if ok else 'no'}; "
              f"first step at {large['rows']:,} {unit}, cached: {large['first_step']['seconds']} s "
              f"({'met' if large['first_step']['seconds'] <= 60 else 'not met'}: <= 60 s)")


def plot(results: dict, out: Path) -> None:
    """Per task, two panels side by side (two tasks a row): peak memory (cold: with the fitting pass; cached;
    the other checkout's) and wall times against the data's size."""
    import math

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(dict.fromkeys(r["task"] for r in results["runs"]))
    per_row = 1 if len(tasks) == 1 else 2
    rows = math.ceil(len(tasks) / per_row)
    fig, axes = plt.subplots(rows, 2 * per_row, figsize=(11 * per_row, 3 * rows + 0.5), squeeze=False)
    for k, task in enumerate(tasks):
        mem, sec = axes[k // per_row][2 * (k % per_row)], axes[k // per_row][2 * (k % per_row) + 1]
        runs = [r for r in results["runs"] if r["task"] == task and r["checkout"] == "this"]
        size = [r["file_mb"] for r in runs]
        mem.plot(size, [r["cold"]["peak_mb"] for r in runs], "o-", label="cold")
        mem.plot(size, [r["first_step"]["peak_mb"] for r in runs], "s--", label="pass cached")
        theirs = [r for r in results["runs"] if r["task"] == task and r["checkout"] == "against"]
        if theirs:
            mem.plot([r["file_mb"] for r in theirs], [r["cold"]["peak_mb"] for r in theirs], "x", ms=9,
                     label="other checkout, cold")
        sec.plot(size, [r["cold"]["seconds"] for r in runs], "o-", label="cold run")
        sec.plot(size, [r["first_step"]["seconds"] for r in runs], "s--", label="to the first step, cached")
        for ax, ylabel in ((mem, "peak memory (MB)"), (sec, "wall seconds")):
            ax.set_xscale("log")
            ax.set_xlabel("training data (MB)", fontsize=8)
            ax.set_ylabel(ylabel, fontsize=8)
            ax.set_title(task, fontsize=9, loc="left")
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=7)
        mem.set_ylim(bottom=0)
    for k in range(len(tasks), rows * per_row):  # an odd number of tasks leaves two panels empty
        axes[k // per_row][2 * (k % per_row)].set_visible(False)
        axes[k // per_row][2 * (k % per_row) + 1].set_visible(False)
    fig.suptitle(f"benchmarks/scale.py, {results['date']}, {results['commit']}, {results['machine']}", fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 0.97 if rows > 1 else 0.94))
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

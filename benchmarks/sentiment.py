"""SST-2 sentiment benchmark (protocol: ../shared/datasets/README.md).

Train on train.tsv, pick the checkpoint on dev.tsv, report accuracy on test.tsv, for
seqapps' default configuration with LSTM, GRU and SimpleRNN cells and its one-to-one
bag-of-words baseline (the ``bag`` preset: ``model.architecture=bag`` over the defaults),
side by side with a TF-IDF + logistic-regression baseline and the plain
Keras script a user would write by hand (TextVectorization -> Embedding(20000, 128) ->
Bidirectional(LSTM(128)) -> Dropout(0.5) -> Dense, Adam, batch 64, best epoch by dev).
Then the exported LSTM model's speed is measured in a separate process. Beside the
table, the best dev accuracy each system reached within a few training-time budgets.

    SEQAPPS_DATA=../shared/datasets python benchmarks/sentiment.py
    SEQAPPS_DATA=../shared/datasets python benchmarks/sentiment.py --skip seqapps,speed   # the peers and the bags

Writes benchmarks/out/sentiment/results.json and prints a Markdown summary.
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

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import seqapps  # noqa: E402
import seqapps.training.fit  # noqa: E402,F401  (imported now: the whole run uses the code as it was at its start)
from seqapps.core import registry  # noqa: E402
from tasks.sentiment.data import load_labelled_texts  # noqa: E402


class TrainTimer(keras.callbacks.Callback):
    """Seconds spent in training steps per epoch (validation excluded)."""

    def __init__(self):
        super().__init__()
        self.seconds, self._start = [], None

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_test_begin(self, logs=None):
        if self._start is not None:
            self.seconds.append(time.perf_counter() - self._start)
            self._start = None

    def on_epoch_end(self, epoch, logs=None):
        self.on_test_begin()


def tfidf_baseline(train, dev, test):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    start = time.perf_counter()
    vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1)
    x_train = vec.fit_transform(train[0])
    best = None
    for c in [0.5, 1, 2, 4, 8, 16]:
        clf = LogisticRegression(C=c, max_iter=2000).fit(x_train, train[1])
        dev_acc = float(np.mean(clf.predict(vec.transform(dev[0])) == np.array(dev[1])))
        if best is None or dev_acc > best[0]:
            best = (dev_acc, c, clf)
    test_acc = float(np.mean(best[2].predict(vec.transform(test[0])) == np.array(test[1])))
    return {"dev_accuracy": best[0], "test_accuracy": test_acc, "C": best[1],
            "seconds": round(time.perf_counter() - start, 1)}


def plain_keras(train, dev, test, epochs: int):
    """The hand-written script, as a user without seqapps would write it."""
    keras.utils.set_random_seed(1)
    to_int = lambda labels: np.array([1 if y == "positive" else 0 for y in labels])  # noqa: E731
    vectorize = keras.layers.TextVectorization(max_tokens=20000)
    vectorize.adapt(tf.data.Dataset.from_tensor_slices(train[0]).batch(1024))

    def dataset(texts, labels, shuffle):
        ds = tf.data.Dataset.from_tensor_slices((texts, to_int(labels)))
        if shuffle:
            ds = ds.shuffle(len(texts), seed=1)
        return ds.batch(64).map(lambda x, y: (vectorize(x), y)).prefetch(tf.data.AUTOTUNE)

    model = keras.Sequential([
        keras.Input((None,), dtype="int64"),
        keras.layers.Embedding(20000, 128),
        keras.layers.Bidirectional(keras.layers.LSTM(128)),
        keras.layers.Dropout(0.5),
        keras.layers.Dense(1, activation="sigmoid"),
    ])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    train_ds, dev_ds, test_ds = dataset(*train, True), dataset(*dev, False), dataset(*test, False)
    epochs_out = []
    for epoch in range(epochs):
        start = time.perf_counter()
        model.fit(train_ds, epochs=1, verbose=2)
        seconds = time.perf_counter() - start
        epochs_out.append({"epoch": epoch + 1, "seconds": round(seconds, 1),
                           "dev_accuracy": float(model.evaluate(dev_ds, verbose=0)[1]),
                           "test_accuracy": float(model.evaluate(test_ds, verbose=0)[1])})
        print("plain keras", epochs_out[-1], flush=True)
    best = max(epochs_out, key=lambda e: e["dev_accuracy"])
    per_epoch = float(np.mean([e["seconds"] for e in epochs_out]))
    return {"epochs": epochs_out, "best_epoch": best["epoch"], "dev_accuracy": best["dev_accuracy"],
            "test_accuracy": best["test_accuracy"], "seconds_per_epoch": round(per_epoch, 1),
            "examples_per_second": round(len(train[0]) / per_epoch, 1)}


#: the bag-of-words rows: results key -> (overrides, preset), each trained by name on sst2
BAGS = {"seqapps_bag": ([], "bag")}


def seqapps_run(name: str, out: Path, n_train: int, epochs: int | None, overrides=(), preset=None):
    timer = TrainTimer()
    start = time.perf_counter()
    run = seqapps.train("sentiment", "sst2", epochs=epochs, overrides=list(overrides), preset=preset,
                        run_dir=out / name, overwrite=True, verbose=2, callbacks=[timer])
    wall = time.perf_counter() - start
    cfg = run.config
    passes = len(timer.seconds) * (cfg.train.steps_per_epoch * cfg.train.batch_size / n_train
                                   if cfg.train.steps_per_epoch else 1.0)
    train_seconds = float(sum(timer.seconds))
    import pandas as pd

    history = pd.read_csv(run.history_path)
    return {"dev_accuracy": run.metrics["val"]["accuracy"], "test_accuracy": run.metrics["test"]["accuracy"],
            "epochs_run": len(timer.seconds), "best_epoch": int(history["val_accuracy"].idxmax()) + 1,
            "seconds_per_epoch": round(train_seconds / passes, 1),
            "examples_per_second": round(n_train * passes / train_seconds, 1),
            "wall_seconds": round(wall, 1), "run_dir": str(run.dir), "overrides": list(overrides), "preset": preset,
            "curve": [{"train_seconds": round(float(sum(timer.seconds[:i + 1])), 1), "dev_accuracy": float(acc)}
                      for i, acc in enumerate(history["val_accuracy"][:len(timer.seconds)])]}


#: the levers of the unlabeled-text table: name -> (what it is, overrides over the sst2 preset; {vectors} and
#: {lm} are the pretraining runs' folders)
LEVERS = {"baseline": ("the sst2 preset (embedding learned from SST-2's labels only)", ()),
          "vectors": ("+ skip-gram vectors trained on English text, fine-tuned",
                      ("model.word_vectors={vectors}", "model.word_vectors_trainable=true")),
          "pretrained": ("+ the encoder started from a bidirectional word-level LM", ("model.encoder_from={lm}",))}
#: the pretraining runs (word_vectors task by name): key -> (dataset, preset, epochs). The text is SST-2's
#: training sentences (and, for the vectors, Tiny Shakespeare and Anki's English side); never a dev or test
#: split. One epoch each, not their presets' 5, to fit the 2-core budget: an epoch of the vectors is about 8
#: minutes here (3.3M words), and one of the language model about 15; SST-2's 67k training lines are the
#: phrases of 6.9k sentences, so one epoch reads each sentence about ten times.
PRETRAIN = {"vectors": ("sst2+tinyshakespeare+anki_fra_eng", "text", 1), "lm": ("sst2", "lm", 1)}


def pretrain(out: Path, key: str) -> dict:
    data, preset, epochs = PRETRAIN[key]
    start = time.perf_counter()
    run = seqapps.train("word_vectors", data, preset=preset, epochs=epochs, run_dir=out / key, overwrite=True,
                        verbose=2)
    return {"command": f"python -m seqapps train word_vectors --data {data} --preset {preset}"
                       + (f" --epochs {epochs}" if epochs else ""),
            "run_dir": str(run.dir), "wall_seconds": round(time.perf_counter() - start, 1),
            "val_loss": run.metrics.get("val", {}).get("loss")}


def levers(results: dict, out: Path, n_train: int, epochs, seeds) -> None:
    """Each lever on its own over the sst2 preset, the same seeds: results["levers"][name][seed]."""
    table = results.setdefault("levers", {})
    runs = results.setdefault("pretraining", {})
    for key in PRETRAIN:
        if key not in runs or not Path(runs[key]["run_dir"]).exists():
            runs[key] = pretrain(out / "levers", key)
            print("pretraining", key, runs[key], flush=True)
            (out / "results.json").write_text(json.dumps(results, indent=2))
    paths = {key: runs[key]["run_dir"] for key in PRETRAIN}
    for name, (_, overrides) in LEVERS.items():
        for seed in seeds:
            if str(seed) in table.get(name, {}):
                continue
            sets = [o.format(**paths) for o in overrides] + [f"train.seed={seed}"]
            table.setdefault(name, {})[str(seed)] = seqapps_run(f"levers/{name}-{seed}", out, n_train, epochs, sets)
            print("lever", name, seed, table[name][str(seed)]["test_accuracy"], flush=True)
            (out / "results.json").write_text(json.dumps(results, indent=2))


def lever_table(r) -> list[str]:
    if not r.get("levers"):
        return []
    lines = ["", "unlabeled-text levers (sst2 preset, each lever on its own, the same seeds):", "",
             "| run | test accuracy per seed | mean ± sd | dev mean | train s (mean) | - baseline |",
             "|---|---|---|---|---|---|"]
    base = None
    for name, (what, _) in LEVERS.items():
        runs = r["levers"].get(name, {})
        if not runs:
            continue
        test = np.array([v["test_accuracy"] for v in runs.values()])
        dev = np.array([v["dev_accuracy"] for v in runs.values()])
        seconds = np.mean([v["curve"][-1]["train_seconds"] for v in runs.values()])
        base = test.mean() if name == "baseline" else base
        delta = f"{test.mean() - base:+.4f}" if base is not None and name != "baseline" else ""
        lines.append(f"| {name}: {what} | {', '.join(f'{x:.4f}' for x in test)} (seeds {', '.join(runs)}) | "
                     f"{test.mean():.4f} ± {test.std(ddof=1) if len(test) > 1 else 0:.4f} | {dev.mean():.4f} | "
                     f"{seconds:.1f} | {delta} |")
    for key, run in r.get("pretraining", {}).items():
        lines.append(f"\npretraining {key}: `{run['command']}`, {run['wall_seconds']} s")
    return lines


SPEED = r"""
import json, sys, time, numpy as np, tensorflow as tf
path, texts = sys.argv[1], json.load(open(sys.argv[2]))
serve = tf.saved_model.load(path).signatures["serving_default"]
for t in texts[:20]:
    serve(text=tf.constant([t]))
lat = []
for i in range(300):
    t0 = time.perf_counter(); serve(text=tf.constant([texts[i % len(texts)]])); lat.append(time.perf_counter() - t0)
batch = tf.constant((texts * 2)[:256])
serve(text=batch)
t0, n = time.perf_counter(), 0
while time.perf_counter() - t0 < 10:
    serve(text=batch); n += 256
print(json.dumps({"p50_ms_batch1": 1000 * float(np.percentile(lat, 50)), "p95_ms_batch1": 1000 * float(np.percentile(lat, 95)),
                  "sentences_per_second_batch256": n / (time.perf_counter() - t0)}))
"""


def export_speed(run_dir: str, out: Path, texts):
    from seqapps.inference.trained import TrainedRun as Run

    export_dir = Run(Path(run_dir).resolve()).export(out / "export")
    (out / "texts.json").write_text(json.dumps(texts))
    (out / "speed.py").write_text(SPEED)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, str(out / "speed.py"), str(export_dir), str(out / "texts.json")],
                          capture_output=True, text=True, env=env, cwd=out, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", default="lstm,gru,rnn")
    parser.add_argument("--epochs", type=int, help="override the default train.epochs")
    parser.add_argument("--plain-epochs", type=int, default=3)
    parser.add_argument("--skip", default="",
                        help="comma list of parts to skip: tfidf,plain,seqapps,bag,speed,levers")
    parser.add_argument("--seeds", default="1,2,3", help="the levers' seeds")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "out" / "sentiment"))
    parser.add_argument("--reuse", action="store_true", help="keep the parts already in OUT/results.json")
    args = parser.parse_args()
    out, skip = Path(args.out).resolve(), set(filter(None, args.skip.split(",")))
    out.mkdir(parents=True, exist_ok=True)
    cfg = registry.get("sentiment").default_config()
    cfg.data.source = "sst2"
    splits = load_labelled_texts(cfg.data, "sentiment")
    train, dev, test = splits.train, splits.val, splits.test
    started = time.perf_counter()
    results = {"date": time.strftime("%Y-%m-%d"), "machine": f"{os.cpu_count()} CPU cores {platform.machine()}",
               "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                        cwd=ROOT).stdout.strip(), "command": " ".join(sys.argv)}
    if args.reuse and (out / "results.json").exists():
        results = {**json.loads((out / "results.json").read_text()), **{k: results[k] for k in ("command",)}}
    if "tfidf" not in skip:
        results["tfidf_logreg"] = tfidf_baseline(train, dev, test)
        print("tfidf", results["tfidf_logreg"], flush=True)
    if "bag" not in skip:
        for key, (overrides, preset) in BAGS.items():
            if key in results:
                continue
            results[key] = seqapps_run(key.removeprefix("seqapps_"), out, len(train[0]), args.epochs, overrides,
                                       preset)
            print(key, results[key], flush=True)
            (out / "results.json").write_text(json.dumps(results, indent=2))
    if "plain" not in skip:
        results["plain_keras"] = plain_keras(train, dev, test, args.plain_epochs)
    if "seqapps" not in skip:
        for cell in args.cells.split(","):
            if f"seqapps_{cell}" in results:
                continue
            results[f"seqapps_{cell}"] = seqapps_run(cell, out, len(train[0]), args.epochs, [f"model.cell={cell}"])
            print(cell, results[f"seqapps_{cell}"], flush=True)
            (out / "results.json").write_text(json.dumps(results, indent=2))
    if "levers" not in skip:
        levers(results, out, len(train[0]), args.epochs, [int(x) for x in args.seeds.split(",")])
    if "speed" not in skip and "seqapps_lstm" in results:
        results["export_speed"] = export_speed(results["seqapps_lstm"]["run_dir"], out, test[0])
    results["wall_seconds"] = round(time.perf_counter() - started, 1)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    print(summary(results))


def curves(r) -> dict:
    """System -> [(training seconds so far, dev accuracy, test accuracy or None)], one point per epoch
    (TF-IDF: one point, its whole fit and C search)."""
    out = {}
    if "tfidf_logreg" in r:
        t = r["tfidf_logreg"]
        out["TF-IDF + logistic regression"] = [(t["seconds"], t["dev_accuracy"], t["test_accuracy"])]
    if "plain_keras" in r:
        total, points = 0.0, []
        for e in r["plain_keras"]["epochs"]:
            total += e["seconds"]
            points.append((round(total, 1), e["dev_accuracy"], e["test_accuracy"]))
        out["plain Keras BiLSTM"] = points
    names = {"seqapps_lstm": "seqapps default (BiLSTM)", "seqapps_gru": "seqapps GRU", "seqapps_rnn": "seqapps SimpleRNN",
             "seqapps_bag": "seqapps bag (--preset bag)"}
    for key, name in names.items():
        if key in r and r[key].get("curve"):
            s, best = r[key], r[key]["best_epoch"] - 1
            out[name] = [(c["train_seconds"], c["dev_accuracy"], s["test_accuracy"] if i == best else None)
                         for i, c in enumerate(s["curve"])]
    return out


def budgets(r, limits=(30, 60, 120, 300, 600, 1200)) -> list[str]:
    """Per training-time budget: each system's best dev accuracy among the epochs it finished within
    the budget (the test accuracy of that epoch where the run measured it), and which is ahead."""
    points = curves(r)
    if len(points) < 2:
        return []
    lines = ["", "best dev accuracy within a training-time budget (training steps only; test accuracy of that "
             "epoch in brackets where measured):", "",
             "| budget | " + " | ".join(points) + " | ahead on dev |", "|---" * (len(points) + 2) + "|"]
    for limit in limits:
        cells, best = [], None
        for name, curve in points.items():
            done = [p for p in curve if p[0] <= limit]
            if not done:
                cells.append("-")
                continue
            seconds, dev, test = max(done, key=lambda p: p[1])
            cells.append(f"{dev:.4f}" + (f" ({test:.4f})" if test is not None else "") + f" at {seconds:.0f} s")
            if best is None or dev > best[1]:
                best = (name, dev)
        lines.append(f"| {limit} s | " + " | ".join(cells) + f" | {best[0] if best else '-'} |")
    return lines


def summary(r) -> str:
    lines = ["| system | dev acc | test acc | s/epoch | train examples/s |", "|---|---|---|---|---|"]
    if "tfidf_logreg" in r:
        t = r["tfidf_logreg"]
        lines.append(f"| TF-IDF (1-2 grams) + logistic regression, C={t['C']} | {t['dev_accuracy']:.4f} | "
                     f"{t['test_accuracy']:.4f} | {t['seconds']} s total | - |")
    if "plain_keras" in r:
        p = r["plain_keras"]
        lines.append(f"| plain Keras BiLSTM(128), best epoch {p['best_epoch']} | {p['dev_accuracy']:.4f} | "
                     f"{p['test_accuracy']:.4f} | {p['seconds_per_epoch']} | {p['examples_per_second']} |")
    for cell in ("lstm", "gru", "rnn"):
        if f"seqapps_{cell}" in r:
            s = r[f"seqapps_{cell}"]
            lines.append(f"| seqapps sentiment, cell={cell}, best epoch {s['best_epoch']}/{s['epochs_run']} | "
                         f"{s['dev_accuracy']:.4f} | {s['test_accuracy']:.4f} | {s['seconds_per_epoch']} | "
                         f"{s['examples_per_second']} |")
    for key, label in (("seqapps_bag", "seqapps sentiment, --preset bag"),):
        if key in r:
            s = r[key]
            lines.append(f"| {label}, best epoch {s['best_epoch']}/{s['epochs_run']} | {s['dev_accuracy']:.4f} | "
                         f"{s['test_accuracy']:.4f} | {s['seconds_per_epoch']} | {s['examples_per_second']} |")
    lines += budgets(r)
    lines += lever_table(r)
    if "plain_keras" in r and "seqapps_lstm" in r:
        p, s = r["plain_keras"], r["seqapps_lstm"]
        lines.append(f"\nseqapps LSTM / plain Keras: accuracy ratio {s['test_accuracy'] / p['test_accuracy']:.3f}, "
                     f"throughput ratio {s['examples_per_second'] / p['examples_per_second']:.2f}")
    if "export_speed" in r:
        e = r["export_speed"]
        lines.append(f"\nexport (separate process): batch 1 p50 {e['p50_ms_batch1']:.2f} ms, p95 "
                     f"{e['p95_ms_batch1']:.2f} ms; batch 256: {e['sentences_per_second_batch256']:.0f} sentences/s")
    lines.append(f"\nwall time {r.get('wall_seconds')} s, {r['machine']}, commit {r['commit']}, {r['date']}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()

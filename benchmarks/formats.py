"""Export formats side by side: SavedModel, ONNX fp32/int8/float16 and LiteRT fp32/int8 of one run.

    python benchmarks/formats.py --run runs/sentiment-sst2 [--data sst2] [--rounds 3] [--out DIR]
    python benchmarks/formats.py --run runs/pos-ewt --formats savedmodel,onnx-fp32,onnx-int8
    python benchmarks/formats.py --run runs/char_lm-shakespeare --formats savedmodel,onnx-fp32,onnx-int8
    python benchmarks/formats.py --run runs/translation-fr-en --formats savedmodel,onnx-fp32,onnx-int8
    python benchmarks/formats.py --run runs/forecasting-airline
    python benchmarks/formats.py --run runs/captioning-flickr8k --limit 100

Exports the run in each format (timed), then loads each export in its own child process
(``seqapps.load(export)``; the ONNX and LiteRT children block TensorFlow and Keras imports) and measures:

- size: the whole export folder, and the model file alone (``saved_model.pb`` + variables,
  ``model.onnx`` (with translation's ``encoder.onnx``) or ``model.tflite``);
- quality on the split and the answers against the SavedModel's, per task: sentiment's accuracy,
  the largest probability difference and the share of labels that differ; pos' tag (UPOS) accuracy
  over the split's tokens (``analyze`` on its token lists) and the share of tags that differ;
  char_lm's nats per character of the split's text (``score`` with ``data.eval_streams`` streams)
  and its difference from the SavedModel's; translation's corpus BLEU (sacrebleu, as its ``evaluate``
  scores: :func:`seqapps.analysis.metrics.bleu_chrf`) of greedy and beam-4 translations and the
  share of strings that differ from the SavedModel's (greedy and beam 4); captioning's BLEU-4 and CIDEr-D
  (:func:`seqapps.analysis.metrics.caption_report`, as its ``evaluate`` scores them) of greedy and beam
  captions (the export's width) and the share that differ from the SavedModel's; forecasting's MAE over the
  split's windows (``predict``, in the target's units) and the largest forecast difference;
- single-input latency: one input end to end (tokenizing included), ``--calls`` calls per round
  over the split's inputs: p50 and p99 over all rounds, and the single-input throughput (calls per
  second, the median of the rounds). An input is a text (sentiment ``predict``), a token list (pos
  ``analyze``), a piece of ``--piece`` characters of the text (char_lm's ``score`` signature) or a
  source sentence (translation's ``translate`` with the export's default decoding) or an image file
  (captioning's ``caption``, beam search of the export's width) or a window
  (forecasting's ``predict``);
- throughput at batch 64: consecutive batches of 64 inputs for ``--seconds`` per round, inputs per
  second (the median of the rounds).

The children stay up and take turns, round by round, so a busy spell of a shared machine falls
on every format alike. The SavedModel runs with TensorFlow's default thread pools, ONNX Runtime
with one thread per call (seqapps' default, :data:`seqapps.inference.onnx_runtime.THREADS`), LiteRT
with one interpreter thread and one graph call per input (:mod:`seqapps.inference.litert`).
The table is printed and everything written to ``OUT/formats.json``.
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

FORMATS = [("savedmodel", "savedmodel", "none"), ("onnx-fp32", "onnx", "none"), ("onnx-int8", "onnx", "int8"),
           ("onnx-fp16", "onnx", "float16"), ("litert-fp32", "litert", "none"), ("litert-int8", "litert", "int8")]


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def model_bytes(path: Path) -> int:
    path = Path(path)
    if (path / "model.onnx").is_file():  # every graph (translation: encoder.onnx beside it)
        return sum(f.stat().st_size for f in path.glob("*.onnx"))
    if (path / "model.tflite").is_file():  # every graph (translation: encoder.tflite beside it)
        return sum(f.stat().st_size for f in path.glob("*.tflite"))
    return (path / "saved_model.pb").stat().st_size + folder_bytes(path / "variables")


CHILD = r"""
import json, sys, time
import numpy as np
args = json.loads(sys.argv[1])
if args["format"] != "savedmodel":
    class NoTensorFlow:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("tensorflow", "keras"):
                raise ImportError(f"{name} is blocked in this process")
    sys.meta_path.insert(0, NoTensorFlow())
import seqapps
t0 = time.perf_counter()
predictor = seqapps.load(args["export"])
load_s = time.perf_counter() - t0
data = json.loads(open(args["data"]).read())
task, items = data["task"], data["items"]
if data.get("bytes"):  # captioning images held as bytes (latin-1 text in the JSON)
    items = [x.encode("latin-1") for x in items]
t0 = time.perf_counter()
if task == "sentiment":
    def run(batch):
        return predictor.predict(batch)
    results = [r for start in range(0, len(items), 256) for r in run(items[start:start + 256])]
    quality = float(np.mean([r["label"] == g for r, g in zip(results, data["gold"])]))
    answers = [[r["probabilities"][k] for k in predictor.metadata["labels"]] for r in results]
elif task == "pos":
    def run(batch):
        return predictor.analyze(batch)
    results = [r for start in range(0, len(items), 256) for r in run(items[start:start + 256])]
    pairs = [(t, g) for r, gold in zip(results, data["gold"]) for t, g in zip(r["tags"], gold)]
    quality = float(np.mean([t == g for t, g in pairs]))
    answers = [r["tags"] for r in results]
elif task == "translation":  # greedy and beam 4 scored; timed with the export's default decoding
    def run(batch):
        return predictor.translate(batch)
    answers = {f"beam{b}": [h for start in range(0, len(items), 64)
                            for h in predictor.translate(items[start:start + 64], beam=b)] for b in (1, 4)}
    quality = None  # BLEU, in the parent (sacrebleu)
elif task == "captioning":  # greedy and the export's beam scored; timed with beam search (caption's default)
    def run(batch):
        return predictor.caption(batch)
    answers = {f"beam{b}": [r for start in range(0, len(items), 32)
                            for r in predictor.caption(items[start:start + 32], beam=b)]
               for b in sorted({1, predictor.beam_width})}
    failed = [r for rs in answers.values() for r in rs if r["error"]]
    if failed:
        sys.exit(f"{failed[0]['source']}: {failed[0]['error']}")
    answers = {key: [r["caption"] for r in rs] for key, rs in answers.items()}
    quality = None  # BLEU-4 and CIDEr-D, in the parent (the COCO caption evaluation)
elif task == "forecasting":
    def run(batch):
        return predictor.predict(batch)
    answers = [r for start in range(0, len(items), 256) for r in run(items[start:start + 256])]
    quality = float(np.mean(np.abs(np.asarray(answers) - np.asarray(data["gold"]))))
else:  # char_lm: score pieces of the text
    def run(batch):
        return predictor.call("score", text=batch)
    quality = predictor.score(data["text"], streams=data["streams"])["nats_per_char"]
    answers = [quality]
score_s = time.perf_counter() - t0
for t in items[:20]:
    run([t])
batches = [items[i:i + 64] for i in range(0, len(items) - 63, 64)] or [items[:64]]
print(json.dumps({"load_s": load_s, "quality": quality, "score_s": score_s, "answers": answers,
                  "tensorflow_imported": "tensorflow" in sys.modules}), flush=True)
offset = 0
for line in sys.stdin:  # one round per line: single-input calls, then batches of 64 for some seconds
    lat = []
    for i in range(args["calls"]):
        t = items[(offset + i) % len(items)]
        t0 = time.perf_counter()
        run([t])
        lat.append(time.perf_counter() - t0)
    offset += args["calls"]
    t0, n, k = time.perf_counter(), 0, 0
    while time.perf_counter() - t0 < args["seconds"] or n == 0:
        batch = batches[k % len(batches)]
        run(batch)
        n, k = n + len(batch), k + 1
    print(json.dumps({"latencies": lat, "batch64_per_s": n / (time.perf_counter() - t0)}), flush=True)
"""


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", default="runs/sentiment-sst2", help="a trained run directory")
    ap.add_argument("--data", default=None, help="dataset to score on (default: the run's)")
    ap.add_argument("--split", default="test")
    ap.add_argument("--calls", type=int, default=200, help="single-input calls timed per format and round")
    ap.add_argument("--seconds", type=float, default=5.0, help="at least this long at batch 64, per round")
    ap.add_argument("--rounds", type=int, default=3, help="rounds; the formats take turns in each")
    ap.add_argument("--formats", default=",".join(f[0] for f in FORMATS))
    ap.add_argument("--piece", type=int, default=200, help="char_lm: characters per scored input")
    ap.add_argument("--limit", type=int, default=0, help="the split's first N inputs only (0: all)")
    ap.add_argument("--out", default=None, help="folder for the exports and formats.json (default: a temporary one)")
    args = ap.parse_args(argv)

    from seqapps.core.task import whole
    from seqapps.inference.bundle import Bundle
    from seqapps.inference.export import export

    out = Path(args.out or tempfile.mkdtemp(prefix="formats-"))
    out.mkdir(parents=True, exist_ok=True)
    bundle = Bundle(args.run)
    cfg = bundle.config
    if args.data:
        cfg.data.source = args.data
    data = task_data(bundle.task.name, whole(getattr(bundle.task.load_data(cfg), args.split)), cfg, args, bundle.prep)
    data_path = out / "data.json"
    data_path.write_text(json.dumps(data))

    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    rows, children = {}, {}
    wanted = args.formats.split(",")
    for name, fmt, quantize in [f for f in FORMATS if f[0] in wanted]:
        path = out / name
        t0 = time.perf_counter()
        export(bundle, path, fmt, quantize)
        rows[name] = {"export_s": time.perf_counter() - t0, "folder_bytes": folder_bytes(path),
                      "model_bytes": model_bytes(path)}
    for name, fmt, _ in [f for f in FORMATS if f[0] in wanted]:  # started after the exports: nothing else runs
        child = {"format": fmt, "export": str(out / name), "data": str(data_path), "calls": args.calls,
                 "seconds": args.seconds}
        children[name] = subprocess.Popen([sys.executable, "-c", CHILD, json.dumps(child)], env=env, text=True,
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=out)
        rows[name].update(_answer(name, children[name]))
        print(f"{name}: loaded and scored", file=sys.stderr)
    import numpy as np

    rounds = {name: [] for name in rows}
    for r in range(args.rounds):  # the formats take turns, so a busy spell of the machine hits them all
        for name, proc in children.items():
            proc.stdin.write("go\n")
            proc.stdin.flush()
            rounds[name].append(_answer(name, proc))
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    for name, proc in children.items():
        proc.stdin.close()
        proc.wait(timeout=60)
        lat = [x for rd in rounds[name] for x in rd["latencies"]]
        per_round = [len(rd["latencies"]) / sum(rd["latencies"]) for rd in rounds[name]]
        rows[name].update({"p50_ms": 1000 * float(np.percentile(lat, 50)), "p99_ms": 1000 * float(np.percentile(lat, 99)),
                           "single_per_s": float(np.median(per_round)),
                           "batch64_per_s": float(np.median([rd["batch64_per_s"] for rd in rounds[name]]))})


    answers = {name: row.pop("answers") for name, row in rows.items()}
    if bundle.task.name == "translation":
        from seqapps.analysis.metrics import bleu_chrf

        for name, row in rows.items():
            bleu = {key: bleu_chrf(answers[name][key], data["gold"])["bleu"] for key in ("beam1", "beam4")}
            row.update(quality=bleu["beam1"], bleu_greedy=bleu["beam1"], bleu_beam4=bleu["beam4"])
    if bundle.task.name == "captioning":
        from seqapps.analysis.metrics import caption_report

        for name, row in rows.items():
            for key, hyps in answers[name].items():
                report = caption_report(hyps, data["gold"])
                for figure in ("bleu4", "cider_d", "sacrebleu4"):
                    if figure in report:
                        row[f"{figure}_{key}"] = report[figure]
            widest = max(answers[name], key=lambda key: int(key[4:]))
            row["quality"] = row.get(f"cider_d_{widest}", row.get(f"sacrebleu4_{widest}"))
    ref, base = answers.get("savedmodel"), rows.get("savedmodel")
    task = bundle.task.name
    for name, row in rows.items():
        if base is None:
            continue
        if task in ("translation", "captioning"):  # strings per decoding (beam1, beamK); the widest beam's share
            for key in ref:
                row[f"{key}_differ"] = float(np.mean([a != b for a, b in zip(answers[name][key], ref[key])]))
            row["labels_differ"] = row[f"{max(ref, key=lambda key: int(key[4:]))}_differ"]
        elif task == "pos":
            pairs = [(a, b) for got, want in zip(answers[name], ref) for a, b in zip(got, want)]
            row["labels_differ"] = float(np.mean([a != b for a, b in pairs])) if pairs else 0.0
        elif len(ref):
            got, want = np.asarray(answers[name]), np.asarray(ref)
            row["max_abs_diff"] = float(np.abs(got - want).max())
            if task == "sentiment":
                row["labels_differ"] = float(np.mean(got.argmax(-1) != want.argmax(-1)))
        row["size_vs_savedmodel"] = row["folder_bytes"] / base["folder_bytes"]
        row["single_vs_savedmodel"] = row["single_per_s"] / base["single_per_s"]
        row["batch64_vs_savedmodel"] = row["batch64_per_s"] / base["batch64_per_s"]

    import importlib.metadata

    import onnxruntime
    import tensorflow as tf

    summary = {"run": str(args.run), "task": bundle.task.name, "split": args.split, "examples": len(data["items"]),
               "quality": QUALITY[task],
               "date": time.strftime("%Y-%m-%d %H:%M"), "commit": _commit(),
               "machine": f"{os.cpu_count()} CPU cores {platform.machine()} ({platform.processor() or 'cpu'})",
               "versions": {"tensorflow": tf.__version__, "onnxruntime": onnxruntime.__version__,
                            "ai_edge_litert": importlib.metadata.version("ai-edge-litert")},
               "formats": rows}
    (out / "formats.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(table(summary))
    print(f"\nwritten {out / 'formats.json'}")


def table(summary: dict) -> str:
    quality = summary.get("quality", "accuracy")
    lines = [f"{summary['task']} ({summary['run']}), {summary['split']} split of {summary['examples']} inputs, "
             f"{summary['date']}, {summary['machine']}, commit {summary['commit']}",
             "| format | folder MB | model MB | size / SM | p50 ms | p99 ms | single /s | x SM | batch-64 inputs/s "
             f"| x SM | {quality} | max abs diff vs SM | labels differ | export s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in summary["formats"].items():
        lines.append(f"| {name} | {r['folder_bytes'] / 1e6:.2f} | {r['model_bytes'] / 1e6:.2f} | "
                     f"{r.get('size_vs_savedmodel', float('nan')):.3f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
                     f"{r['single_per_s']:.0f} | {r.get('single_vs_savedmodel', float('nan')):.2f} | "
                     f"{r['batch64_per_s']:.0f} | {r.get('batch64_vs_savedmodel', float('nan')):.2f} | "
                     f"{r['quality']:.4f} | {r.get('max_abs_diff', float('nan')):.2e} | "
                     f"{r.get('labels_differ', float('nan')):.4f} | {r['export_s']:.1f} |")
    if summary["task"] == "translation":
        lines += ["", "| format | BLEU greedy | BLEU beam 4 | greedy strings differ from SM | beam-4 strings differ |",
                  "|---|---|---|---|---|"]
        lines += [f"| {name} | {r['bleu_greedy']:.2f} | {r['bleu_beam4']:.2f} | {r.get('beam1_differ', float('nan')):.4f} "
                  f"| {r.get('beam4_differ', float('nan')):.4f} |" for name, r in summary["formats"].items()]
    if summary["task"] == "captioning":
        keys = sorted({k.split("_")[-1] for r in summary["formats"].values() for k in r if k.startswith("cider_d_")})
        lines += ["", "| format | " + " | ".join(f"BLEU-4 {k} | CIDEr-D {k} | {k} captions differ from SM" for k in keys)
                  + " |", "|---|" + "---|---|---|" * len(keys)]
        lines += [f"| {name} | " + " | ".join(f"{r.get(f'bleu4_{k}', float('nan')):.2f} | "
                                              f"{r.get(f'cider_d_{k}', float('nan')):.2f} | "
                                              f"{r.get(f'{k}_differ', float('nan')):.4f}" for k in keys) + " |"
                  for name, r in summary["formats"].items()]
    return "\n".join(lines)


QUALITY = {"sentiment": "accuracy", "pos": "tag accuracy", "char_lm": "nats/char",
           "translation": "BLEU greedy (beam-4 BLEU: bleu_beam4)", "forecasting": "MAE",
           "captioning": "CIDEr-D of the export's beam (BLEU-4 beside it)"}


def task_data(task: str, split, cfg, args, prep=None) -> dict:
    """What the children read: ``items`` (one input each) and what scores them, per task."""
    limit = args.limit or None
    if task == "sentiment":
        texts, labels = split
        return {"task": task, "items": list(texts)[:limit], "gold": list(labels)[:limit]}
    if task == "pos":
        sentences = [(w, t) for w, t in split if w][:limit]
        return {"task": task, "items": [list(w) for w, _ in sentences], "gold": [list(t) for _, t in sentences]}
    if task == "char_lm":
        text = split[:limit * args.piece] if limit else split
        pieces = [text[i:i + args.piece + 1] for i in range(0, max(len(text) - 1, 1), args.piece)]
        return {"task": task, "items": pieces, "text": text, "streams": int(cfg.data.eval_streams)}
    if task == "translation":
        sources, references = split
        return {"task": task, "items": list(sources)[:limit], "gold": list(references)[:limit]}
    if task == "captioning":  # image files (or bytes, as latin-1 text) and their reference captions
        items = [x.decode("latin-1") if isinstance(x, bytes) else str(Path(x).resolve()) for x in split.images][:limit]
        return {"task": task, "items": items, "gold": [list(c) for c in split.captions][:limit],
                "bytes": any(isinstance(x, bytes) for x in split.images)}
    if task == "forecasting":  # the split's windows with observed targets, as evaluate scores them
        x, y, _ = split.windows(prep.encoding)
        return {"task": task, "items": x[:limit].tolist(), "gold": y[:limit].tolist()}
    raise SystemExit(f"benchmarks/formats.py measures sentiment, pos, char_lm, translation, captioning and "
                     f"forecasting runs, not {task}")


def _answer(name, proc) -> dict:
    line = proc.stdout.readline()
    if not line:
        raise SystemExit(f"{name}: the measuring process stopped (exit code {proc.wait()})")
    return json.loads(line)


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True).stdout.strip() or "unknown"
    except OSError:
        return "unknown"


if __name__ == "__main__":
    main()

"""Full-integer (calibrated) int8 against the dynamic-range int8 that ``--quantize int8`` writes: does it
measure better anywhere? One command, side by side in one run:

    SEQAPPS_DATA=../shared/datasets python benchmarks/full_integer.py --pos-run RUN --sentiment-run RUN

- pos (LiteRT): the exports ``--quantize none``, ``int8`` (dynamic range) and ``int8-full`` (activation ranges
  calibrated on 100 sentences drawn at random from the run's training split: LiteRT's converter with a
  representative dataset; int8 kernels where LiteRT has them, float where not); UPOS on the
  test split, tags differing from fp32, one sentence a call (rounds alternate, median of the rounds), file
  size; then inputs longer than every calibration sentence (test sentences joined), tags kept against fp32.
- sentiment (ONNX Runtime): dynamic int8 beside ONNX Runtime's static quantization (QOperator and QDQ,
  calibrated on as many training texts); accuracy, one text a call, size. And LiteRT's full-integer
  conversion of the same graph, in a child process (it crashed the process on a tiny test model), and
  where it converts, the LiteRT dynamic int8 and full-integer graphs beside the ONNX ones.

Prints a Markdown summary and writes OUT/full_integer.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

import seqapps  # noqa: E402
from seqapps.inference.bundle import Bundle  # noqa: E402
from seqapps.inference.export import export  # noqa: E402


def timed_rounds(call_by_name: dict, items: list, rounds: int) -> dict:
    """Name -> median over rounds of the mean ms per single-item call; names take turns each round."""
    per = {name: [] for name in call_by_name}
    for _ in range(rounds):
        for name, call in call_by_name.items():
            start = time.perf_counter()
            for item in items:
                call(item)
            per[name].append(1000 * (time.perf_counter() - start) / len(items))
    return {name: round(float(np.median(v)), 3) for name, v in per.items()}


def size_mb(folder: Path, suffix: str) -> float:
    return round(sum(p.stat().st_size for p in folder.glob(f"*{suffix}")) / 1e6, 3)


def pos_part(run: str, out: Path, rounds: int, timed: int) -> dict:
    from seqapps.inference import litert

    bundle = Bundle(run)
    folders, seconds = {}, {}
    for q in ("none", "int8", "int8-full"):  # int8-full: python -m seqapps export RUN OUT --format litert --quantize int8-full
        start = time.perf_counter()
        folders[q] = export(bundle, out / f"pos-litert-{q}", "litert", q)
        seconds[q] = round(time.perf_counter() - start, 1)
    rows = litert.calibration_rows(bundle)
    models = {q: seqapps.load(f) for q, f in folders.items()}
    test = bundle.task.load_data(bundle.config).test.materialize()
    words, gold = [w for w, _ in test], [t for _, t in test]
    tags = {q: [[t for _, t in m.predict([w])[0]] for w in words] for q, m in models.items()}
    longest = max(map(len, rows))
    result = {"calibration_sentences": len(rows), "longest_calibration_sentence": longest, "formats": {}}
    ms = timed_rounds({q: (lambda w, m=m: m.predict([w])) for q, m in models.items()}, words[:timed], rounds)
    long_inputs, joined = [], []
    for w in words:  # test sentences joined into inputs twice as long as any calibration sentence
        joined += w
        if len(joined) >= 2 * longest:
            long_inputs.append(joined)
            joined = []
        if len(long_inputs) == 20:
            break
    long_tags = {q: [[t for _, t in m.predict([w])[0]] for w in long_inputs] for q, m in models.items()}
    for q in models:
        flat = [a == b for t, g in zip(tags[q], gold) for a, b in zip(t, g)]
        same = [a == b for t, r in zip(tags[q], tags["none"]) for a, b in zip(t, r)]
        long_same = [a == b for t, r in zip(long_tags[q], long_tags["none"]) for a, b in zip(t, r)]
        result["formats"][q] = {"upos": round(float(np.mean(flat)), 4), "tags_differing_from_fp32":
                                round(1 - float(np.mean(same)), 4), "ms_per_sentence": ms[q],
                                "mb": size_mb(folders[q], ".tflite"), "export_seconds": seconds[q],
                                "long_inputs": len(long_inputs),
                                "long_input_words": int(np.mean(list(map(len, long_inputs)))),
                                "long_input_tags_kept": round(float(np.mean(long_same)), 4)}
    return result


LITERT_SENTIMENT = r"""
import sys, tensorflow as tf
sys.path.insert(0, sys.argv[3])
from seqapps.inference import litert
from seqapps.inference.bundle import Bundle
from seqapps.inference.tokenizer import TextTokenizer
bundle = Bundle(sys.argv[1])
tok = TextTokenizer.load(sys.argv[2])
names = [t.name for t in bundle.model.inputs]
specs = {"tokens": tf.TensorSpec([1, None], tf.int64, name="tokens"),
         "subwords": tf.TensorSpec([1, None, None], tf.int64, name="subwords")}
calibration = litert._calibration(bundle, "int8-full", lambda texts: tok.encode(texts)[0], names)
litert.convert(bundle.model, {k: specs[k] for k in names}, __import__("pathlib").Path(sys.argv[2]) / "full.tflite",
               "int8-full", "sentiment", calibration=calibration)
print("converted")
"""


def sentiment_part(run: str, out: Path, rounds: int, timed: int) -> dict:
    import logging

    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    from seqapps.inference import litert
    from seqapps.inference.tokenizer import TextTokenizer

    bundle = Bundle(run)
    folders = {q: export(bundle, out / f"sentiment-onnx-{q}", "onnx", q) for q in ("none", "int8")}
    tokenizer = TextTokenizer.load(folders["none"])
    texts = litert.calibration_rows(bundle)  # what LiteRT's int8-full calibrates on
    names = [t.name for t in bundle.model.inputs]

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter(texts)

        def get_next(self):
            text = next(self.items, None)
            return None if text is None else {k: v for k, v in tokenizer.encode([text])[0].items() if k in names}

    logging.getLogger().setLevel(logging.ERROR)
    for key, fmt in (("static-qoperator", QuantFormat.QOperator), ("static-qdq", QuantFormat.QDQ)):
        folder = out / f"sentiment-onnx-{key}"
        shutil.rmtree(folder, ignore_errors=True)
        shutil.copytree(folders["none"], folder)
        quantize_static(str(folders["none"] / "model.onnx"), str(folder / "model.onnx"), Reader(), quant_format=fmt,
                        weight_type=QuantType.QInt8,
                        activation_type=QuantType.QUInt8 if fmt == QuantFormat.QOperator else QuantType.QInt8,
                        extra_options={"EnableSubgraph": True})
        folders[key] = folder
    models = {q: seqapps.load(f) for q, f in folders.items()}
    test = list(bundle.task.load_data(bundle.config).test.rows())
    items, gold = [t for t, _ in test], [str(label) for _, label in test]
    result = {"calibration_texts": len(texts), "formats": {}}
    labels = {q: [x.decode() if isinstance(x, bytes) else str(x) for x in m.call(text=items)["label"]]
              for q, m in models.items()}
    for q in models:
        result["formats"][q] = {"accuracy": round(float(np.mean([a == b for a, b in zip(labels[q], gold)])), 4),
                                "labels_differing_from_fp32": round(float(np.mean(
                                    [a != b for a, b in zip(labels[q], labels["none"])])), 4),
                                "mb": size_mb(folders[q], ".onnx")}
    proc = subprocess.run([sys.executable, "-c", LITERT_SENTIMENT, str(Path(run).resolve()), str(folders["none"]),
                           str(ROOT)], capture_output=True, text=True)
    result["litert_full_integer"] = ("converted" if proc.returncode == 0 else
                                     f"the conversion process ended with code {proc.returncode}"
                                     + (" (signal 11, a segmentation fault in the calibrator)"
                                        if proc.returncode in (-11, 139) else ""))
    lite = {"litert-int8": export(bundle, out / "sentiment-litert-int8", "litert", "int8")}
    if proc.returncode == 0:  # the same folder with the full-integer graph
        lite["litert-int8-full"] = out / "sentiment-litert-int8-full"
        shutil.rmtree(lite["litert-int8-full"], ignore_errors=True)
        shutil.copytree(lite["litert-int8"], lite["litert-int8-full"])
        shutil.move(str(folders["none"] / "full.tflite"), str(lite["litert-int8-full"] / "model.tflite"))
    lite_models = {q: seqapps.load(f) for q, f in lite.items()}
    ms = timed_rounds({q: (lambda t, m=m: m.call(text=[t])) for q, m in {**models, **lite_models}.items()},
                      items[:timed], rounds)
    for q, m in lite_models.items():
        got = [x.decode() if isinstance(x, bytes) else str(x) for x in m.call(text=items)["label"]]
        result["formats"][q] = {"accuracy": round(float(np.mean([a == b for a, b in zip(got, gold)])), 4),
                                "labels_differing_from_fp32": round(float(np.mean(
                                    [a != b for a, b in zip(got, labels["none"])])), 4),
                                "ms_per_text": ms[q], "mb": size_mb(lite[q], ".tflite")}
    for q in models:  # every graph's time from the same rounds
        result["formats"][q]["ms_per_text"] = ms[q]
    return result


def summary(r: dict) -> str:
    lines = [f"full-integer against dynamic int8, {r['date']}, {r['machine']}, commit {r['commit']}"]
    if "pos" in r:
        p = r["pos"]
        lines += ["", f"pos (LiteRT), {r['pos_run']}: calibrated on {p['calibration_sentences']} training sentences "
                  f"(the longest {p['longest_calibration_sentence']} words)", "",
                  "| graph | MB | ms / sentence | UPOS | tags differing from fp32 | inputs of ~N words: tags kept |",
                  "|---|---|---|---|---|---|"]
        for q, f in p["formats"].items():
            lines.append(f"| {q} | {f['mb']} | {f['ms_per_sentence']} | {f['upos']} | {f['tags_differing_from_fp32']} | "
                         f"{f['long_input_tags_kept']} ({f['long_inputs']} of ~{f['long_input_words']}) |")
    if "sentiment" in r:
        s = r["sentiment"]
        lines += ["", f"sentiment (ONNX Runtime; LiteRT's dynamic and full-integer beside them), {r['sentiment_run']}: "
                  f"calibrated on {s['calibration_texts']} training texts", "", "| graph | MB | ms / text | accuracy | labels differing from fp32 |",
                  "|---|---|---|---|---|"]
        for q, f in s["formats"].items():
            lines.append(f"| {q} | {f['mb']} | {f['ms_per_text']} | {f['accuracy']} | {f['labels_differing_from_fp32']} |")
        lines.append(f"\nLiteRT full-integer of the sentiment graph: {s['litert_full_integer']}")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pos-run", help="a trained pos run (for example the ewt preset's)")
    ap.add_argument("--sentiment-run", help="a trained sentiment run (for example the sst2 preset's)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--timed", type=int, default=300, help="inputs timed one a call, per format and round")
    ap.add_argument("--out", default=None, help="folder for the graphs and full_integer.json (default: temporary)")
    args = ap.parse_args(argv)
    out = Path(args.out or tempfile.mkdtemp(prefix="full-integer-")).resolve()
    out.mkdir(parents=True, exist_ok=True)
    r = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": f"{os.cpu_count()} CPU cores {platform.machine()}",
         "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                  cwd=ROOT).stdout.strip(), "command": " ".join(sys.argv)}
    if args.pos_run:
        r["pos_run"], r["pos"] = args.pos_run, pos_part(args.pos_run, out, args.rounds, args.timed)
    if args.sentiment_run:
        r["sentiment_run"] = args.sentiment_run
        r["sentiment"] = sentiment_part(args.sentiment_run, out, args.rounds, args.timed)
    (out / "full_integer.json").write_text(json.dumps(r, indent=2))
    print(summary(r))
    print(f"\nwritten {out / 'full_integer.json'}")


if __name__ == "__main__":
    main()

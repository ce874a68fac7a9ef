"""Translation benchmark on anki_fra_eng (protocol: ../shared/datasets/README.md).

Trains, side by side on the same data and step budget:

  fr-en-additive   French -> English with additive attention (the benchmark direction)
  fr-en-none       French -> English without attention (the plain encoder-decoder)
  en-fr-additive   English -> French with additive attention

and for each reports test corpus BLEU and chrF (sacreBLEU, 13a, cased, single
reference) with beam 4 (length penalty 0.6) and greedy decoding, BLEU by source
length, the same on the unseen-source pairs alone (test pairs whose source sentence,
after the source standardization, is no training source: Tatoeba has several
translations per sentence, so a French test sentence can be a training source with
another English reference), the training wall time, and the export's speed measured
in a separate process that loads it with TensorFlow only: sentences per second at
batch 64 (greedy and beam 4) and the p50 latency of one sentence.

    SEQAPPS_DATA=../shared/datasets python benchmarks/translation.py
    python benchmarks/translation.py --epochs 2 --steps-per-epoch 300 --only fr-en-additive   # a quick look
    python benchmarks/translation.py --count-unseen      # how many test sources are unseen; no training

Each model trains with a translation preset (``fr-en``, the dataset's default, or
``en-fr``): the task's benchmarked recipe (GRU 256 per direction, 5 passes over the
training pairs, Adam 2e-3 with cosine decay, batch 128), about 40 minutes a model on
2 CPU cores; ``fr-en-none`` is that preset with ``model.attention=none``.

Results land in ``--out`` (default runs/bench-translation): one run directory and
export per model and ``results.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

DATA = "anki_fra_eng"

MODELS = {  # name -> (translation preset, the variant this benchmark compares over it)
    "fr-en-additive": ("fr-en", []),
    "fr-en-none": ("fr-en", ["model.attention=none"]),
    "en-fr-additive": ("en-fr", []),
}

SPEED = r"""
import json, sys, time, numpy as np, tensorflow as tf
path, sentences_file, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
sentences = json.load(open(sentences_file, encoding="utf-8"))[:n]
m = tf.saved_model.load(path)
translate = m.signatures["translate"]
def run(batch, beam):
    return translate(text=tf.constant(batch), beam_width=tf.constant(beam), length_penalty=tf.constant(0.6))
out = {}
for beam in (1, 4):
    run(sentences[:64], beam)  # warm-up
    start = time.perf_counter()
    for i in range(0, len(sentences), 64):
        run(sentences[i:i + 64], beam)
    out[f"sentences_per_second_batch64_beam{beam}"] = len(sentences) / (time.perf_counter() - start)
    times = []
    for s in sentences[:40]:
        t = time.perf_counter()
        run([s], beam)
        times.append(time.perf_counter() - t)
    out[f"p50_latency_ms_one_sentence_beam{beam}"] = 1000 * float(np.median(times))
print(json.dumps(out))
"""


def speed(export, sentences, n) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False, encoding="utf-8") as f:
        json.dump(sentences, f, ensure_ascii=False)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    proc = subprocess.run([sys.executable, "-c", SPEED, str(Path(export).resolve()), f.name, str(n)], capture_output=True,
                          text=True, env=env, cwd=tempfile.gettempdir())
    os.unlink(f.name)
    if proc.returncode:
        raise RuntimeError(proc.stderr[-2000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def model_overrides(name, args) -> list[str]:
    """The variant of ``name``, then the quick-look budget and ``--set``."""
    _, variant = MODELS[name]
    budget = [] if args.steps_per_epoch is None else [f"train.steps_per_epoch={args.steps_per_epoch}"]
    return [*variant, *budget, *args.overrides]


def score_run(run, task, export_dir, speed_sentences) -> dict:
    """Test BLEU (beam 4 from the run's metrics, greedy here), then the export's speed."""
    from seqapps import load
    from seqapps.analysis.metrics import score_translations

    from seqapps.core.task import whole

    export = run.export(export_dir)
    sources, references = whole(task.load_data(run.config).test)  # the run's own direction and split
    predictor = load(export)
    unseen = task.unseen(predictor, sources)
    t = time.time()
    greedy = score_translations(sources, predictor.translate(sources, beam=1), references, unseen=unseen)
    greedy_seconds = time.time() - t
    beam = {k: v for k, v in run.metrics["test"].items() if k != "samples"}
    if "unseen_source" not in beam and unseen is not None:  # a run scored before the unseen figure existed
        beam["unseen_source"] = score_translations(sources, predictor.translate(sources), references,
                                                   unseen=unseen)["unseen_source"]
    return {"fit_seconds": run.metrics["train_seconds"],
            "test_beam4": beam,
            "test_greedy": greedy, "greedy_eval_seconds": round(greedy_seconds, 1),
            "val_beam4_bleu": run.metrics["val"]["bleu"], "samples": run.metrics["test"]["samples"],
            "speed": speed(export, sources, speed_sentences)}


def print_table(results):
    print("\nmodel            test BLEU beam4  greedy   chrF beam4  fit s   sent/s b64 greedy/beam4  p50 ms beam4")
    for name, e in results["models"].items():
        s = e["speed"]
        print(f"{name:<16} {e['test_beam4']['bleu']:>14.2f}  {e['test_greedy']['bleu']:>6.2f}  "
              f"{e['test_beam4']['chrf']:>10.2f}  {e['fit_seconds']:>6.0f}  "
              f"{s['sentences_per_second_batch64_beam1']:>10.1f} / {s['sentences_per_second_batch64_beam4']:<8.1f} "
              f"{s['p50_latency_ms_one_sentence_beam4']:>10.1f}")
    print("\nunseen-source test pairs (source not in the training split, after the source standardization):")
    print("model            pairs    BLEU beam4 / greedy   chrF beam4 / greedy")
    for name, e in results["models"].items():
        b, g = e["test_beam4"].get("unseen_source"), e["test_greedy"].get("unseen_source")
        if b and g:
            print(f"{name:<16} {b['examples']:>5} of {e['test_beam4']['examples']:<5} {b['bleu']:>6.2f} / "
                  f"{g['bleu']:<6.2f}      {b['chrf']:>6.2f} / {g['chrf']:<6.2f}")
    print("\nBLEU by source length (words), beam 4:")
    buckets = sorted({b for e in results["models"].values() for b in e["test_beam4"]["by_source_length"]},
                     key=lambda b: int(b.split("-")[0].rstrip("+")))
    print("model            " + "".join(f"{b:>14}" for b in buckets))
    for name, e in results["models"].items():
        row = e["test_beam4"]["by_source_length"]
        print(f"{name:<16} " + "".join(f"{row[b]['bleu']:>8.2f} ({row[b]['examples']:>3})" if b in row else " " * 14
                                        for b in buckets))


def count_unseen(task) -> dict:
    """Per direction of the protocol's split: test pairs, and how many have a source that is no training
    source, compared as the model reads them (standardized) and as exact strings."""
    from tasks.translation.data import unseen_sources
    from seqapps.core.task import whole
    from seqapps.training.fit import resolve_config

    out = {}
    for preset in ("fr-en", "en-fr"):
        splits = task.load_data(resolve_config(task, DATA, preset=preset))
        (sources, _), train_sources = whole(splits.test), whole(splits.train)[0]
        exact = set(train_sources)
        out[preset] = {"test_pairs": len(sources), "unseen": len(unseen_sources(sources, train_sources)),
                       "unseen_exact_string": sum(s not in exact for s in sources),
                       "distinct_test_sources": len(set(sources))}
    return out


def train_model(name, args, out, task):
    """The run of ``name``: its preset and variant, trained (or, with ``--reuse``, the finished run of that config)."""
    from seqapps.inference.trained import TrainedRun as Run
    from seqapps.training.fit import resolve_config, train

    preset, _ = MODELS[name]
    overrides = model_overrides(name, args)
    print(f"== {name}: preset {preset} {' '.join(overrides)}", flush=True)
    started, previous = time.time(), Run(out / name)
    wanted = resolve_config(task, DATA, args.epochs, None, overrides, preset=preset).to_dict()
    if args.reuse and previous.finished and previous.config.to_dict() == wanted:
        print(f"reusing the finished run in {previous.dir}", flush=True)
        return previous, None
    run = train("translation", DATA, epochs=args.epochs, preset=preset, overrides=overrides, run_dir=out / name,
                overwrite=True, verbose=2)
    return run, round(time.time() - started, 1)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/bench-translation")
    p.add_argument("--only", nargs="*", choices=list(MODELS), help="train only these models")
    # left unset, the budget is the preset's (the headline figures); these are for a quick look
    p.add_argument("--epochs", type=int, help="a shorter budget than the preset's 5 passes")
    p.add_argument("--steps-per-epoch", type=int, help="batches per epoch (0 = whole training set, the preset's)")
    p.add_argument("--speed-sentences", type=int, default=640)
    p.add_argument("--set", dest="overrides", action="append", default=[], help="a variant over every model's preset")
    p.add_argument("--reuse", action="store_true", help="score finished runs in --out with the same config "
                   "instead of training them again")
    p.add_argument("--count-unseen", action="store_true", help="print how many test pairs have a source that is "
                   "no training source, per direction, and stop (no training)")
    args = p.parse_args(argv)

    from seqapps.core import registry

    if args.count_unseen:
        for preset, c in count_unseen(registry.get("translation")).items():
            print(f"{preset}: {c['unseen']} of {c['test_pairs']} test pairs have an unseen source "
                  f"({c['test_pairs'] - c['unseen']} seen; {c['unseen_exact_string']} unseen as exact strings; "
                  f"{c['distinct_test_sources']} distinct test sources)")
        return
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    task = registry.get("translation")
    results = {"args": vars(args), "models": {}}
    for name in args.only or list(MODELS):
        run, wall = train_model(name, args, out, task)
        entry = score_run(run, task, out / f"{name}-export", args.speed_sentences)
        cfg = run.config
        entry.update(direction=f"{cfg.data.source_lang}->{cfg.data.target_lang}", attention=cfg.model.attention,
                     preset=MODELS[name][0], train_command_seconds=wall)
        results["models"][name] = entry
        if args.only and (out / "results.json").exists():  # keep the other models' entries
            kept = json.loads((out / "results.json").read_text())["models"]
            results["models"] = {**{k: v for k, v in kept.items() if k not in results["models"]}, **results["models"]}
        (out / "results.json").write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
        print(json.dumps({k: v for k, v in entry.items() if k != "samples"}, indent=1, ensure_ascii=False), flush=True)

    print_table(results)
    print(f"\nresults: {out / 'results.json'}")


if __name__ == "__main__":
    main()

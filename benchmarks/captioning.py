"""Captioning benchmark on flickr8k_1000, with its baselines side by side.

Protocol (../shared/datasets/README.md): sort the image file names; the first 800
train, the next 100 validate, the last 100 test; corpus scores on a split against all
5 references per image, naming the decoding. The primary figures are the COCO caption
evaluation's (``pycocoevalcap``: PTB tokenizer with punctuation dropped, BLEU-1..4,
METEOR, ROUGE-L, CIDEr-D; x100); sacreBLEU's BLEU-1/4 (13a tokenization, lower-cased)
are kept beside them. Without Java only the sacreBLEU figures are printed, with a note.

Baselines, scored the same way:
- most frequent caption: the most frequent (standardized) training caption, given to every image;
- nearest neighbour: the caption of the training image whose pooled encoder features
  (EfficientNet-Lite0, ImageNet) are closest by cosine similarity; of that image's 5
  captions, the one with the highest BLEU against its 4 siblings (its consensus caption).

The model trains with the captioning preset ``flickr8k`` (the dataset's default: the task
defaults, up to 15 epochs) plus any ``--set``, so its figure is what
``python -m seqapps train captioning --data flickr8k_1000 [--set ...]`` gives.

Decodings (``--decodings``): ``1`` is greedy, ``W`` beam search of width W, ``W:A`` with
GNMT length penalty alpha A: what an export of the run with ``--set model.beam_width=W
--set model.length_penalty=A`` serves (neither key changes training), so one trained model
is scored under each without retraining. ``--reuse`` scores the finished run in
``--run-dir`` instead of training again, if its config is the one asked for.

    SEQAPPS_DATA=../shared/datasets python benchmarks/captioning.py [--set KEY=VALUE ...]
        [--splits val,test] [--decodings 1,3,5,3:0.5] [--run-dir DIR] [--reuse] [--name NAME]

Writes benchmarks/out/NAME.json (default ``captioning``) and prints a Markdown table and 10 samples.
"""

from __future__ import annotations

import argparse
import collections
import copy
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

DECODING_ONLY = ("model.beam_width", "model.length_penalty")  # keys that shape the export, not training


def consensus(captions):
    from seqapps.analysis.metrics import corpus_bleu_scores

    best, best_score = captions[0], -1.0
    for i, c in enumerate(captions):
        others = [x for j, x in enumerate(captions) if j != i]
        score = corpus_bleu_scores([c], [others])[4] + corpus_bleu_scores([c], [others])[1] / 100
        if score > best_score:
            best, best_score = c, score
    return best


def baseline_rows(cfg, splits, split_names, wholes) -> tuple[list[dict], float]:
    """The most frequent caption and the nearest neighbour's consensus caption, scored on each split;
    their features come from the same per-image cache the model trains on."""
    import numpy as np

    from tasks.captioning.data import tokenize
    from tasks.captioning.features import frozen_features
    from seqapps.analysis.metrics import caption_report

    t0 = time.time()
    norm = lambda x: x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-8)  # noqa: E731
    train_feats = norm(frozen_features(cfg.model, splits.train, cfg.data.feature_cache).astype("float32").mean(axis=1))
    standardized = [" ".join(t) for caps in wholes["train"].captions for t in tokenize(caps)]
    frequent, count = collections.Counter(standardized).most_common(1)[0]
    print(f"most frequent caption ({count}x): {frequent!r}", flush=True)
    rows = []
    for name in split_names:
        data = wholes[name]
        feats = frozen_features(cfg.model, getattr(splits, name), cfg.data.feature_cache).astype("float32").mean(axis=1)
        nearest = np.argmax(norm(feats) @ train_feats.T, axis=1)  # features in the order of the sorted names
        nn_hyps = [consensus(wholes["train"].captions[j]) for j in nearest]
        rows.append({"model": f'most frequent training caption ("{frequent}")', "split": name, "decoding": "-",
                     **caption_report([frequent] * len(data), data.captions)})
        rows.append({"model": "nearest neighbour (cosine on pooled Lite0 features; its consensus caption)",
                     "split": name, "decoding": "-", **caption_report(nn_hyps, data.captions)})
    return rows, time.time() - t0


def parse_decodings(text: str, default_width: int) -> list[tuple[int, float]]:
    out = []
    for item in (text or f"1,{default_width}").split(","):
        width, _, alpha = item.strip().partition(":")
        out.append((int(width), float(alpha or 0.0)))
    return out


def decoding_name(width: int, alpha: float) -> str:
    return "greedy" if width == 1 else f"beam {width}" + (f", length penalty {alpha:g}" if alpha else "")


def predictor_for(bundle, width: int, alpha: float):
    """A Predictor over the run's model whose ``beam`` signature has ``width`` and length penalty ``alpha``:
    the export of ``--set model.beam_width=WIDTH --set model.length_penalty=ALPHA``."""
    from seqapps.inference.predictor import Predictor

    cfg = copy.deepcopy(bundle.config)
    cfg.model.beam_width, cfg.model.length_penalty = max(width, 1), alpha
    meta = {**bundle.metadata(), "decoding": bundle.task.decoding(cfg)}
    return Predictor.in_memory(bundle.task, bundle.task.endpoints(bundle.model, bundle.prep, cfg), meta)


def reusable(run_dir: Path, cfg) -> bool:
    """Whether ``run_dir`` holds a finished run of ``cfg`` (decoding-only keys aside); raises if it differs."""
    from seqapps.training.run_dir import Run

    run = Run(run_dir)
    if not (run.info_path.exists() and run.metrics_path.exists() and run.model_path.exists()) \
            or run.backup_dir.exists():
        return False
    mine, theirs = cfg.to_dict(), json.loads(run.config_path.read_text())
    for section, values in mine.items():
        for key, value in values.items():
            name = f"{section}.{key}"
            if name not in DECODING_ONLY and theirs.get(section, {}).get(key, value) != value:
                raise SystemExit(f"--reuse: {run_dir} was trained with {name}={theirs[section][key]!r}, "
                                 f"not {value!r}; drop --reuse to train again")
    return True


def print_tables(rows, samples, result) -> None:
    from seqapps.analysis.metrics import CAPTION_FIGURES

    keys = [k for k, _ in CAPTION_FIGURES if any(k in r for r in rows)]
    labels = dict(CAPTION_FIGURES)
    print("\n| model | split | decoding | " + " | ".join(labels[k] for k in keys) + " |")
    print("|---|---|---|" + "---|" * len(keys))
    for r in rows:
        print(f"| {r['model']} | {r['split']} | {r['decoding']} | " + " | ".join(f"{r[k]:.2f}" for k in keys) + " |")
    notes = {r["coco_note"] for r in rows if r.get("coco_note")}
    for note in notes:
        print(f"note: {note}")
    tags = [k for k in samples[0] if k not in ("image", "references")] if samples else []
    print("\n| image | " + " | ".join(tags) + " | a reference |\n|---|" + "---|" * (len(tags) + 1))
    for s in samples:
        print(f"| {s['image']} | " + " | ".join(s[t] for t in tags) + f" | {s['references'][0]} |")
    print(f"\nepochs run: {result['epochs_run']}, best val_loss {result['best_val_loss']:.4f}; "
          f"seconds: {result['seconds']}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, help="a shorter budget than the flickr8k preset's 15 epochs "
                        "(not the headline figure)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="a variant over the preset, e.g. train.label_smoothing=0.1")
    parser.add_argument("--splits", default="test", help="comma-separated: val, test (default test)")
    parser.add_argument("--decodings", default="", help="comma-separated W or W:ALPHA (default: 1 and the "
                        "config's beam width)")
    parser.add_argument("--run-dir", default=str(ROOT / "benchmarks" / "out" / "captioning-flickr8k_1000"))
    parser.add_argument("--reuse", action="store_true", help="score the finished run in --run-dir if its config "
                        "is the one asked for, instead of training")
    parser.add_argument("--no-baselines", action="store_true")
    parser.add_argument("--name", default="captioning", help="benchmarks/out/NAME.json")
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args(argv)

    import pandas as pd

    import seqapps
    from seqapps.core import registry
    from seqapps.core.task import whole
    from seqapps.analysis.metrics import caption_report
    from seqapps.inference.bundle import Bundle
    from seqapps.training.fit import resolve_config

    started = time.time()
    task = registry.get("captioning")
    cfg = resolve_config(task, "flickr8k_1000", args.epochs, None, args.overrides)
    split_names = [s.strip() for s in args.splits.split(",") if s.strip()]
    decodings = parse_decodings(args.decodings, cfg.model.beam_width)
    splits = task.load_data(cfg, args.data_dir)
    print(f"images: train {len(splits.train)}, val {len(splits.val)}, test {len(splits.test)}", flush=True)
    wholes = {name: whole(getattr(splits, name)) for name in dict.fromkeys(["train", *split_names])}  # sorted names
    rows, baseline_seconds = ([], 0.0) if args.no_baselines else baseline_rows(cfg, splits, split_names, wholes)

    t0 = time.time()
    reused = args.reuse and reusable(Path(args.run_dir), cfg)
    if reused:
        print(f"scoring the finished run in {args.run_dir}", flush=True)
    else:
        seqapps.train("captioning", "flickr8k_1000", epochs=args.epochs, overrides=args.overrides,
                      run_dir=args.run_dir, data_dir=args.data_dir, overwrite=True, verbose=2)
    train_seconds = time.time() - t0
    bundle = Bundle(args.run_dir)
    name = f"{cfg.model.encoder} + {cfg.model.cell} + {cfg.model.attention} attention" + \
        "".join(f", {o}" for o in args.overrides)
    t0 = time.time()
    samples = {}
    for split in split_names:
        data = wholes[split]
        images = [data.images[i] for i in range(len(data))]
        for width, alpha in decodings:
            hyps = [r["caption"] for r in predictor_for(bundle, width, alpha).caption(images, beam=width)]
            rows.append({"model": name, "split": split, "decoding": decoding_name(width, alpha),
                         **caption_report(hyps, data.captions)})
            if split == split_names[-1]:
                samples[decoding_name(width, alpha)] = hyps
            print(f"{split} {decoding_name(width, alpha)}: " + "  ".join(
                f"{k} {v:.2f}" for k, v in rows[-1].items() if isinstance(v, float)), flush=True)
    decode_seconds = time.time() - t0
    last = wholes[split_names[-1]]
    sample_rows = [{"image": last.names[i], **{k: v[i] for k, v in samples.items()}, "references": last.captions[i]}
                   for i in range(min(10, len(last)))]
    history = pd.read_csv(bundle.run.history_path)
    result = {
        "protocol": "flickr8k_1000 sorted 800/100/100; COCO caption evaluation (pycocoevalcap: PTB tokenizer, "
                    "BLEU-1..4, METEOR, ROUGE-L, CIDEr-D, x100) and sacreBLEU (13a, lower-cased) vs all 5 refs",
        "config": json.loads(bundle.run.config_path.read_text()), "overrides": args.overrides, "reused": reused,
        "rows": rows, "samples": sample_rows,
        "epochs_run": int(len(history)), "best_val_loss": float(history["val_loss"].min()),
        "seconds": {"baselines": round(baseline_seconds, 1), "train": round(train_seconds, 1),
                    "decoding_and_scoring": round(decode_seconds, 1), "total": round(time.time() - started, 1)},
        "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                 text=True).stdout.strip(),
        "machine": f"{os.cpu_count()} CPU cores {platform.machine()}",
    }
    out = ROOT / "benchmarks" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.name}.json").write_text(json.dumps(result, indent=2) + "\n")
    print_tables(rows, sample_rows, result)


if __name__ == "__main__":
    main()

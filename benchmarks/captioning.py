"""Captioning benchmark on flickr8k_1000, with its baselines side by side.

Protocol (../shared/datasets/README.md): sort the image file names; the first 800
train, the next 100 validate, the last 100 test; corpus BLEU-1 and BLEU-4 on test
against all 5 references per image (sacreBLEU, 13a tokenization, lower-cased), for
greedy decoding and beam search of width 3.

Baselines, scored the same way:
- most frequent caption: the most frequent (standardized) training caption, given to every test image;
- nearest neighbour: the caption of the training image whose pooled encoder features
  (EfficientNet-Lite0, ImageNet) are closest by cosine similarity; of that image's 5
  captions, the one with the highest BLEU against its 4 siblings (its consensus caption).

The model trains with the captioning preset ``flickr8k`` (the dataset's default: the task
defaults, up to 15 epochs), so its figure is what
``python -m seqapps train captioning --data flickr8k_1000`` gives.

    SEQAPPS_DATA=../shared/datasets python benchmarks/captioning.py [--set KEY=VALUE ...]

Writes benchmarks/out/captioning.json and prints a Markdown table and 10 samples.
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
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def consensus(captions):
    from seqapps.data.captions import corpus_bleu_scores

    best, best_score = captions[0], -1.0
    for i, c in enumerate(captions):
        others = [x for j, x in enumerate(captions) if j != i]
        score = corpus_bleu_scores([c], [others])[4] + corpus_bleu_scores([c], [others])[1] / 100
        if score > best_score:
            best, best_score = c, score
    return best


def baseline_rows(cfg, splits) -> tuple[dict, float]:
    """The most frequent caption and the nearest neighbour's consensus caption, scored on test;
    their features come from the same per-image cache the model trains on."""
    import numpy as np

    from seqapps.data.captions import corpus_bleu_scores, tokenize
    from seqapps.encoders.features import frozen_features

    t0 = time.time()
    train_feats = frozen_features(cfg.model, splits.train, cfg.data.feature_cache).astype("float32").mean(axis=1)
    test_feats = frozen_features(cfg.model, splits.test, cfg.data.feature_cache).astype("float32").mean(axis=1)
    feature_seconds = time.time() - t0
    norm = lambda x: x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-8)  # noqa: E731
    nearest = np.argmax(norm(test_feats) @ norm(train_feats).T, axis=1)
    nn_hyps = [consensus(splits.train.captions[j]) for j in nearest]
    standardized = [" ".join(t) for caps in splits.train.captions for t in tokenize(caps)]
    frequent, count = collections.Counter(standardized).most_common(1)[0]
    refs = splits.test.captions
    print(f"features: {feature_seconds:.1f}s; most frequent caption ({count}x): {frequent!r}", flush=True)
    return {"most frequent caption": {"greedy": corpus_bleu_scores([frequent] * len(refs), refs)},
            "nearest neighbour (Lite0 features)": {"greedy": corpus_bleu_scores(nn_hyps, refs)}}, feature_seconds


def print_tables(rows, samples, beam_width, result) -> None:
    print("\n| model | decoding | BLEU-1 | BLEU-2 | BLEU-3 | BLEU-4 |\n|---|---|---|---|---|---|")
    for name, row in rows.items():
        for decoding, s in row.items():
            label = decoding if "neighbour" not in name and "frequent" not in name else "-"
            print(f"| {name} | {label} | {s[1]:.2f} | {s[2]:.2f} | {s[3]:.2f} | {s[4]:.2f} |")
    beam = f"beam{beam_width}"
    print(f"\n| image | greedy | beam {beam_width} | a reference |\n|---|---|---|---|")
    for s in samples:
        print(f"| {s['image']} | {s['greedy']} | {s[beam]} | {s['references'][0]} |")
    print(f"\nepochs run: {result['epochs_run']}, best val_loss {result['best_val_loss']:.4f}; "
          f"seconds: {result['seconds']}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, help="a shorter budget than the flickr8k preset's 15 epochs "
                        "(not the headline figure)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="a variant over the preset, e.g. model.attention=none")
    parser.add_argument("--run-dir", default=str(ROOT / "benchmarks" / "out" / "captioning-flickr8k_1000"))
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args(argv)

    import pandas as pd

    import seqapps
    from seqapps import registry
    from seqapps.training import resolve_config

    started = time.time()
    task = registry.get("captioning")
    cfg = resolve_config(task, "flickr8k_1000", args.epochs, None, args.overrides)
    splits = task.load_data(cfg, args.data_dir)
    print(f"images: train {len(splits.train)}, val {len(splits.val)}, test {len(splits.test)}", flush=True)
    rows, feature_seconds = baseline_rows(cfg, splits)

    t0 = time.time()
    run = seqapps.train("captioning", "flickr8k_1000", epochs=args.epochs, overrides=args.overrides,
                        run_dir=args.run_dir, data_dir=args.data_dir, overwrite=True, verbose=2)
    train_seconds = time.time() - t0
    predictor = run.predictor()
    t0 = time.time()
    metrics = task.evaluate(predictor, splits.test, cfg)
    eval_seconds = time.time() - t0
    rows[f"{cfg.model.encoder} + {cfg.model.cell} + {cfg.model.attention} attention"] = {
        tag: {n: metrics[f"bleu{n}_{tag}"] for n in range(1, 5)} for tag in ("greedy", f"beam{predictor.beam_width}")}
    history = pd.read_csv(run.history_path)
    result = {
        "protocol": "flickr8k_1000 sorted 800/100/100; corpus BLEU (sacreBLEU 13a, lower-cased) vs all 5 refs",
        "config": cfg.to_dict(), "rows": rows, "samples": metrics["samples"],
        "epochs_run": int(len(history)), "best_val_loss": float(history["val_loss"].min()),
        "seconds": {"features": round(feature_seconds, 1), "train": round(train_seconds, 1),
                    "test_decoding": round(eval_seconds, 1), "total": round(time.time() - started, 1)},
        "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                 text=True).stdout.strip(),
        "machine": f"{os.cpu_count()} CPU cores {platform.machine()}",
    }
    out = ROOT / "benchmarks" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "captioning.json").write_text(json.dumps(result, indent=2) + "\n")
    print_tables(rows, metrics["samples"], predictor.beam_width, result)


if __name__ == "__main__":
    main()

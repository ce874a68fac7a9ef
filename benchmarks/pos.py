"""pos on UD English-EWT and UD English-ATIS: UPOS accuracy (and OOV accuracy) of the
seqapps tagger beside a most-frequent-tag baseline, NLTK's averaged perceptron and spaCy's tagger.

Protocol (../shared/datasets/README.md):
- ud_english_ewt: train on en_ewt-ud-dev.conllu, its last 10% of sentences validate
  (checkpoint choice, early stopping), UPOS token accuracy on en_ewt-ud-test.conllu;
- ud_english_atis: the standard train/dev/test files, UPOS accuracy on test.

Every tagger sees the same training sentences (the validation part is not trained on by
any of them) and is scored on the same gold-tokenized test sentences. OOV words are test
words whose lower-cased form never occurs in the training sentences (the seqapps word
vocabulary is uncapped, so these are exactly the words it has no embedding for). Each row
also gives the five tags with the lowest F1 on test (:func:`worst_tags`).

- most-frequent tag: each word's most frequent training tag (exact form, else its
  lower-cased form), else the most frequent tag overall;
- NLTK: ``PerceptronTagger(load=False).train(sentences, nr_iter=5)``, no downloads;
- spaCy: its tagger trained from scratch by ``spacy train benchmarks/peers/spacy_tagger.cfg``
  (``spacy init config --pipeline tagger --lang en --optimize efficiency``: no vectors, no
  pretrained pipeline; at most 30 epochs, patience 1000 steps) on the same training
  sentences, the validation sentences as its dev set (``model-best``), tokens given, never
  re-tokenized (benchmarks/peers/spacy_tagger.py);
- seqapps: ``seqapps.train("pos", <dataset>)``, which applies the dataset's preset
  (tasks/pos/task.py ``presets``; EWT: CRF, word dropout 2, EMA and frozen count vectors built
  once from SST-2/Anki/Shakespeare English text, ``model.word_vectors=count:...``), scored
  through the exported graph's ``tag_tokens`` signature code path.

    SEQAPPS_DATA=../shared/datasets flock /tmp/seqapps-cpu.lock python benchmarks/pos.py
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SMOKE = "demo"  # --datasets demo: a smoke test of this script (no preset; 2 epochs unless --epochs), not a benchmark


class MostFrequentTag:
    def train(self, sentences):
        by_word, by_lower, overall = defaultdict(Counter), defaultdict(Counter), Counter()
        for words, tags in sentences:
            for w, t in zip(words, tags):
                by_word[w][t] += 1
                by_lower[w.lower()][t] += 1
                overall[t] += 1
        self.word = {w: c.most_common(1)[0][0] for w, c in by_word.items()}
        self.lower = {w: c.most_common(1)[0][0] for w, c in by_lower.items()}
        self.default = overall.most_common(1)[0][0]

    def tag(self, sentences):
        return [[self.word.get(w) or self.lower.get(w.lower(), self.default) for w in words] for words in sentences]


class NltkPerceptron:
    def train(self, sentences, iterations=5):
        from nltk.tag.perceptron import PerceptronTagger

        self.tagger = PerceptronTagger(load=False)
        self.tagger.train([list(zip(w, t)) for w, t in sentences], nr_iter=iterations)

    def tag(self, sentences):
        return [[t for _, t in self.tagger.tag(list(words))] for words in sentences]


def worst_tags(gold, predicted, k=5) -> list[tuple[str, float, int]]:
    """The ``k`` tags of the gold test tokens with the lowest F1, as ``(tag, f1, support)``,
    lowest first (ties by name); per-tag F1 from :func:`seqapps.analysis.metrics.tagging_report`. A tag
    that is only ever predicted has no gold token and is not ranked."""
    from seqapps.analysis.metrics import tagging_report

    labels = sorted({t for sent in gold for t in sent})
    per_tag = tagging_report(gold, predicted, labels)["per_class"]
    rows = [(tag, c["f1"], c["support"]) for tag, c in per_tag.items() if c["support"] > 0]
    return sorted(rows, key=lambda r: (r[1], r[0]))[:k]


def score(gold, predicted, oov):
    flat = [(g == p, o) for gs, ps, os_ in zip(gold, predicted, oov) for g, p, o in zip(gs, ps, os_)]
    hits = sum(h for h, _ in flat)
    oov_flat = [h for h, o in flat if o]
    return {"accuracy": hits / len(flat), "oov_accuracy": sum(oov_flat) / len(oov_flat) if oov_flat else None,
            "tokens": len(flat), "oov_tokens": len(oov_flat),
            "worst_tags": [list(r) for r in worst_tags(gold, predicted)]}


def commit_label() -> str:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "tasks/pos/task.py", "seqapps/layers", "seqapps/data",
                            "tasks/pos/serving.py", "seqapps/analysis/metrics.py", "benchmarks/pos.py",
                            "benchmarks/peers/spacy_tagger.py", "benchmarks/peers/spacy_tagger.cfg"],
                           cwd=ROOT, capture_output=True, text=True).stdout.strip()
    return commit + (" (with uncommitted changes)" if dirty else "")


def baseline_rows(name, train, test, gold, oov, nltk_iterations) -> dict:
    rows = {}
    for label, tagger, kwargs in (("most-frequent tag", MostFrequentTag(), {}),
                                  ("NLTK averaged perceptron", NltkPerceptron(), {"iterations": nltk_iterations})):
        t0 = time.time()
        tagger.train(train, **kwargs)
        seconds = time.time() - t0
        rows[label] = {**score(gold, tagger.tag([w for w, _ in test]), oov), "train_seconds": round(seconds, 2)}
        print(f"{name}  {label}: {rows[label]}", flush=True)
    return rows


def spacy_row(name, splits, gold, oov, args, out) -> tuple[str, dict]:
    """spaCy's tagger trained from scratch on the training sentences (the validation ones as its dev set)."""
    from benchmarks.peers import spacy_tagger

    overrides = dict(kv.split("=", 1) for kv in args.spacy_extra)
    if name == SMOKE:
        overrides = {"training.max_steps": 20, "training.eval_frequency": 10, **overrides}
    # beside the seqapps run directory, which its training overwrites
    tagger = spacy_tagger.train(splits.train, splits.val, out / f"{name}-spacy", overrides=overrides)
    predicted = tagger.tag([w for w, _ in splits.test])
    last, best = tagger.log[-1], tagger.best
    label = "spaCy tagger (CNN, from scratch)"
    row = {**score(gold, predicted, oov), "train_seconds": round(tagger.train_seconds, 2),
           "last_evaluation": {"epoch": last["epoch"], "step": last["step"]},
           "best_evaluation": {"epoch": best["epoch"], "step": best["step"], "dev_tag_accuracy": best["score"]},
           "overrides": overrides}
    print(f"{name}  {label}: {row}", flush=True)
    return label, row


def seqapps_row(name, test, gold, oov, args, out) -> tuple[str, dict, object]:
    """Train the tagger with the dataset's preset (``--epochs`` / ``--set`` apply over it) and score it."""
    import seqapps

    epochs = args.epochs if args.epochs is not None or name != SMOKE else 2
    t0 = time.time()
    run = seqapps.train("pos", name, epochs=epochs, overrides=["train.backup_every=0", *args.extra],
                        run_dir=out / name, overwrite=True, verbose=2)
    seconds = time.time() - t0
    predicted = [r["tags"] for r in run.predictor().analyze([w for w, _ in test])]
    history = run.dir / "history.csv"
    epochs_run = max(0, len(history.read_text().strip().splitlines()) - 1) if history.exists() else None
    cfg = run.config
    label = f"seqapps {'BiLSTM-CRF' if cfg.model.crf else 'BiLSTM'} (char {cfg.model.char_encoder}" + (
        ", count vectors)" if cfg.model.word_vectors else ")")
    row = {**score(gold, predicted, oov), "train_seconds": round(seconds, 2),
           "fit_seconds": run.metrics.get("train_seconds"), "epochs_run": epochs_run,
           "val_accuracy": run.metrics["val"]["accuracy"]}
    print(f"{name}  {label}: {row}", flush=True)
    return label, row, cfg


def print_tables(summary) -> None:
    print()
    for name, r in summary["results"].items():
        print(f"### {name} (train {r['train_sentences']} / val {r['val_sentences']} / test {r['test_sentences']} "
              "sentences)\n")
        ours = next((row for label, row in r["taggers"].items() if label.startswith("seqapps")), None)
        print("| tagger | UPOS accuracy | OOV accuracy (OOV tokens) | worst five tags by F1 (test) | training time "
              "| seqapps / this: UPOS, OOV, time |")
        print("|---|---|---|---|---|---|")
        for label, row in r["taggers"].items():
            oov_acc = "n/a" if row["oov_accuracy"] is None else f"{row['oov_accuracy']:.4f}"
            extra = f", {row['epochs_run']} epochs" if row.get("epochs_run") is not None else ""
            if "last_evaluation" in row:
                last, best = row["last_evaluation"], row["best_evaluation"]
                extra = (f", stopped at step {last['step']} (epoch {last['epoch'] + 1}), best step {best['step']}")
            worst = ", ".join(f"{tag} {f1:.3f}" for tag, f1, _ in row["worst_tags"])
            ratio = "" if ours is None or row is ours else " / ".join(
                "n/a" if not b else f"{a / b:.3f}x" for a, b in ((ours["accuracy"], row["accuracy"]),
                                                                 (ours["oov_accuracy"], row["oov_accuracy"]),
                                                                 (ours["train_seconds"], row["train_seconds"])))
            print(f"| {label} | {row['accuracy']:.4f} | {oov_acc} ({row['oov_tokens']}) | {worst} | "
                  f"{row['train_seconds']:.1f} s{extra} | {ratio} |")
        print()
    print(f"wall time {summary['wall_seconds'] / 60:.1f} min, commit {summary['commit']}, {summary['date']}, "
          f"{summary['machine']}")


def main(argv=None):
    from seqapps.core import registry

    task = registry.get("pos")
    known = [p.data for p in task.presets if p.data]
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", default="ud_english_ewt,ud_english_atis",
                   help=f"comma-separated subset of {', '.join(known)} (each trained with its preset), or {SMOKE}")
    p.add_argument("--epochs", type=int, help="a shorter epoch budget than the preset's (not the headline figure)")
    p.add_argument("--set", dest="extra", action="append", default=[], metavar="KEY=VALUE",
                   help="a variant over the preset for the seqapps tagger (repeatable), e.g. model.crf=false")
    p.add_argument("--nltk-iterations", type=int, default=5)
    p.add_argument("--spacy-set", dest="spacy_extra", action="append", default=[], metavar="KEY=VALUE",
                   help="a spacy train override over benchmarks/peers/spacy_tagger.cfg (repeatable), "
                        "e.g. training.max_epochs=10")
    p.add_argument("--no-spacy", action="store_true", help="leave spaCy's tagger out")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "out" / "pos"))
    args = p.parse_args(argv)
    names = [d.strip() for d in args.datasets.split(",") if d.strip()]
    for name in names:
        if name not in known + [SMOKE]:
            p.error(f"unknown dataset {name!r}; expected some of {', '.join(known + [SMOKE])}")

    from seqapps.training.fit import resolve_config

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    commit, started, results = commit_label(), time.time(), {}
    for name in names:
        splits = task.load_data(resolve_config(task, name))
        train, test = splits.train, splits.test
        seen = {w.lower() for words, _ in train for w in words}
        gold = [t for _, t in test]
        oov = [[w.lower() not in seen for w in words] for words, _ in test]
        rows = baseline_rows(name, train, test, gold, oov, args.nltk_iterations)
        if not args.no_spacy:
            label, rows[label] = spacy_row(name, splits, gold, oov, args, out)
        label, rows[label], cfg = seqapps_row(name, test, gold, oov, args, out)
        results[name] = {"train_sentences": len(train), "val_sentences": len(splits.val),
                         "test_sentences": len(test), "taggers": rows, "config": cfg.to_dict()}

    summary = {"command": "python benchmarks/pos.py " + " ".join(argv if argv is not None else sys.argv[1:]),
               "date": time.strftime("%Y-%m-%d", time.gmtime()), "commit": commit,
               "machine": f"{os.cpu_count()} CPU cores {platform.machine()}",
               "wall_seconds": round(time.time() - started, 1), "results": results}
    (out / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
    print_tables(summary)


if __name__ == "__main__":
    main()

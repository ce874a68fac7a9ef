"""pos on UD English-EWT and UD English-ATIS: UPOS accuracy (and OOV accuracy) of the
seqapps tagger beside a most-frequent-tag baseline and NLTK's averaged perceptron.

Protocol (../shared/datasets/README.md):
- ud_english_ewt: train on en_ewt-ud-dev.conllu, its last 10% of sentences validate
  (checkpoint choice, early stopping), UPOS token accuracy on en_ewt-ud-test.conllu;
- ud_english_atis: the standard train/dev/test files, UPOS accuracy on test.

Every tagger sees the same training sentences (the validation part is not trained on by
any of them) and is scored on the same gold-tokenized test sentences. OOV words are test
words whose lower-cased form never occurs in the training sentences (the seqapps word
vocabulary is uncapped, so these are exactly the words it has no embedding for).

- most-frequent tag: each word's most frequent training tag (exact form, else its
  lower-cased form), else the most frequent tag overall;
- NLTK: ``PerceptronTagger(load=False).train(sentences, nr_iter=5)``, no downloads;
- seqapps: ``seqapps.train("pos", <dataset>)`` with the task's defaults plus the
  dataset's recipe in ``DATASETS`` (EWT: CRF, word dropout 2, EMA, count vectors built
  by ``build_count_vectors`` from SST-2/Anki/Shakespeare English text), scored through
  the exported graph's ``tag_tokens`` signature code path.

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

from seqapps.data.readers import read_table, read_text_file  # noqa: E402

# dataset -> seqapps overrides (the rest are the task's defaults). EWT's 22k training tokens
# leave 16% of test tokens unseen: its recipe adds a CRF, stronger rare-word dropout, weight
# averaging and (with --vectors auto) frozen count vectors from unlabeled text.
DATASETS = {"ud_english_ewt": ["train.epochs=30", "train.patience=5", "model.crf=true", "model.word_dropout=2.0",
                               "train.ema=0.99"],
            "ud_english_atis": ["train.epochs=15", "train.patience=3"],
            "demo": ["train.epochs=2"]}  # a smoke test of this script, not a benchmark
VECTORS_AUTO = {"ud_english_ewt"}  # datasets that get count vectors with --vectors auto


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


def score(gold, predicted, oov):
    flat = [(g == p, o) for gs, ps, os_ in zip(gold, predicted, oov) for g, p, o in zip(gs, ps, os_)]
    hits = sum(h for h, _ in flat)
    oov_flat = [h for h, o in flat if o]
    return {"accuracy": hits / len(flat), "oov_accuracy": sum(oov_flat) / len(oov_flat) if oov_flat else None,
            "tokens": len(flat), "oov_tokens": len(oov_flat)}


UNLABELED = {  # dataset -> how to read its English text (no labels are used)
    "sst2": lambda d: read_table(d / "sst2" / "train.tsv", ["sentence"])["sentence"].tolist(),
    "anki_fra_eng": lambda d: [line.split("\t", 1)[0] for line in _lines(d / "anki_fra_eng" / "fra.txt")],
    "tinyshakespeare": lambda d: _lines(d / "tinyshakespeare" / "input.txt"),
}


def _lines(path):
    return [x for x in read_text_file(path).splitlines() if x.strip()]


def build_count_vectors(path, data_dir, dim=100):
    """Word vectors from the English text of the other offline datasets (SST-2 training
    sentences, the English side of Anki, Tiny Shakespeare; about 2.1 million tokens),
    tokenized like the tagger's raw-text input, by PPMI + SVD. No labels, nothing from EWT."""
    import tensorflow as tf

    from seqapps.data.vectors import count_vectors, write_vectors
    from tasks.pos import tokenize

    if Path(path).exists():
        return path
    t0 = time.time()
    texts = [line for read in UNLABELED.values() for line in read(Path(data_dir))]
    sentences = []
    for i in range(0, len(texts), 20000):
        ragged = tokenize(tf.constant(texts[i:i + 20000]))
        sentences += [[w.decode("utf-8") for w in row] for row in ragged.to_list()]
    words, matrix = count_vectors(sentences, dim=dim, window=2, min_count=2)
    write_vectors(path, words, matrix)
    print(f"count vectors: {len(words)} words x {dim} from {sum(map(len, sentences))} tokens of "
          f"{', '.join(UNLABELED)} in {time.time() - t0:.0f} s -> {path}", flush=True)
    return path


def commit_label() -> str:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "tasks/pos.py", "seqapps/layers/crf.py",
                            "seqapps/data/conllu.py", "seqapps/metrics.py", "benchmarks/pos.py"],
                           cwd=ROOT, capture_output=True, text=True).stdout.strip()
    return commit + (" (with uncommitted changes)" if dirty else "")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", default="ud_english_ewt,ud_english_atis",
                   help="comma-separated subset of " + ", ".join(DATASETS))
    p.add_argument("--epochs", type=int, help="override the task's epoch budget")
    p.add_argument("--set", dest="extra", action="append", default=[], metavar="KEY=VALUE",
                   help="config override for the seqapps tagger (repeatable), e.g. model.crf=true")
    p.add_argument("--nltk-iterations", type=int, default=5)
    p.add_argument("--vectors", choices=["auto", "none", "count"], default="auto",
                   help="count: give the seqapps tagger frozen word vectors built from the unlabeled English "
                   "text of the other offline datasets (" + ", ".join(UNLABELED) + "); auto: for "
                   + ", ".join(sorted(VECTORS_AUTO)) + " only")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "out" / "pos"))
    args = p.parse_args(argv)

    import seqapps
    from seqapps import registry
    from seqapps.training import resolve_config

    task = registry.get("pos")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    commit, started, results = commit_label(), time.time(), {}

    def vector_overrides(name):
        if args.vectors == "none" or (args.vectors == "auto" and name not in VECTORS_AUTO):
            return []
        from seqapps.data.catalog import data_dir

        return [f"model.word_vectors={Path(build_count_vectors(out / 'count_vectors.txt', data_dir())).resolve()}"]
    for name in [d.strip() for d in args.datasets.split(",") if d.strip()]:
        splits = task.load_data(resolve_config(task, name))
        train, test = splits.train, splits.test
        seen = {w.lower() for words, _ in train for w in words}
        gold = [t for _, t in test]
        oov = [[w.lower() not in seen for w in words] for words, _ in test]
        rows = {}
        for label, tagger, kwargs in (("most-frequent tag", MostFrequentTag(), {}),
                                      ("NLTK averaged perceptron", NltkPerceptron(),
                                       {"iterations": args.nltk_iterations})):
            t0 = time.time()
            tagger.train(train, **kwargs)
            seconds = time.time() - t0
            rows[label] = {**score(gold, tagger.tag([w for w, _ in test]), oov), "train_seconds": round(seconds, 2)}
            print(f"{name}  {label}: {rows[label]}", flush=True)

        if name not in DATASETS:
            p.error(f"unknown dataset {name!r}; expected some of {', '.join(DATASETS)}")
        overrides = DATASETS[name] + ["train.backup_every=0"] + (
            [f"train.epochs={args.epochs}"] if args.epochs is not None else []) + vector_overrides(name) + args.extra
        t0 = time.time()
        run = seqapps.train("pos", name, overrides=overrides, run_dir=out / name,
                            overwrite=True, verbose=2)
        seconds = time.time() - t0
        predictor = run.predictor()
        predicted = [r["tags"] for r in predictor.analyze([w for w, _ in test])]
        history = run.dir / "history.csv"
        epochs_run = max(0, len(history.read_text().strip().splitlines()) - 1) if history.exists() else None
        cfg = run.config
        label = f"seqapps {'BiLSTM-CRF' if cfg.model.crf else 'BiLSTM'} (char {cfg.model.char_encoder}" + (
            ", count vectors)" if cfg.model.word_vectors else ")")
        rows[label] = {**score(gold, predicted, oov), "train_seconds": round(seconds, 2),
                       "fit_seconds": run.metrics.get("train_seconds"), "epochs_run": epochs_run,
                       "val_accuracy": run.metrics["val"]["accuracy"]}
        print(f"{name}  {label}: {rows[label]}", flush=True)
        results[name] = {"train_sentences": len(train), "val_sentences": len(splits.val),
                         "test_sentences": len(test), "taggers": rows, "config": cfg.to_dict()}

    wall = time.time() - started
    summary = {"command": "python benchmarks/pos.py " + " ".join(argv if argv is not None else sys.argv[1:]),
               "date": time.strftime("%Y-%m-%d", time.gmtime()), "commit": commit,
               "machine": f"{os.cpu_count()} CPU cores {platform.machine()}", "wall_seconds": round(wall, 1),
               "results": results}
    (out / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
    print()
    for name, r in results.items():
        print(f"### {name} (train {r['train_sentences']} / val {r['val_sentences']} / test {r['test_sentences']} "
              "sentences)\n")
        print("| tagger | UPOS accuracy | OOV accuracy (OOV tokens) | training time |")
        print("|---|---|---|---|")
        for label, row in r["taggers"].items():
            oov_acc = "n/a" if row["oov_accuracy"] is None else f"{row['oov_accuracy']:.4f}"
            extra = f", {row['epochs_run']} epochs" if row.get("epochs_run") is not None else ""
            print(f"| {label} | {row['accuracy']:.4f} | {oov_acc} ({row['oov_tokens']}) | "
                  f"{row['train_seconds']:.1f} s{extra} |")
        print()
    print(f"wall time {wall / 60:.1f} min, commit {commit}, {summary['date']}, {summary['machine']}")


if __name__ == "__main__":
    main()

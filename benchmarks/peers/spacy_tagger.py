"""spaCy's tagger as a peer of the pos task, trained from scratch with ``spacy train``.

The pipeline is ``benchmarks/peers/spacy_tagger.cfg``: made by ``spacy init config
--pipeline tagger --lang en --optimize efficiency`` (a hash-embedding CNN ``tok2vec``, no
static vectors, no pretrained pipeline), with the training length set for the benchmark
(see the ``[training]`` block there). The tagger learns ``Token.tag_``, which here holds the
UPOS tag of each word.

Tokens are given, never re-tokenized: sentences become ``Doc(vocab, words=words)`` with their
spacing unknown (``Doc.has_unknown_spaces``, kept by ``DocBin``), so spaCy's corpus reader
builds each training and dev example on the gold tokens instead of running the tokenizer over
the text, and tagging runs the pipeline on such a ``Doc``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

CONFIG = Path(__file__).with_name("spacy_tagger.cfg")


def to_docs(sentences, vocab) -> list:
    """``Doc`` objects on the given tokens: ``sentences`` are ``(words, tags)`` pairs, or word
    lists (no tags); the spacing is left unknown so nothing is re-tokenized. spaCy refuses an
    empty token, so ``""`` is given as one space (still one token)."""
    from spacy.tokens import Doc

    docs = []
    for item in sentences:
        words, tags = (item, None) if not isinstance(item, tuple) else item
        docs.append(Doc(vocab, words=[w or " " for w in words], tags=list(tags) if tags is not None else None))
    return docs


def write_docbin(sentences, path) -> Path:
    """``sentences`` (``(words, tags)`` pairs) as a ``.spacy`` file of gold-tokenized docs."""
    import spacy
    from spacy.tokens import DocBin

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    DocBin(attrs=["ORTH", "TAG"], docs=to_docs(sentences, spacy.blank("en").vocab)).to_disk(path)
    return path


class SpacyTagger:
    """A trained pipeline (``model-best`` of a ``spacy train`` run) tagging given tokens."""

    def __init__(self, path, train_seconds: float | None = None, log: list[dict] | None = None):
        import spacy

        self.path = Path(path)
        self.nlp = spacy.load(self.path)
        self.train_seconds = train_seconds
        self.log = log or []

    @property
    def epochs_run(self) -> int | None:
        """Epochs started by the training (spaCy counts them from 0), from its evaluation log."""
        return self.log[-1]["epoch"] + 1 if self.log else None

    @property
    def best(self) -> dict | None:
        """The evaluation that chose ``model-best`` (highest dev score; the first one on ties)."""
        return max(self.log, key=lambda r: r["score"]) if self.log else None

    def docs(self, sentences, batch_size: int = 256) -> list:
        """The pipeline's output ``Doc`` per word list, on exactly those tokens."""
        return list(self.nlp.pipe(to_docs([list(w) for w in sentences], self.nlp.vocab), batch_size=batch_size))

    def tag(self, sentences) -> list[list[str]]:
        """One tag per given token, per sentence (word lists)."""
        return [[t.tag_ for t in doc] for doc in self.docs(sentences)]


def train(train_sentences, dev_sentences, out_dir, overrides=None, config=CONFIG, quiet=False) -> SpacyTagger:
    """Runs ``python -m spacy train CONFIG`` on ``(words, tags)`` sentences (the dev sentences choose
    ``model-best`` and stop it early) with ``--key value`` ``overrides`` (``{"training.max_epochs": 2}``),
    and returns the best pipeline; ``train_seconds`` is the wall time of that command (its start-up
    included)."""
    out_dir = Path(out_dir)
    train_path = write_docbin(train_sentences, out_dir / "train.spacy")
    dev_path = write_docbin(dev_sentences, out_dir / "dev.spacy")
    log_path = out_dir / "training_log.jsonl"
    log_path.unlink(missing_ok=True)
    command = [sys.executable, "-m", "spacy", "train", str(config), "--output", str(out_dir / "model"),
               "--paths.train", str(train_path), "--paths.dev", str(dev_path),
               "--training.logger.output_file", str(log_path)]
    for key, value in (overrides or {}).items():
        command += [f"--{key}", str(value)]
    t0 = time.time()
    done = subprocess.run(command, capture_output=quiet, text=True)
    seconds = time.time() - t0
    if done.returncode != 0:
        detail = (done.stderr or "")[-2000:] if quiet else "see the output above"
        raise RuntimeError(f"spacy train failed with exit status {done.returncode}: {detail}")
    log = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()] if log_path.exists() else []
    return SpacyTagger(out_dir / "model" / "model-best", train_seconds=seconds, log=log)

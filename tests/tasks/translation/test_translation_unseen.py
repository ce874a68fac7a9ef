"""translation's unseen-source figure: BLEU and chrF over the test pairs whose source sentence, as the
model reads it (standardized), is no training source -- on the demo data, with training sources
slipped into the test pairs under other spellings and other references."""

from __future__ import annotations

from seqapps.core import registry
from seqapps.core.task import Splits
from tasks.translation.data import source_keys, unseen_sources
from seqapps.analysis.metrics import format_translation


def demo():
    task = registry.get("translation")
    cfg = task.default_config()
    cfg.data.source = "demo"
    streams = task.load_data(cfg)
    return task, cfg, Splits(*(getattr(streams, s).materialize() for s in ("train", "val", "test")))


def with_seen_sources(splits):
    """The demo test pairs, then five training sources written otherwise (case, spacing, a curly
    apostrophe, a non-breaking space) with another sentence's reference, then a sentence no split has."""
    train = splits.train[0]
    elided = next(s for s in train if "'" in s)
    seen = [train[0], train[1].upper(), "  " + train[2].replace(" ", "   ") + " ", elided.replace("'", "\u2019"),
            train[3].replace(" ", "\u00a0", 1)]
    sources, references = list(splits.test[0]), list(splits.test[1])
    n = len(sources)
    sources += seen + ["Zorglub mange des chaussettes vertes."]
    references += references[:len(seen)] + ["Zorglub eats green socks."]
    return sources, references, set(range(n, n + len(seen)))


def test_unseen_sources_leave_out_every_training_source_however_it_is_written():
    _, _, splits = demo()
    sources, _, seen = with_seen_sources(splits)
    train = set(splits.train[0])
    assert [sources[i] in train for i in sorted(seen)] == [True, False, False, False, False]  # 4 written otherwise
    unseen = unseen_sources(sources, splits.train[0])
    assert set(unseen) == set(range(len(sources))) - seen  # the demo test sources and the new sentence
    assert all(sources[i] not in train for i in unseen)
    keys = set(source_keys(splits.train[0]))
    assert all(source_keys([sources[i]])[0] in keys for i in seen)
    assert unseen_sources([], splits.train[0]) == [] and unseen_sources(sources[:2], []) == [0, 1]


class EchoPredictor:
    """Answers a seen source with its reference and any other with nonsense, so any seen pair counted
    as unseen lifts the unseen BLEU above 0."""

    decoding_defaults = (4, 0.6)

    def __init__(self, cfg, answers):
        self.metadata, self.answers = {"config": cfg.to_dict()}, answers

    def translate(self, sources):
        return [self.answers[s] for s in sources]


def test_evaluate_scores_the_unseen_pairs_alone():
    task, cfg, splits = demo()
    sources, references, seen = with_seen_sources(splits)
    answers = {s: (r if i in seen else "xq zv") for i, (s, r) in enumerate(zip(sources, references))}
    report = task.evaluate(EchoPredictor(cfg, answers), (sources, references), cfg)
    assert report["examples"] == len(sources) and report["bleu"] > 5.0
    assert report["unseen_source"]["examples"] == len(sources) - len(seen) == len(splits.test[0]) + 1
    assert report["unseen_source"]["bleu"] == 0.0 and report["unseen_source"]["chrf"] < report["chrf"]
    assert "unseen sources: BLEU 0.00" in format_translation(report)
    cfg.data.source = "/nonexistent/pairs.tsv"  # the training data cannot be read: no unseen figure, no failure
    assert "unseen_source" not in task.evaluate(EchoPredictor(cfg, answers), (sources, references), cfg)

"""spaCy's tagger as a pos peer (benchmarks/peers/spacy_tagger.py) and the worst-tags score of
benchmarks/pos.py: a few training steps on the pos task's demo sentences, tokens kept as given."""

from __future__ import annotations

import pytest

spacy = pytest.importorskip("spacy")

from benchmarks.peers import spacy_tagger  # noqa: E402
from benchmarks.pos import worst_tags  # noqa: E402
from tasks.pos.demo import sentences  # noqa: E402

# spaCy's own tokenizer splits each of these; given as one token each, they must stay one token
GLUED = ["cat.", "(again)", "dog,", "Paris!"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    data = sentences()
    train = data[:300] + [(["Anna", "sees", "the", "cat."], ["PROPN", "VERB", "DET", "NOUN"])]
    tagger = spacy_tagger.train(train, data[300:350], tmp_path_factory.mktemp("spacy"), quiet=True,
                                overrides={"training.max_steps": 30, "training.eval_frequency": 10})
    return tagger, train, data[350:]


@pytest.mark.slow
def test_tokens_are_kept_in_training_and_tagging(trained, tmp_path):
    tagger, train, test = trained
    assert all(len(tagger.nlp.make_doc(token)) > 1 for token in GLUED)  # what re-tokenizing would do

    # the training examples spaCy's corpus reader builds are on the given tokens
    corpus = spacy.training.Corpus(spacy_tagger.write_docbin(train[-1:], tmp_path / "one.spacy"))
    (example,) = list(corpus(tagger.nlp))
    assert [t.text for t in example.predicted] == ["Anna", "sees", "the", "cat."]

    words = ["Tom", "sees", "the", "dog,", "and", "she", "sleeps", "(again)", "near", "Paris!", ""]
    sentence_lists = [words, list(test[0][0]), [], ["cat."]]
    docs = tagger.docs(sentence_lists)
    assert [[t.text for t in doc] for doc in docs] == [[w or " " for w in s] for s in sentence_lists]
    tags = tagger.tag(sentence_lists)
    assert [len(t) for t in tags] == [len(s) for s in sentence_lists]
    labels = {t for _, ts in train for t in ts}
    assert all(t in labels for sent in tags for t in sent)

    # thirty steps are enough to tag the easy demo sentences mostly right
    predicted = tagger.tag([w for w, _ in test])
    gold = [t for _, t in test]
    hits = sum(p == g for ps, gs in zip(predicted, gold) for p, g in zip(ps, gs))
    assert hits / sum(len(g) for g in gold) > 0.8
    assert tagger.log and tagger.log[-1]["step"] == 30 and 0 <= tagger.best["score"] <= 1


def test_worst_tags_f1_by_hand():
    gold = [["DET", "NOUN", "VERB"], ["NOUN", "NOUN"]]
    predicted = [["DET", "VERB", "VERB"], ["NOUN", "ADJ"]]
    # NOUN: precision 1/1, recall 1/3 -> F1 0.5; VERB: precision 1/2, recall 1/1 -> 2/3; DET 1.0;
    # ADJ is only predicted (no gold token): not ranked
    rows = worst_tags(gold, predicted, k=5)
    assert [r[0] for r in rows] == ["NOUN", "VERB", "DET"]
    assert [r[1] for r in rows] == pytest.approx([0.5, 2 / 3, 1.0])
    assert [r[2] for r in rows] == [3, 1, 1]
    assert worst_tags(gold, predicted, k=2) == [("NOUN", pytest.approx(0.5), 3), ("VERB", pytest.approx(2 / 3), 1)]

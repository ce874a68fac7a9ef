"""The character n-gram peers of char_lm: proper distributions, NLTK agreement, sanity of the losses."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from benchmarks.peers.ngram_lm import AddOneLM, KneserNeyLM, peer_rows
from tasks.char_lm.demo import text as demo_text

REPETITIVE = "the quick brown fox jumps over the lazy dog. " * 40
CONTEXTS = ["", "t", "the qu", "lazy d", "og. th", "zzzzzz", "\u00e9#", "fox"]


def random_text(n, alphabet, seed=0):
    rng = random.Random(seed)
    return "".join(rng.choice(alphabet) for _ in range(n))


def test_demo_smoke_rows_and_best_order():
    demo = demo_text(12_000)
    cut = int(len(demo) * 0.9)
    out = peer_rows(demo[:cut], demo[cut:], orders=range(3, 6))
    names = [r["model"] for r in out["rows"]]
    assert names[:2] == ["unigram, add-one", "bigram, add-one"] and len(names) == 5
    for r in out["rows"]:
        assert r["val_chars"] == len(demo) - cut - 1
        assert 0 < r["nats_per_char"] < math.log(out["vocabulary_size"])
        assert r["bits_per_char"] == pytest.approx(r["nats_per_char"] / math.log(2))
        assert r["fit_seconds"] >= 0 and r["score_seconds"] >= 0
    kn = [r for r in out["rows"] if r["model"].startswith("Kneser-Ney")]
    assert out["best"]["nats_per_char"] == min(r["nats_per_char"] for r in kn)
    assert out["best"]["nats_per_char"] < out["rows"][1]["nats_per_char"] < out["rows"][0]["nats_per_char"]


@pytest.mark.parametrize("model", [KneserNeyLM(1), KneserNeyLM(3), KneserNeyLM(6), KneserNeyLM(4, discount=0.3),
                                   AddOneLM(1), AddOneLM(2), AddOneLM(4)],
                         ids=lambda m: f"{type(m).__name__}-{m.order}-{m.__dict__.get('discount')}")
def test_probabilities_over_the_vocabulary_sum_to_one(model):
    model.fit(demo_text(5_000))
    for context in CONTEXTS:
        dist = model.distribution(context)
        assert dist.shape == (model.size,) and (dist >= 0).all()
        assert dist.sum() == pytest.approx(1.0, abs=1e-12), context


def test_unseen_characters_get_the_unknown_symbols_share():
    lm = KneserNeyLM(4).fit(demo_text(5_000))
    assert "\u00e9" not in lm.vocab
    logs = lm.log_probs("the \u00e9lan of the king", start=1)
    assert np.isfinite(logs).all() and len(logs) == 19
    unk = lm.distribution("the ")[-1]
    assert 0 < unk < 1 / lm.size                       # only the uniform floor's share
    assert lm.prob("\u00e9", "the ") == lm.prob("\u00a7", "the ") == unk  # every unseen character is the unknown symbol
    assert math.isclose(logs[3], math.log(unk))        # text[4] = 'é' after 'the '
    # a context holding an unseen character backs off to the history after it
    np.testing.assert_allclose(lm.distribution("x\u00e9 th"), lm.distribution(" th"))


def test_matches_nltk_kneser_ney_interpolated_on_a_tiny_text():
    from nltk.lm import KneserNeyInterpolated
    from nltk.util import everygrams

    # every n-gram at the start recurs later, so NLTK's raw-count gamma equals the continuation one
    text = "the cat sat on the mat. the dog sat on the log. a cat and a dog met on the mat."
    for order in (2, 3, 4):
        ref = KneserNeyInterpolated(order)  # fixed discount 0.1, undiscounted unigram continuation counts
        ref.fit([everygrams(list(text), max_len=order)], vocabulary_text=list(text))
        lm = KneserNeyLM(order, discount=0.1).fit(text)
        for context in ["", "t", "th", "the", " ca", "og.", "xyz", "e m", " a "]:
            want = [ref.score(c, list(context[-(order - 1):])) for c in lm.vocab[:-1]]
            np.testing.assert_allclose(lm.distribution(context)[:-1], want, rtol=1e-12, atol=1e-15)
            assert lm.distribution(context)[-1] == 0.0  # no floor in this formulation: NLTK's <UNK> gets 0 too


def test_add_one_closed_form():
    text = "abracadabra"
    uni, bi = AddOneLM(1).fit(text), AddOneLM(2).fit(text)
    v = len(set(text)) + 1
    assert uni.prob("a") == pytest.approx((5 + 1) / (11 + v))
    assert bi.prob("b", "xa") == pytest.approx((2 + 1) / (4 + v))  # 'a' is followed 4 times (last 'a' ends the text)
    assert bi.prob("z", "a") == pytest.approx(1 / (4 + v))


def test_lower_loss_on_repetitive_than_on_random_text():
    lm = KneserNeyLM(5).fit(REPETITIVE)
    alphabet = sorted(set(REPETITIVE))
    repetitive = lm.nats_per_char(REPETITIVE[7:400])
    rand = lm.nats_per_char(random_text(393, alphabet))
    assert repetitive < 0.1 < math.log(len(alphabet)) < rand


def test_higher_orders_beat_lower_orders_on_repetitive_text():
    # a 300-character passage over 3 letters, repeated: the longer the history, the better it pins down the place
    passage = random_text(300, "abc", seed=1)
    losses = [KneserNeyLM(k).fit(passage * 8).nats_per_char(passage * 2, start=300) for k in range(2, 8)]
    assert all(b < a for a, b in zip(losses, losses[1:])), losses
    assert losses[-1] < 0.25 * losses[0]

"""Demo text for word vectors: short sentences composed from our own phrases, with a planted pair.

Words of one kind (animals, foods, places...) share their templates, so they end up near each
other; the planted pair :data:`PLANTED` ("violin", "cello") shares templates that no other word
uses, each sentence picking one of the two at random: their contexts are identical in distribution,
so skip-gram gives them nearly the same vectors and each is the other's nearest neighbour.
"""

from __future__ import annotations

import random

PLANTED = ("violin", "cello")

_KINDS = {
    "animal": (["cat", "dog", "horse", "goat", "rabbit", "fox"],
               ["the {} chased the ball across the yard", "a small {} slept by the warm fire",
                "my neighbour feeds her {} every morning", "the {} ran into the barn"]),
    "food": (["bread", "cheese", "soup", "apples", "rice", "honey"],
             ["she bought fresh {} at the market", "we ate {} for dinner tonight",
              "the {} tasted sweet and warm", "please pass me some {}"]),
    "place": (["london", "paris", "rome", "madrid", "vienna", "lisbon"],
              ["they flew to {} last summer", "the train to {} leaves at noon",
               "he lived in {} for ten years", "the streets of {} were busy"]),
    "colour": (["red", "blue", "green", "yellow", "purple", "orange"],
               ["she painted the door {}", "the sky turned {} at dusk", "a {} coat hung on the wall",
                "his favourite colour is {}"]),
    "planted": (list(PLANTED),
                ["he played the {} at the concert", "the {} sang softly in the hall",
                 "she tuned her {} before the show", "an old {} rested in its case"]),
}


def lines(n: int = 3000, seed: int = 0) -> list[str]:
    """``n`` sentences, the same for the same seed."""
    rng, out, kinds = random.Random(seed), [], list(_KINDS)
    for _ in range(n):
        words, templates = _KINDS[rng.choice(kinds)]
        out.append(rng.choice(templates).format(rng.choice(words)))
    return out

"""Demo sentiment data: short film-review sentences composed from our own phrases."""

from __future__ import annotations

import itertools
import random

_SUBJECTS = ["the film", "this movie", "the story", "the acting", "the script", "the ending", "the soundtrack",
             "the director's new picture", "the cast", "every scene"]
_POSITIVE = ["is wonderful", "was a delight", "is gripping and beautiful", "felt warm and funny",
             "is a joy to watch", "was brilliant", "is moving and smart", "left me smiling",
             "is clever , tender and alive", "deserves every award"]
_NEGATIVE = ["is dull", "was a mess", "is far too long", "felt flat and lifeless", "is painful to sit through",
             "was boring", "is clumsy and loud", "left me cold", "is tedious , shallow and slow",
             "wastes its talent"]
_TAILS = ["", " .", " !", " , honestly .", " from start to finish ."]


def examples(seed: int = 0) -> list[tuple[str, str]]:
    """1,000 labelled sentences, shuffled deterministically."""
    rows = []
    for subject, phrase, tail in itertools.product(_SUBJECTS, _POSITIVE, _TAILS):
        rows.append((f"{subject} {phrase}{tail}", "positive"))
    for subject, phrase, tail in itertools.product(_SUBJECTS, _NEGATIVE, _TAILS):
        rows.append((f"{subject} {phrase}{tail}", "negative"))
    random.Random(seed).shuffle(rows)
    return rows

"""Demo POS data: short sentences composed from our own phrase templates, tagged with UPOS.

Some words take different tags in different places ("runs" as NOUN and VERB, "that"
as DET and SCONJ, "back" as ADV and NOUN), so a tagger has to read the context.
"""

from __future__ import annotations

import random

_DET = ["the", "a", "this", "that", "every", "my", "our"]
_ADJ = ["old", "small", "quiet", "bright", "happy", "green", "tired", "clever"]
_NOUN = ["cat", "dog", "river", "teacher", "garden", "city", "boat", "letter", "song", "runs", "back"]
_PROPN = ["Anna", "Paris", "Tom", "Lisbon", "Maria", "Kenji"]
_PRON = ["she", "he", "they", "we", "I", "you"]
_VERB_T = ["sees", "likes", "paints", "finds", "builds", "carries", "hears", "visits"]
_VERB_I = ["sleeps", "runs", "sings", "waits", "laughs", "swims"]
_ADV = ["quickly", "slowly", "today", "often", "back", "again"]
_ADP = ["near", "in", "under", "behind", "with", "from"]
_CCONJ = ["and", "but"]
_NUM = ["two", "three", "5", "12", "seven"]


def _np(rng, plural_ok=True):
    kind = rng.random()
    if kind < 0.2:
        return [(rng.choice(_PROPN), "PROPN")]
    if kind < 0.3 and plural_ok:
        return [(rng.choice(_NUM), "NUM"), (rng.choice(_NOUN[:8]) + "s", "NOUN")]
    words = [(rng.choice(_DET), "DET")]
    if rng.random() < 0.5:
        words.append((rng.choice(_ADJ), "ADJ"))
    return words + [(rng.choice(_NOUN), "NOUN")]


def _subject(rng):
    return [(rng.choice(_PRON), "PRON")] if rng.random() < 0.3 else _np(rng, plural_ok=False)


def _clause(rng):
    words = _subject(rng)
    if rng.random() < 0.5:
        words += [(rng.choice(_VERB_T), "VERB")] + _np(rng)
    else:
        words += [(rng.choice(_VERB_I), "VERB")]
    if rng.random() < 0.4:
        words += [(rng.choice(_ADV), "ADV")]
    if rng.random() < 0.4:
        words += [(rng.choice(_ADP), "ADP")] + _np(rng)
    return words


def _sentence(rng):
    words = _clause(rng)
    roll = rng.random()
    if roll < 0.2:
        words += [(",", "PUNCT"), (rng.choice(_CCONJ), "CCONJ")] + _clause(rng)
    elif roll < 0.3:
        words = [(rng.choice(_PRON), "PRON"), ("knows", "VERB"), ("that", "SCONJ")] + words
    words.append((rng.choice([".", ".", "!", "?"]), "PUNCT"))
    if words[0][1] != "PROPN" and words[0][0] != "I":
        words[0] = (words[0][0].capitalize(), words[0][1])
    return words


def sentences(n: int = 400, seed: int = 0) -> list[tuple[list[str], list[str]]]:
    """``n`` tagged sentences ``(words, tags)``, deterministic for a seed."""
    rng, out = random.Random(seed), []
    for _ in range(n):
        pairs = _sentence(rng)
        out.append(([w for w, _ in pairs], [t for _, t in pairs]))
    return out

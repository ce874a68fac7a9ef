"""Demo translation data: short English-French sentence pairs built from our own phrases.

Subjects with their verb forms in both languages, a few objects and adverbs; every
pair is a correct sentence in both languages.
"""

from __future__ import annotations

import itertools
import random

LANGUAGES = ("en", "fr")

# (English subject, French subject, person index 0..5: I, you, he, she, we, they)
_SUBJECTS = [("I", "Je", 0), ("You", "Tu", 1), ("He", "Il", 2), ("She", "Elle", 3), ("We", "Nous", 4),
             ("They", "Ils", 5)]

# English forms (I, you, he, she, we, they) and French forms per person
_VERBS = [
    (["like", "like", "likes", "likes", "like", "like"], ["aime", "aimes", "aime", "aime", "aimons", "aiment"]),
    (["see", "see", "sees", "sees", "see", "see"], ["vois", "vois", "voit", "voit", "voyons", "voient"]),
    (["want", "want", "wants", "wants", "want", "want"], ["veux", "veux", "veut", "veut", "voulons", "veulent"]),
    (["have", "have", "has", "has", "have", "have"], ["ai", "as", "a", "a", "avons", "ont"]),
]
_OBJECTS = [("the cat", "le chat"), ("the dog", "le chien"), ("the house", "la maison"), ("the car", "la voiture"),
            ("an apple", "une pomme"), ("a book", "un livre"), ("the bread", "le pain"), ("coffee", "du café")]
_STATES = [(["am", "are", "is", "is", "are", "are"], ["ai", "as", "a", "a", "avons", "ont"], "hungry", "faim"),
           (["am", "are", "is", "is", "are", "are"], ["ai", "as", "a", "a", "avons", "ont"], "cold", "froid"),
           (["am", "are", "is", "is", "are", "are"], ["ai", "as", "a", "a", "avons", "ont"], "thirsty", "soif")]
_TAILS = [("", ""), (" today", " aujourd'hui"), (" now", " maintenant")]


def _elide(subject: str, verb: str) -> str:
    """French elision: "Je aime" -> "J'aime"."""
    if subject == "Je" and verb[0] in "aeiouéh":
        return f"J'{verb}"
    return f"{subject} {verb}"


def pairs(seed: int = 0) -> list[tuple[str, str]]:
    """(English, French) pairs, shuffled deterministically (about 700)."""
    rows = []
    for (en_s, fr_s, p), (en_v, fr_v), (en_o, fr_o), (en_t, fr_t) in itertools.product(
            _SUBJECTS, _VERBS, _OBJECTS, _TAILS):
        rows.append((f"{en_s} {en_v[p]} {en_o}{en_t}.", f"{_elide(fr_s, fr_v[p])} {fr_o}{fr_t}."))
    for (en_s, fr_s, p), (en_b, fr_b, en_adj, fr_noun), (en_t, fr_t) in itertools.product(
            _SUBJECTS, _STATES, _TAILS):
        rows.append((f"{en_s} {en_b[p]} {en_adj}{en_t}.", f"{_elide(fr_s, fr_b[p])} {fr_noun}{fr_t}."))
        rows.append((f"{en_s} {en_b[p]} very {en_adj}{en_t}!", f"{_elide(fr_s, fr_b[p])} très {fr_noun}{fr_t} !"))
    random.Random(seed).shuffle(rows)
    return rows

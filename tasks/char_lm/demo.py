"""Demo text for the character language model: a small play composed from our own phrases.

Speakers' names in capitals followed by a colon, lines of verse, quoted speech
(so a unit can learn to track whether it is inside quotation marks) and indented
stage directions (so indentation and line position carry signal too).
"""

from __future__ import annotations

import random

_SPEAKERS = ["ALDA", "BERIC", "CORIN", "DESMA", "EVRARD", "FENNA"]
_OPENINGS = ["my lord", "good friend", "sweet sister", "fair cousin", "old father", "brave captain"]
_VERBS = ["will walk", "must speak", "shall wait", "would sing", "can see", "may stay", "did dream"]
_PLACES = ["by the river", "in the garden", "upon the hill", "under the moon", "beside the gate",
           "within the hall", "across the field"]
_TIMES = ["tonight", "at dawn", "ere the bell", "till morning", "this hour", "before the rain"]
_SAYINGS = ["the rose is red", "the sea is wide", "all roads lead home", "the night is long",
            "bread and salt", "the king is dead", "a fox in the wheat"]
_DIRECTIONS = ["They cross the stage.", "A bell rings far off.", "Enter a messenger, running.",
               "She lifts the lantern.", "Thunder, then silence.", "He kneels and listens."]


def _line(rng: random.Random) -> str:
    opening = rng.choice(_OPENINGS)
    line = f"{opening.capitalize()}, I {rng.choice(_VERBS)} {rng.choice(_PLACES)} {rng.choice(_TIMES)}"
    if rng.random() < 0.35:
        line += f', and say "{rng.choice(_SAYINGS)}"'
    return line + rng.choice([".", ";", "!", "?", ","])


def text(n_chars: int = 30_000, seed: int = 0) -> str:
    """About ``n_chars`` characters of the play, the same for the same seed."""
    rng, parts, size = random.Random(seed), [], 0
    while size < n_chars:
        speaker = rng.choice(_SPEAKERS)
        lines = [_line(rng) for _ in range(rng.randint(1, 4))]
        block = f"{speaker}:\n" + "\n".join(lines) + "\n"
        if rng.random() < 0.3:
            block += "    " + rng.choice(_DIRECTIONS) + "\n"
        parts.append(block + "\n")
        size += len(parts[-1])
    return "".join(parts)

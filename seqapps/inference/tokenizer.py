"""Raw text to the ids an ONNX or LiteRT export takes, in pure Python (no TensorFlow).

The exported graphs of those formats take ids, because their operators have no string
ops; this module is the part that runs outside the graph. It gives exactly the ids the
SavedModel's in-graph preprocessing gives (:func:`seqapps.data.text.standardize`, the
TextVectorization lookup, :func:`seqapps.layers.subwords.dense_char_ngram_ids`), which
``tests/inference/test_formats.py`` checks on random strings:

- RE2 (TensorFlow's regex engine) reads ``\\b`` and ``\\s`` as ASCII (``\\s`` is ``[\\t\\n\\f\\r ]``,
  no ``\\v``) and ``\\pL``/``\\pN``/``\\pM`` as Unicode categories; the classes here are built from
  :mod:`unicodedata` with :data:`re.ASCII` so the same characters match.
- ``tf.strings.lower`` (ICU) reads a C string, so a text ends at its first NUL character.
- ``tf.strings.strip`` and ``tf.strings.split`` use ASCII whitespace, ``\\v`` included.
- N-gram ids are FarmHash Fingerprint64 (what ``tf.strings.to_hash_bucket_fast`` uses) of each
  n-gram's UTF-8 bytes, modulo the bucket count, plus one; ``pyfarmhash`` provides it.

One known difference: character classes and lower-casing come from this Python's Unicode database
(3.11: Unicode 14.0), TensorFlow's from its newer RE2 and ICU tables; a letter or digit assigned since
(e.g. U+31350, CJK Extension H) is split off as punctuation here and kept in its word in the graph.

The export's ``tokenizer.json`` says which of these a graph needs (:class:`TextTokenizer`).
"""

from __future__ import annotations

import functools
import json
import re
import sys
import unicodedata
from pathlib import Path

import numpy as np

from seqapps.core.bounds import WORD_CHARS

SPLIT = re.compile(r"[ \t\n\v\f\r]+")  # absl's ASCII whitespace: what tf.strings.split and strip use
STRIP = " \t\n\v\f\r"


@functools.lru_cache(maxsize=1)
def _patterns():
    """The three substitutions of ``standardize`` with ``\\pL``, ``\\pN``, ``\\pM`` spelled out as ranges."""
    ranges = {"L": [], "N": [], "M": []}
    for cp in range(sys.maxunicode + 1):
        group = ranges.get(unicodedata.category(chr(cp))[0])
        if group is not None:
            if group and group[-1][1] == cp - 1:
                group[-1][1] = cp
            else:
                group.append([cp, cp])

    def cls(name):
        return "".join(re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}"
                       for a, b in ranges[name])

    letter_digit = f"[{cls('L')}{cls('N')}]"
    return (re.compile(f"({letter_digit})n't\\b", re.ASCII),
            re.compile(f"({letter_digit})'(s|re|ve|ll|d|m)\\b", re.ASCII),
            re.compile(f"([^{cls('L')}{cls('N')}{cls('M')}_\\t\\n\\f\\r '])", re.ASCII),
            re.compile(r"[\t\n\f\r ]+"))


def standardize(text: str) -> str:
    """:func:`seqapps.data.text.standardize` of one string: lower-case, punctuation split off words."""
    negation, clitic, punctuation, spaces = _patterns()
    text = text.split("\0", 1)[0].lower()  # tf.strings.lower reads its input as a C string: it ends at NUL
    text = negation.sub(r"\1 n't", text)
    text = clitic.sub(r"\1 '\2", text)
    text = punctuation.sub(r" \1 ", text)
    return spaces.sub(" ", text).strip(STRIP)


# RE2's \\S (what the graph's word cut matches): anything but its \\s, [\\t\\n\\f\\r ] (\\v is not in it)
LONG_WORD = re.compile(r"([^\t\n\f\r ]{%d})[^\t\n\f\r ]+" % WORD_CHARS)


def words(text: str) -> list[str]:
    """The words of one text, split as the vectorizer splits them, after the signatures' cut of every run
    of non-space characters to its first ``WORD_CHARS`` (seqapps.core.bounds)."""
    return [w for w in SPLIT.split(standardize(LONG_WORD.sub(r"\1", text))) if w]


@functools.lru_cache(maxsize=1)
def _fingerprint64():
    try:
        import farmhash
    except ImportError as e:  # pragma: no cover - pinned in requirements.txt
        raise ImportError("hashed n-gram ids need pyfarmhash (pip install pyfarmhash)") from e
    return farmhash.fingerprint64


def char_ngram_ids(word: str, buckets: int, min_n: int = 3, max_n: int = 5, max_grams: int = 40) -> list[int]:
    """:func:`seqapps.layers.subwords.char_ngram_ids` of one word."""
    fingerprint = _fingerprint64()
    chars = "<" + word + ">"
    ids = []
    for n in range(min_n, max_n + 1):
        for start in range(len(chars) - n + 1):
            ids.append(fingerprint(chars[start:start + n]) % buckets + 1)
            if len(ids) == max_grams:
                return ids
    return ids


class TextTokenizer:
    """Texts -> ``{"tokens": int64 [batch, time], "subwords": int64 [batch, time, grams]}`` as the
    SavedModel's graph builds them, from the spec an export's ``tokenizer.json`` holds:
    ``vocabulary`` (the ids 2.. in order; 0 is padding, 1 unknown), ``max_length``, and
    ``subwords`` (``buckets``, ``min_n``, ``max_n``, ``max_grams``) or null."""

    def __init__(self, spec: dict, vocabulary: list[str]):
        self.spec = spec
        self.max_length = int(spec["max_length"])
        self.ids = {w: i for i, w in enumerate(vocabulary, start=2)}
        sub = spec.get("subwords")
        self._grams = functools.lru_cache(maxsize=200_000)(
            functools.partial(_gram_tuple, **sub)) if sub else None

    @classmethod
    def load(cls, folder) -> "TextTokenizer":
        folder = Path(folder)
        spec = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
        vocabulary = json.loads((folder / spec["vocabulary"]).read_text(encoding="utf-8"))
        return cls(spec, vocabulary)

    def words(self, texts) -> list[list[str]]:
        return [words(t)[:self.max_length] for t in texts]

    def encode(self, texts) -> tuple[dict, list[list[str]]]:
        """The graph's inputs for ``texts`` and the (clipped) words they are."""
        rows = self.words(texts)
        width = max([len(r) for r in rows] + [1])
        tokens = np.zeros((len(rows), width), np.int64)
        for i, row in enumerate(rows):
            tokens[i, :len(row)] = [self.ids.get(w, 1) for w in row]
        inputs = {"tokens": tokens}
        if self._grams is not None:
            grams = [[self._grams(w) for w in row] for row in rows]
            depth = max([len(g) for row in grams for g in row] + [1])
            sub = np.zeros((len(rows), width, depth), np.int64)
            for i, row in enumerate(grams):
                for j, g in enumerate(row):
                    sub[i, j, :len(g)] = g
            inputs["subwords"] = sub
        return inputs, rows


def _gram_tuple(word, buckets, min_n=3, max_n=5, max_grams=40):
    return tuple(char_ngram_ids(word, buckets, min_n, max_n, max_grams))

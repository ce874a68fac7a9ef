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
def _category_ranges() -> dict:
    """RE2's ``\\pL``, ``\\pN``, ``\\pM`` as ``{"L": "a-z...", ...}``: the inside of a character class."""
    ranges = {"L": [], "N": [], "M": []}
    for cp in range(sys.maxunicode + 1):
        group = ranges.get(unicodedata.category(chr(cp))[0])
        if group is not None:
            if group and group[-1][1] == cp - 1:
                group[-1][1] = cp
            else:
                group.append([cp, cp])
    return {name: "".join(re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}"
                          for a, b in spans) for name, spans in ranges.items()}


@functools.lru_cache(maxsize=1)
def _patterns():
    """The three substitutions of ``standardize`` with ``\\pL``, ``\\pN``, ``\\pM`` spelled out as ranges."""
    cls = _category_ranges().__getitem__
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


# -- pos: tokens kept in case, word and character ids ---------------------------------------------------
_S, _END = r"[\t\n\f\r ]", r"([\t\n\f\r ]|\Z)"  # RE2's \s and $ (the end of the text only)


@functools.lru_cache(maxsize=1)
def _tagger_patterns():
    """:func:`tasks.pos.data.tokenize`'s substitutions, in its order, with RE2's classes spelled out."""
    c = _category_ranges()
    keep, digit = f"{c['L']}{c['N']}{c['M']}_", f"[{c['N']}]"
    between = [(re.compile(f"({digit}){re.escape(mark)}({digit})"), f"\\1{private}\\2")
               for mark, private in ((".", "\ue000"), (",", "\ue001"), (":", "\ue002"))]
    return ([(re.compile(f"(\\A|{_S})(['’])"), r"\1\2 "),
             (re.compile(f"(['’]){_END}"), r" \1\2"),
             (re.compile(f"([{keep}])([nN]['’][tT]){_END}"), r"\1 \2\3"),
             (re.compile(f"([{keep}])(['’](?:[sSdDmM]|[rR][eE]|[vV][eE]|[lL][lL])){_END}"), r"\1 \2\3")],
            between,
            [(re.compile(f"([^{keep}\\t\\n\\f\\r '’\ue000-\ue002])"), r" \1 ")])


def tagger_tokens(text: str) -> list[str]:
    """:func:`tasks.pos.data.tokenize` of one sentence (case kept), after the signatures' cut of every run
    of non-space characters to its first ``WORD_CHARS``."""
    clitics, between, alone = _tagger_patterns()
    text = LONG_WORD.sub(r"\1", text)
    for pattern, replacement in clitics:
        text = pattern.sub(replacement, text)
    for _ in range(2):  # twice, as the graph: "1,2,3" has overlapping matches
        for pattern, replacement in between:
            text = pattern.sub(replacement, text)
    for pattern, replacement in alone:
        text = pattern.sub(replacement, text)
    text = text.replace("\ue000", ".").replace("\ue001", ",").replace("\ue002", ":")
    return [t for t in SPLIT.split(text) if t]


def lower(word: str) -> str:
    """``tf.strings.lower(word, encoding="utf-8")``: it reads a C string, so a word ends at its first NUL."""
    return word.split("\0", 1)[0].lower()


class TaggerTokenizer:
    """Sentences or token lists -> ``{"words": int64 [batch, time], "chars": int64 [batch, time,
    max_word_length]}`` (and ``"vectors"`` when the tagger reads pretrained vectors), as
    :meth:`tasks.pos.data.TaggerData.encode` builds them in the graph: lower-cased words looked up in
    ``vocabulary`` (ids 2.. in order; 0 padding, 1 unknown), each word's characters (cased; a word over
    ``max_word_length`` keeps its first and last halves) looked up in ``chars`` the same way."""

    def __init__(self, spec: dict, vocabulary: list[str], chars: list[str], vector_words: list[str] | None = None):
        self.spec = spec
        self.width = int(spec["max_word_length"])
        self.ids = {w: i for i, w in enumerate(vocabulary, start=2)}
        self.char_ids = {ch: i for i, ch in enumerate(chars, start=2)}
        self.vector_ids = {w: i for i, w in enumerate(vector_words, start=2)} if vector_words else None
        self._word = functools.lru_cache(maxsize=200_000)(self._encode_word)

    @classmethod
    def load(cls, folder) -> "TaggerTokenizer":
        folder = Path(folder)
        spec = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))

        def read(key):
            return json.loads((folder / spec[key]).read_text(encoding="utf-8")) if spec.get(key) else None
        return cls(spec, read("vocabulary"), read("chars"), read("vectors"))

    def tokens(self, texts) -> list[list[str]]:
        return [tagger_tokens(t) for t in texts]

    def _encode_word(self, word: str) -> tuple:
        low, c = lower(word), self.width
        if len(word) > c:
            tail = c // 2
            word = word[:c - tail] + word[len(word) - tail:]
        chars = [self.char_ids.get(ch, 1) for ch in word] + [0] * (c - len(word))
        return (self.ids.get(low, 1), chars, self.vector_ids.get(low, 1) if self.vector_ids is not None else 0)

    def encode(self, rows, width: int = 1) -> dict:
        """The graph's inputs for ``rows`` (lists of tokens), padded to at least ``width`` (and one) steps."""
        width = max([len(r) for r in rows] + [width, 1])
        words = np.zeros((len(rows), width), np.int64)
        chars = np.zeros((len(rows), width, self.width), np.int64)
        vectors = np.zeros((len(rows), width), np.int64) if self.vector_ids is not None else None
        for i, row in enumerate(rows):
            for j, token in enumerate(row):
                word_id, char_ids, vector_id = self._word(token)
                words[i, j], chars[i, j] = word_id, char_ids
                if vectors is not None:
                    vectors[i, j] = vector_id
        return {"words": words, "chars": chars, **({"vectors": vectors} if vectors is not None else {})}


# -- translation: sources standardized, elisions and clitics split; outputs joined back --------------------
_ELISION_WORDS = r"([cdjlmnst]|qu|jusqu|lorsqu|puisqu|quoiqu|presqu)'"


@functools.lru_cache(maxsize=1)
def _translation_patterns():
    """:func:`tasks.translation.data.standardize`'s and :func:`~tasks.translation.data.detokenize`'s
    substitutions with RE2's classes spelled out; RE2's ``$`` (no multi-line) is the end of the text, ``\\Z``.
    The elision patterns are case-insensitive over the whole pattern, as the graph's ``(?i)``."""
    c = _category_ranges()
    letter, letter_digit = f"[{c['L']}]", f"[{c['L']}{c['N']}]"
    not_letter, not_letter_digit = f"[^{c['L']}]", f"[^{c['L']}{c['N']}]"
    elision = f"(\\A|{not_letter}){_ELISION_WORDS}"
    standardize = (re.compile("[’‘]"), re.compile("[\u200b\u00ad]"),
                   re.compile("[\t\n\f\r \u00a0\u202f\u2009\u2007]+"),
                   (re.compile(f"{elision}({letter})", re.IGNORECASE), r"\1\2' \3"),
                   (re.compile(f"({letter_digit})n't({not_letter_digit}|\\Z)"), r"\1 n't\2"),
                   (re.compile(f"({letter_digit})'(s|re|ve|ll|d|m)({not_letter_digit}|\\Z)"), r"\1 '\2\3"),
                   (re.compile(f"([^{c['L']}{c['N']}{c['M']}\t\n\f\r '])"), r" \1 "))
    detokenize = ((re.compile(f"{elision} ({letter})", re.IGNORECASE), r"\1\2'\3"),
                  (re.compile(f" (n't|'s|'re|'ve|'ll|'d|'m)({not_letter_digit}|\\Z)"), r"\1\2"))
    return standardize, detokenize


def translation_standardize(text: str, lowercase: bool = True) -> str:
    """:func:`tasks.translation.data.standardize` (``lowercase``) or ``standardize_cased`` of one string."""
    (quotes, invisible, spaces, *subs), _ = _translation_patterns()
    text = quotes.sub("'", text)
    if lowercase:
        text = lower(text)
    text = spaces.sub(" ", invisible.sub("", text))
    for pattern, replacement in subs:
        text = pattern.sub(replacement, text)
    return re.sub(r"[\t\n\f\r ]+", " ", text).strip(STRIP)


_FRENCH_STOPS, _STOPS = re.compile(r" ([.,%)\]}])"), re.compile(r" ([.,!?;:%)\]}])")
_OPENERS = re.compile(r"([(\[{]) ")


def detokenize(joined: str, french_spacing: bool = False) -> str:
    """:func:`tasks.translation.data.detokenize` of one space-joined string of output words."""
    _, (elision, clitic) = _translation_patterns()
    text = clitic[0].sub(clitic[1], elision[0].sub(elision[1], joined))
    text = (_FRENCH_STOPS if french_spacing else _STOPS).sub(r"\1", text)
    text = _OPENERS.sub(r"\1", text).replace(" - ", "-")
    return text.strip(STRIP)


class SourceTokenizer:
    """Source texts -> ``int64 [batch, time]`` ids as :meth:`tasks.translation.data.ParallelVocab.source_encoder`
    gives them in the graph: the signatures' cut of long words, :func:`translation_standardize`, a split on
    ASCII whitespace, the lookup in ``vocabulary`` (ids 2.. in order; 0 padding, 1 unknown), the first
    ``max_length`` words, at least one (padding) step."""

    def __init__(self, spec: dict, vocabulary: list[str]):
        self.spec = spec
        self.max_length = int(spec["max_length"])
        self.ids = {w: i for i, w in enumerate(vocabulary, start=2)}

    @classmethod
    def load(cls, folder) -> "SourceTokenizer":
        folder = Path(folder)
        spec = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
        return cls(spec, json.loads((folder / spec["vocabulary"]).read_text(encoding="utf-8")))

    def words(self, texts) -> list[list[str]]:
        """Each text's standardized words that the model reads (the first ``max_length``)."""
        return [[w for w in SPLIT.split(translation_standardize(LONG_WORD.sub(r"\1", t))) if w][:self.max_length]
                for t in texts]

    def encode(self, texts) -> tuple[np.ndarray, list[list[str]]]:
        rows = self.words(texts)
        ids = np.zeros((len(rows), max([len(r) for r in rows] + [1])), np.int64)
        for i, row in enumerate(rows):
            ids[i, :len(row)] = [self.ids.get(w, 1) for w in row]
        return ids, rows

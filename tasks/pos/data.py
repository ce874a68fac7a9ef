"""Tagged sentences for the pos task: streamed splits from any source, the fitting pass, the
vocabularies, and the tokenizer the serving graph uses.

Sources: ``demo``; a named dataset; a tagged file (CoNLL-U, ``word/TAG`` lines or two columns,
see :mod:`tasks.pos.conllu`); a folder of such files named with ``train`` / ``dev`` / ``test``;
``tfds:NAME`` with token and tag features (``tfds:universal_dependencies/en_ewt``,
``tfds:xtreme_pos/xtreme_pos_en``).

Streaming
---------
Files are never read whole: each split is a :class:`TaggedStream` that reads its sentences one at
a time when iterated, and what must be fitted (the word counts of the vocabulary, the characters,
the tags, each split's sentence count and longest sentence) comes from one streaming pass over the
files (:func:`fit_tagged`), cached by their sizes and modification times
(:func:`seqapps.data.streaming.fitting_pass`). A malformed line stops with one line naming
file:line, or, with ``data.skip_bad_rows=true``, its sentence is left out and counted;
``data.fit_sample=N`` fits the vocabularies on the first N training sentences (the files are still
read to the end, to count the sentences of each split). ``demo`` and ``tfds:`` sentences are small
(or downloaded) and stay in memory.

Splits
------
Pieces are split in order: a source without a validation split gives up its last
``data.val_fraction`` of training sentences (the protocol for ``ud_english_ewt``); a single file
gives up its last ``data.val_fraction`` and ``data.test_fraction``
(:func:`seqapps.data.splits.split_sizes`). A file split this way is first counted (one read), so
that sentence ``i`` goes to the same split as when the file was read into a list. Training
sentences are cut to ``data.max_length`` words.
"""

from __future__ import annotations

import dataclasses
import functools
import sys
from collections import Counter
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from tasks.pos.conllu import TAGGED_SUFFIXES, TAGSETS, TextLines, sniff_format, tagged_sentences
from seqapps.data import sources as data_sources
from seqapps.data.preprocessing import Preprocessing, save_vocab
from seqapps.data.splits import find_split_files, split, split_sizes
from seqapps.data.streaming import BadRows, StreamedSplit, TokenCounter, fitting_pass
from seqapps.data.vectors import read_vectors, resolve_vectors
from seqapps.core.errors import ConfigError, DataError
from seqapps.core.task import Splits

ROLES = ("train", "val", "test")
SEP = "\x1f"  # joins a sentence's words (and its tags) into one string on their way into tf.data
FIT_VERSION = 1  # bumped when what the fitting pass stores changes


# -- one piece of a source, and the split of each of its sentences ---------------------------------
@dataclasses.dataclass(frozen=True)
class Piece:
    """A tagged file (``path``, its format ``kind``) or sentences in memory (``rows``: demo and tfds
    sources), and how its sentences get a split: ``role`` for all of them, or, with ``fractions``
    (``(val_fraction, test_fraction)``), by position: the first ones train, then validation, then
    test, by :func:`seqapps.data.splits.split_sizes` of its ``n`` sentences (known after counting)."""

    path: Path | None = None
    kind: str = ""
    rows: tuple = ()
    role: str = "train"
    fractions: tuple | None = None
    n: int = 0

    def sizes(self, what: str = "data") -> tuple[int, int, int]:
        return split_sizes(self.n, *self.fractions, what=what, unit="sentence(s)")

    def bounds(self, role: str) -> tuple[int, int]:
        """The positions ``[start, stop)`` of ``role``'s sentences in the piece."""
        if not self.fractions:
            return (0, float("inf")) if role == self.role else (0, 0)
        n_train, n_val, n_test = self.sizes()
        return {"train": (0, n_train), "val": (n_train, n_train + n_val), "test": (n_train + n_val, self.n)}[role]

    def role_of(self, index: int) -> str:
        if not self.fractions:
            return self.role
        n_train, n_val, _ = self.sizes()
        return "train" if index < n_train else "val" if index < n_train + n_val else "test"

    def roles(self) -> set:
        if not self.fractions:
            return {self.role}
        return {"train", *(["val"] if self.fractions[0] > 0 else []), *(["test"] if self.fractions[1] > 0 else [])}

    def sentences(self, tagset: str, bad: BadRows, lines: TextLines | None = None):
        """Every ``(words, tags)`` of the piece, in order."""
        if self.path is None:
            return iter(self.rows)
        return tagged_sentences(self.path, tagset, bad, lines, self.kind)


@dataclasses.dataclass
class Settings:
    """What reading a tagged source depends on (part of the fitting pass's cache key)."""

    tagset: str = "upos"
    max_length: int = 200
    skip_bad_rows: bool = False


class TaggedStream(StreamedSplit):
    """One split of a tagged source (:class:`~seqapps.data.streaming.StreamedSplit`): ``rows()`` yields
    ``(words, tags)`` per sentence (training ones cut to ``data.max_length`` words), read from the
    files as it goes; ``len()`` is the split's sentence count; ``materialize()`` returns the
    ``[(words, tags), ...]`` list that scoring reads."""

    def keep(self, piece, bad):
        start, stop = piece.bounds(self.role)
        cut = self.settings.max_length if self.role == "train" else None
        if start >= stop:
            return
        for i, (words, tags) in enumerate(piece.sentences(self.settings.tagset, bad)):
            if i >= stop:
                break  # the rest of the piece is another split's: not read
            if i >= start and words:
                yield (words[:cut], tags[:cut]) if cut else (words, tags)

    def materialize(self) -> list:
        return list(self.rows())


# -- the source ------------------------------------------------------------------------------------
def pieces_of(data_cfg, task: str, data_dir=None) -> tuple[list[Piece], object]:
    """The pieces of ``data_cfg.source`` (see the module docstring), before counting."""
    source = data_sources.resolve(data_cfg.source, task, data_dir)
    fractions = (source.options.get("val_fraction", data_cfg.val_fraction),
                 source.options.get("test_fraction", data_cfg.test_fraction))
    for fraction, name in zip(fractions, ("data.val_fraction", "data.test_fraction")):
        if not 0 <= fraction < 1:
            raise DataError(f"{name} must be in [0, 1), got {fraction}")
    if source.kind == "demo":
        from tasks.pos.demo import sentences

        return [Piece(rows=tuple(sentences()), fractions=fractions)], source
    if source.kind == "tfds":
        def in_order(data, val_fraction, test_fraction):
            return split(data, val_fraction, test_fraction, what=data_cfg.source, unit="sentence(s)")

        parts = data_sources.read_tfds(source.tfds_name,
                                       lambda examples, name: _from_tfds(examples, source.tfds_name, name, data_cfg),
                                       fractions[0], in_order)
        return [Piece(rows=tuple(rows), role=role) for role, rows in parts.items() if rows is not None], source
    files = dict(source.paths)
    if "path" in files:
        path = files.pop("path")
        files = find_split_files(path, tuple(sorted(TAGGED_SUFFIXES))) if path.is_dir() else {"all": path}
    if "all" in files:
        return [Piece(files["all"], sniff_format(files["all"]), fractions=fractions)], source
    pieces = {role: Piece(path, sniff_format(path), role=role) for role, path in files.items()}
    if "val" not in pieces:  # the last sentences of the training file validate
        pieces["train"] = dataclasses.replace(pieces["train"], fractions=(fractions[0], 0.0))
    return [pieces[role] for role in ROLES if role in pieces], source


def load_tagged_sentences(data_cfg, task: str, data_dir=None, verbose: bool = True) -> Splits:
    """Streamed splits (:class:`TaggedStream`) of ``data_cfg.source`` and, in ``info``, the training
    ``tags`` and what the fitting pass found (``fit``: see :func:`fit_tagged`). The pass runs (or is
    read from its cache) here, so bad data fails before anything is written."""
    if data_cfg.tagset not in TAGSETS:
        raise ConfigError(f"data.tagset must be upos or xpos, got {data_cfg.tagset!r}")
    pieces, source = pieces_of(data_cfg, task, data_dir)
    settings = Settings(data_cfg.tagset, int(data_cfg.max_length), bool(getattr(data_cfg, "skip_bad_rows", False)))
    cap = max(50 * data_cfg.vocab_size, 500_000)
    fit_sample = int(getattr(data_cfg, "fit_sample", 0) or 0)
    files = [p.path for p in pieces if p.path is not None]
    key = {"task": task, "version": FIT_VERSION, "settings": dataclasses.asdict(settings),
           "pieces": [[p.kind, p.role, p.fractions] for p in pieces], "cap": cap, "fit_sample": fit_sample,
           "vocab_size": data_cfg.vocab_size, "min_count": data_cfg.min_count}
    fit = fitting_pass(f"{task} on {data_cfg.source}", files, key,
                       lambda progress: fit_tagged(pieces, settings, data_cfg, cap, fit_sample, progress),
                       cache=bool(files) and source.kind != "tfds", verbose=verbose)
    if fit["bad_rows"]:
        import sys

        print(f"skipped {fit['bad_rows']:,} bad row(s) (data.skip_bad_rows); the first: {fit['first_bad']}",
              file=sys.stderr)
    pieces = [dataclasses.replace(p, n=n) for p, n in zip(pieces, fit["sentences"])]
    for piece in pieces:
        if piece.fractions:
            piece.sizes(data_cfg.source)  # too few sentences to split: one line
    if len(fit["tags"]) < 2:
        raise DataError(f"{data_cfg.source}: the training sentences have {len(fit['tags'])} distinct tag(s); "
                        "need at least 2")
    streams = {role: TaggedStream(pieces, role, settings, fit["counts"][role], data_cfg.source) for role in ROLES}
    has = {role for p in pieces for role in p.roles()}
    return Splits(streams["train"], streams["val"], streams["test"] if "test" in has else None,
                  {"tags": fit["tags"], "fit": fit})


def fit_tagged(pieces: list[Piece], settings: Settings, data_cfg, cap: int, fit_sample: int, progress) -> dict:
    """The fitting pass. Files split by position are counted first (one read each); then one read
    of every piece finds, per split, ``counts`` (sentences) and ``longest`` (words of the longest
    sentence; training ones cut to ``data.max_length``), and, over the training sentences as
    :meth:`TaggerData.fit` reads them (lower-cased words, cut), ``words`` (``[word, count]`` of the
    vocabulary: at least ``data.min_count`` times, the ``data.vocab_size - 2`` most frequent, ties
    in alphabetical order), ``chars`` and ``tags`` (sorted); ``sentences`` per piece, ``bad_rows``,
    ``first_bad`` and ``sampled`` (the vocabularies fitted on the first ``data.fit_sample``
    training sentences)."""
    counter, chars, tags = TokenCounter(cap), set(), set()
    counts, longest = {r: 0 for r in ROLES}, {r: 0 for r in ROLES}
    bad = BadRows(settings.skip_bad_rows)
    cut, fitted, rows, sampled = settings.max_length, 0, 0, False
    counted = [p for p in pieces if p.fractions and p.path is not None]
    work = sum(p.path.stat().st_size for p in counted + [p for p in pieces if p.path is not None]) or 1
    total = sum(p.path.stat().st_size for p in pieces if p.path is not None)
    done = 0

    def report(lines):
        progress(rows, int((done + (lines.bytes if lines else 0)) * total / work))

    sizes = []
    for piece in pieces:  # the count, for a split by position
        n = len(piece.rows)
        if piece.fractions and piece.path is not None:
            lines, n = TextLines(piece.path), 0
            for _ in piece.sentences(settings.tagset, BadRows(settings.skip_bad_rows), lines):
                n += 1
                if n % 1000 == 0:
                    report(lines)
            done += lines.bytes
        sizes.append(n)
    pieces = [dataclasses.replace(p, n=n) for p, n in zip(pieces, sizes)]
    sentences = []
    for piece in pieces:
        lines = TextLines(piece.path) if piece.path is not None else None
        n = 0
        for words, sentence_tags in piece.sentences(settings.tagset, bad, lines):
            role = piece.role_of(n)
            n += 1
            rows += 1
            if not words:
                continue
            counts[role] += 1
            if role == "train":
                words, sentence_tags = words[:cut], sentence_tags[:cut]
                if fit_sample and fitted >= fit_sample:
                    sampled = True
                else:
                    fitted += 1
                    counter.add([w.lower() for w in words])
                    chars.update("".join(words))
                    tags.update(sentence_tags)
            longest[role] = max(longest[role], len(words))
            if rows % 1000 == 0:
                report(lines)
        if lines is not None:
            done += lines.bytes
        sentences.append(n)
        if piece.fractions and piece.path is not None and n != piece.n:  # pragma: no cover - the file changed
            raise DataError(f"{piece.path}: changed while it was read ({piece.n} sentences, then {n})")
    progress(rows, total)
    ranked = sorted(((w, c) for w, c in counter.counts.items() if c >= data_cfg.min_count),
                    key=lambda wc: (-wc[1], wc[0]))[:max(0, data_cfg.vocab_size - 2)]
    return {"sentences": sentences, "counts": counts, "longest": longest, "words": [list(wc) for wc in ranked],
            "words_dropped": counter.dropped, "chars": sorted(chars), "tags": sorted(tags),
            "bad_rows": bad.count, "first_bad": bad.first, "sampled": sampled}


def _from_tfds(examples, name, split_name, data_cfg):
    """Sentences of a TFDS split: tokens from ``tokens``/``words``/``text``, tags from the
    tagset's feature (``upos``...) or ``pos``/``pos_tags``/``tags``; integer tags are named
    by the feature's class names."""
    import tensorflow_datasets as tfds

    tagset = data_cfg.tagset
    try:
        features = tfds.builder(name).info.features
    except Exception:  # noqa: BLE001 - names are only a nicety
        features = None
    out = []
    for ex in examples:
        word_key = next((k for k in ("tokens", "words", "text") if k in ex), None)
        tag_key = next((k for k in (tagset, "pos", "pos_tags", "tags") if k in ex), None)
        if word_key is None or tag_key is None:
            raise DataError(f"tfds:{name}: expected token and {tagset} features, found {sorted(ex)}")
        words = [w.decode("utf-8", "replace") for w in ex[word_key]]
        raw = ex[tag_key]
        if raw.dtype.kind in "iu":
            names = getattr(getattr(features[tag_key], "feature", None), "names", None) if features else None
            tags = [names[i] if names else str(i) for i in raw]
        else:
            tags = [t.decode("utf-8", "replace") for t in raw]
        pairs = [(w, t) for w, t in zip(words, tags) if t != "_"]  # "_": multi-word token surface forms
        if pairs:
            out.append(([w for w, _ in pairs], [t for _, t in pairs]))
    return out


def in_memory_fit(sentences, data_cfg) -> dict:
    """What :func:`fit_tagged` finds (``words``, ``chars``, ``tags``), for a list of training sentences."""
    cut = data_cfg.max_length
    sentences = [(w[:cut], t[:cut]) for w, t in sentences]
    counts = Counter(w.lower() for words, _ in sentences for w in words)
    words = [[w, c] for w, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
             if c >= data_cfg.min_count][:max(0, data_cfg.vocab_size - 2)]
    return {"words": words, "chars": sorted({c for words, _ in sentences for w in words for c in w}),
            "tags": sorted({t for _, tags in sentences for t in tags})}


# -- tokenization (in the graph) -------------------------------------------------------------
_KEEP = r"\pL\pN\pM_"   # letters, digits, combining marks: the inside of words


def word_vectors_file(spec: str):
    """``model.word_vectors``: a vectors file, or ``count:NAME+...`` (built from those datasets'
    text with this tagger's tokenizer, once; see :func:`seqapps.data.vectors.resolve_vectors`)."""
    return resolve_vectors(spec, lambda texts: tokenize(tf.constant(texts)))


def tokenize(text):
    """``tf.string [batch]`` -> ragged ``[batch, None]`` tokens. The rule, in order:

    1. invalid UTF-8 is replaced by U+FFFD;
    2. a quote ``'`` or ``’`` at the start or end of a word is split off (``'quoted'`` ->
       ``' quoted '``);
    3. clitics are split off, Penn/UD style: ``don't`` -> ``do n't``, ``it's`` -> ``it 's``,
       also ``'re 've 'll 'd 'm`` (any case, straight or curly apostrophe);
    4. every other character that is not a letter, digit, mark, apostrophe or whitespace
       is a token of its own (``end.`` -> ``end .``, ``U.S.`` -> ``U . S .``, emoji alone),
       except ``.``, ``,`` and ``:`` between two digits (``3.5``, ``1,000``, ``10:30``);
    5. tokens are split on whitespace. Case is kept: it matters for tagging.
    """
    text = tf.strings.unicode_transcode(text, "UTF-8", "UTF-8", errors="replace")
    text = tf.strings.regex_replace(text, r"(^|\s)(['’])", r"\1\2 ")
    text = tf.strings.regex_replace(text, r"(['’])(\s|$)", r" \1\2")
    text = tf.strings.regex_replace(text, r"([" + _KEEP + r"])([nN]['’][tT])(\s|$)", r"\1 \2\3")
    text = tf.strings.regex_replace(text, r"([" + _KEEP + r"])(['’](?:[sSdDmM]|[rR][eE]|[vV][eE]|[lL][lL]))(\s|$)",
                                    r"\1 \2\3")
    for _ in range(2):  # twice: "1,2,3" has overlapping matches
        text = tf.strings.regex_replace(text, r"(\pN)\.(\pN)", "\\1\ue000\\2")
        text = tf.strings.regex_replace(text, r"(\pN),(\pN)", "\\1\ue001\\2")
        text = tf.strings.regex_replace(text, r"(\pN):(\pN)", "\\1\ue002\\2")
    text = tf.strings.regex_replace(text, r"([^" + _KEEP + r"\s'’\x{e000}-\x{e002}])", r" \1 ")
    text = tf.strings.regex_replace(text, "\ue000", ".")
    text = tf.strings.regex_replace(text, "\ue001", ",")
    text = tf.strings.regex_replace(text, "\ue002", ":")
    return tf.strings.split(text)


def pad_tokens(tokens, min_width: int = 1):
    """Dense ``[batch, time]`` with ``""`` padding, at least ``min_width`` wide."""
    width = tf.shape(tokens)[1]
    return tf.pad(tokens, [[0, 0], [0, tf.maximum(0, min_width - width)]], constant_values="")




# -- vocabularies and encoding ---------------------------------------------------------------
class TaggerData(Preprocessing):
    """Word, character and tag vocabularies (``words.txt``, ``chars.txt``, ``tags.txt``).

    Ids: words and characters ``0`` = padding, ``1`` = unknown, then the vocabulary;
    tags ``0`` = padding, ``1..K`` = ``tags`` (the model scores ``K`` tags, index ``i`` is
    ``tags[i]``).
    """

    def __init__(self, words: list[str], chars: list[str], tags: list[str], max_word_length: int,
                 vector_words: list[str] = (), vector_matrix: np.ndarray | None = None):
        self.words, self.chars, self.tags = list(words), list(chars), list(tags)
        self.max_word_length = int(max_word_length)
        # words of a pretrained vectors file (lower-cased); the matrix is only held while training
        self.vector_words, self.vector_matrix = list(vector_words), vector_matrix

    task = "pos"

    @classmethod
    def fit(cls, cfg, splits) -> "TaggerData":
        """The vocabularies of the training split: from the fitting pass (``splits.info["fit"]``, see
        :func:`fit_tagged`), or, for sentences given as a list, by the same rules: lower-cased words
        seen at least ``data.min_count`` times, the ``data.vocab_size - 2`` most frequent (ties in
        alphabetical order); the characters and tags, sorted."""
        data_cfg = cfg.data
        fit = splits.info.get("fit") or in_memory_fit(splits.train, data_cfg)
        words, chars, tags = [w for w, _ in fit["words"]], fit["chars"], fit["tags"]
        word_vectors = cfg.model.word_vectors
        vector_words, matrix = ([], None)
        if word_vectors:
            path = word_vectors_file(word_vectors)
            vector_words, matrix = read_vectors(path)
            have = set(vector_words)
            found = sum(w in have for w in words)
            print(f"word vectors: {found:,} of {len(words):,} vocabulary words ({100 * found / max(len(words), 1):.1f}%) "
                  f"from {path} ({len(vector_words):,} words of {matrix.shape[1]} numbers)", file=sys.stderr)
        return cls(words, chars, tags, data_cfg.max_word_length, vector_words, matrix)

    def save(self, run_dir) -> None:
        for name in ("words", "chars", "tags") + (("vector_words",) if self.vector_words else ()):
            save_vocab(run_dir, f"{name}.txt", getattr(self, name))

    @classmethod
    def load(cls, run_dir, cfg=None) -> "TaggerData":
        vector_words = cls.read_vocab(run_dir, "vector_words.txt") if Path(run_dir, "vector_words.txt").exists() else []
        return cls(cls.read_vocab(run_dir, "words.txt"), cls.read_vocab(run_dir, "chars.txt"),
                   cls.read_vocab(run_dir, "tags.txt"), cfg.data.max_word_length, vector_words)

    @functools.cached_property
    def lookups(self):
        """StringLookup layers (unknown -> 0, vocabulary from 1; ids are shifted by one)."""
        def lookup(vocab, name):
            layer = keras.layers.StringLookup(vocabulary=vocab or ["\ufffe"], num_oov_indices=1,
                                              mask_token=None, name=name)
            layer.build(None)
            return layer
        return (lookup(self.words, "word_lookup"), lookup(self.chars, "char_lookup"),
                lookup(self.vector_words, "vector_lookup") if self.vector_words else None)

    def encode(self, tokens, lengths):
        """``tokens`` ``tf.string [B, T]`` (``lengths`` real ones per row) ->
        ``{"words": int64 [B, T], "chars": int64 [B, T, C]}``, and ``"vectors": int64 [B, T]``
        (ids into the pretrained vectors) when the tagger has them."""
        word_lookup, char_lookup, vector_lookup = self.lookups
        shape = tf.shape(tokens)
        mask = tf.sequence_mask(lengths, shape[1])
        flat = tf.reshape(tokens, [-1])
        lower = tf.strings.lower(flat, encoding="utf-8")
        words = tf.reshape(tf.cast(word_lookup(lower), tf.int64) + 1, shape)
        c = self.max_word_length
        n = tf.strings.length(flat, unit="UTF8_CHAR")
        tail = c // 2
        head = tf.strings.substr(flat, 0, c - tail, unit="UTF8_CHAR")
        end = tf.strings.substr(flat, tf.maximum(n - tail, 0), tf.fill(tf.shape(n), tail), unit="UTF8_CHAR")
        clipped = tf.where(n > c, head + end, flat)
        split = tf.strings.unicode_split(clipped, "UTF-8", errors="replace")
        ids = split.with_flat_values(tf.cast(char_lookup(split.flat_values), tf.int64) + 1)
        chars = tf.reshape(ids.to_tensor(0, shape=[None, c]), tf.concat([shape, [c]], 0))
        out = {"words": tf.where(mask, words, 0), "chars": tf.where(mask[:, :, None], chars, 0)}
        if vector_lookup is not None:
            out["vectors"] = tf.where(mask, tf.reshape(tf.cast(vector_lookup(lower), tf.int64) + 1, shape), 0)
        return out

    def tag_ids(self, sentences_tags) -> list[np.ndarray]:
        index = {t: i + 1 for i, t in enumerate(self.tags)}
        return [np.array([index.get(t, 0) for t in tags], dtype=np.int32) for tags in sentences_tags]

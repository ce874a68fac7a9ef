"""Parallel text (sentence pairs) for translation: reading, splitting, vocabularies.

Sources
-------
- ``demo``: generated English-French pairs (:mod:`tasks.translation.demo`).
- a named dataset (``anki_fra_eng``): its catalog options say which language each
  column holds and how it is split.
- a tab-separated pairs file: one pair a line; columns beyond the second are ignored
  (Anki files carry an attribution column). The languages of the columns are
  ``data.columns`` (e.g. ``en,fr``); else a first line made of language codes only
  (``fr<TAB>en``, further columns named anyhow) is read as a header; else the columns are ``source_lang``,
  ``target_lang``.
- two aligned files: a folder with ``NAME.<source_lang>`` and ``NAME.<target_lang>``
  (one sentence a line, same line count); NAME ``train``/``dev``/``valid``/``val``/``test``
  give the splits, any other single NAME is split like a pairs file.
- ``tfds:NAME`` (for example ``tfds:ted_hrlr_translate/pt_to_en``): features named by
  language code, its train/validation/test splits.

Streaming
---------
Files are never read whole: each split is a :class:`ParallelStream` that reads its pairs
when asked, and what must be fitted (the source and target token counts of the
vocabularies, the split sizes, the longest pair that trains) comes from one streaming pass
over the files (:func:`fit_parallel`), cached by their sizes and modification times
(:func:`seqapps.data.streaming.fitting_pass`). A line of a pairs file with too few columns
stops with one line naming file:line, or, with ``data.skip_bad_rows=true``, is skipped and
counted; ``data.fit_sample=N`` fits on the first N training pairs. Pairs with an empty side
are left out of every split.

Splits
------
A source without its own splits is split by the MD5 hex digest of the UTF-8 bytes of
one side's sentence (``data.split_by``, default the target language; ``en`` for
``anki_fra_eng``), read as an integer, modulo 100: below ``100 * test_fraction`` goes
to test, the next ``100 * val_fraction`` to validation, the rest to training. So a
sentence never lands in two splits, and ``anki_fra_eng`` (1% and 1%) follows the
benchmark protocol exactly: ``% 100 == 0`` test, ``== 1`` validation.

Text
----
:func:`standardize` keeps accents and case-folds; :func:`standardize_cased` keeps the
case (targets: BLEU is scored against cased references). Both split punctuation
and clitics into tokens (``l'homme`` -> ``l' homme``, ``don't`` -> ``do n't``,
``Tom's`` -> ``Tom 's``); :func:`detokenize` undoes that in the serving graph.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import itertools
import re
from pathlib import Path
from typing import Iterator

import keras
import numpy as np
import tensorflow as tf

from seqapps.data import text as textlib
from seqapps.data.preprocessing import Preprocessing, save_vocab
from seqapps.data import sources as data_sources
from seqapps.data.splits import find_split_files, split
from seqapps.data.streaming import BadRows, ByteLines, StreamedSplit, TokenCounter, fitting_pass, hash_role
from seqapps.core.errors import DataError
from seqapps.core.task import Splits

START, END = "[START]", "[END]"
FIT_BATCH = 16384     # pairs standardized at once in the fitting pass
_LANG = re.compile(r"^[a-z]{2,3}([_-][A-Za-z]{2,4})?$")

_ELISION = r"(?i)(^|[^\pL])([cdjlmnst]|qu|jusqu|lorsqu|puisqu|quoiqu|presqu)'"


def _standardize(text, lowercase: bool):
    text = tf.strings.regex_replace(text, "[’‘]", "'")
    if lowercase:
        text = tf.strings.lower(text, encoding="utf-8")
    text = tf.strings.regex_replace(text, r"[\x{200B}\x{00AD}]", "")
    text = tf.strings.regex_replace(text, r"[\s\x{00A0}\x{202F}\x{2009}\x{2007}]+", " ")
    text = tf.strings.regex_replace(text, _ELISION + r"(\pL)", r"\1\2' \3")                    # l'homme
    text = tf.strings.regex_replace(text, r"([\pL\pN])n't([^\pL\pN]|$)", r"\1 n't\2")         # don't
    text = tf.strings.regex_replace(text, r"([\pL\pN])'(s|re|ve|ll|d|m)([^\pL\pN]|$)", r"\1 '\2\3")  # Tom's
    text = tf.strings.regex_replace(text, r"([^\pL\pN\pM\s'])", r" \1 ")                      # punctuation
    return tf.strings.strip(tf.strings.regex_replace(text, r"\s+", " "))


@keras.saving.register_keras_serializable(package="seqapps")
def standardize(text):
    """Lower-case, keep accents, split punctuation and clitics: ``"L'été, non!"`` -> ``"l' été , non !"``."""
    return _standardize(text, lowercase=True)


@keras.saving.register_keras_serializable(package="seqapps")
def standardize_cased(text):
    """:func:`standardize` without lower-casing."""
    return _standardize(text, lowercase=False)


def detokenize(joined, french_spacing: bool = False):
    """Space-joined tokens -> text: re-attach punctuation, clitics and elisions.

    With ``french_spacing`` a space stays before ``! ? ; :`` (French typography)."""
    text = tf.strings.regex_replace(joined, _ELISION + r" (\pL)", r"\1\2'\3")
    text = tf.strings.regex_replace(text, r" (n't|'s|'re|'ve|'ll|'d|'m)([^\pL\pN]|$)", r"\1\2")
    text = tf.strings.regex_replace(text, r" ([.,%)\]}])" if french_spacing else r" ([.,!?;:%)\]}])", r"\1")
    text = tf.strings.regex_replace(text, r"([(\[{]) ", r"\1")
    text = tf.strings.regex_replace(text, r" - ", "-")
    return tf.strings.strip(text)


# -- reading, one line at a time ---------------------------------------------------------------------
def numbered_lines(path: Path, lines: ByteLines | None = None) -> Iterator[tuple[int, str]]:
    """``(number, line)`` of a UTF-8 text file read one line at a time, numbered and split as
    ``str.splitlines`` splits the whole text (``\\r``, ``\\x85``, ``\\u2028``... end a line too).
    ``lines``: the :class:`~seqapps.data.streaming.ByteLines` to read through (its ``bytes`` tell
    the progress)."""
    number = 0
    for text in (lines if lines is not None else ByteLines(path)):
        for line in text.splitlines():
            number += 1
            yield number, line


@dataclasses.dataclass(frozen=True)
class Layout:
    """Where a pairs file holds each side: the column indices, how many columns a row needs, the
    columns' languages (for messages) and the number of the header line (0: none)."""

    source: int
    target: int
    need: int
    columns: tuple
    header_line: int = 0


def pairs_layout(path, columns: list[str] | None, source_lang: str, target_lang: str) -> Layout:
    """The layout of a tab-separated pairs file, from ``columns`` or its first non-blank line
    (a header when its first two fields are language codes), read alone."""
    path = Path(path)
    first = next(((n, line.split("\t")) for n, line in numbered_lines(path) if line.strip()), None)
    if first is None:
        raise DataError(f"{path}: the file is empty; expected one tab-separated sentence pair a line")
    header_line = 0
    if not columns and len(first[1]) >= 2 and all(_LANG.match(c.strip()) for c in first[1][:2]):
        columns, header_line = [c.strip() for c in first[1]], first[0]
    columns = list(columns or [source_lang, target_lang])
    for lang in (source_lang, target_lang):
        if lang not in columns:
            raise DataError(f"{path}: no {lang!r} column; its columns are {', '.join(columns)} "
                            f"(set data.columns, data.source_lang and data.target_lang)")
    si, ti = columns.index(source_lang), columns.index(target_lang)
    return Layout(si, ti, max(si, ti) + 1, tuple(columns), header_line)


def pairs_file_rows(path, layout: Layout, bad: BadRows, lines: ByteLines | None = None):
    """``(source, target)`` of every non-blank line of a pairs file, stripped; a line with too few
    columns is a bad row (an error naming file:line, or skipped and counted)."""
    for number, line in numbered_lines(path, lines):
        if number == layout.header_line or not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < layout.need:
            bad.bad(f"{path}:{number}", f"expected {layout.need} tab-separated columns "
                                        f"({', '.join(layout.columns)}), found {len(fields)}")
            continue
        yield fields[layout.source].strip(), fields[layout.target].strip()


def aligned_rows(src_path: Path, tgt_path: Path, src_lines: ByteLines | None = None,
                 tgt_lines: ByteLines | None = None):
    """``(source, target)`` of two aligned files read in step, stripped; files of different line
    counts are an error (found when the shorter ends)."""
    src, tgt, n = numbered_lines(src_path, src_lines), numbered_lines(tgt_path, tgt_lines), 0
    for a, b in itertools.zip_longest(src, tgt):
        if a is None or b is None:
            n_src = n + (a is not None) + sum(1 for _ in src)
            n_tgt = n + (b is not None) + sum(1 for _ in tgt)
            raise DataError(f"{src_path} has {n_src} lines but {tgt_path} has {n_tgt}; "
                            "aligned files need one sentence a line, the same count")
        n += 1
        yield a[1].strip(), b[1].strip()


# -- pieces of a source ------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Piece:
    """A pairs file (``path`` and its ``layout``), two aligned files (``path`` the source side,
    ``target_path`` the target side), or pairs in memory (``rows``: demo and tfds sources); and how
    its pairs get a split: ``role`` for all of them, or, with ``fractions`` (``(val_fraction,
    test_fraction)``), by the MD5 bucket of one side's sentence (``key``: 0 the source, 1 the
    target; see the module docstring)."""

    path: Path | None = None
    target_path: Path | None = None
    layout: Layout | None = None
    rows: tuple = ()
    role: str = "train"
    fractions: tuple | None = None
    key: int = 1

    @property
    def files(self) -> list[Path]:
        return [p for p in (self.path, self.target_path) if p is not None]

    def role_of(self, pair) -> str:
        return hash_role(pair[self.key], *self.fractions) if self.fractions else self.role

    def roles(self) -> set:
        if not self.fractions:
            return {self.role}
        return {"train", *(["val"] if round(100 * self.fractions[0]) > 0 else []),
                *(["test"] if round(100 * self.fractions[1]) > 0 else [])}

    def pairs(self, bad: BadRows, lines: list[ByteLines] | None = None):
        """Every ``(source, target)`` of the piece, in order, before any cleaning."""
        lines = lines or [None, None]
        if self.path is None:
            return iter(self.rows)
        if self.target_path is not None:
            return aligned_rows(self.path, self.target_path, *lines)
        return pairs_file_rows(self.path, self.layout, bad, lines[0])


def _file_piece(path: Path, columns, source_lang: str, target_lang: str, **how) -> Piece:
    """A pairs file, one side of aligned files (``train.fr`` beside ``train.en``), or a folder
    holding one pair of aligned files (``corpus.fr``, ``corpus.en``), as a piece."""
    if path.is_dir():
        stems = sorted({p.stem for p in path.glob(f"*.{source_lang}")}
                       & {p.stem for p in path.glob(f"*.{target_lang}")})
        if not stems:
            raise DataError(f"{path}: expected aligned files NAME.{source_lang} and NAME.{target_lang} "
                            "(or a tab-separated pairs file)")
        if len(stems) > 1:
            raise DataError(f"{path}: several aligned file pairs ({', '.join(stems)}); name them train/dev/test")
        return Piece(path / f"{stems[0]}.{source_lang}", path / f"{stems[0]}.{target_lang}", **how)
    if path.suffix == f".{source_lang}" and path.with_suffix(f".{target_lang}").is_file():
        return Piece(path, path.with_suffix(f".{target_lang}"), **how)
    return Piece(path, layout=pairs_layout(path, columns, source_lang, target_lang), **how)


@dataclasses.dataclass
class Settings:
    """What reading a parallel source depends on (part of the fitting pass's cache key)."""

    source_lang: str = "fr"
    target_lang: str = "en"
    lowercase_target: bool = False
    max_length: int = 40
    max_output_length: int = 50
    skip_bad_rows: bool = False

    @property
    def target_standardize(self):
        return standardize if self.lowercase_target else standardize_cased


def pieces_of(data_cfg, task: str, data_dir=None) -> tuple[list[Piece], Settings, object]:
    """The pieces of ``data_cfg.source`` and the settings that read them (see the module docstring)."""
    source = data_sources.resolve(data_cfg.source, task, data_dir)
    src_lang, tgt_lang = data_cfg.source_lang, data_cfg.target_lang
    if src_lang == tgt_lang:
        raise DataError(f"data.source_lang and data.target_lang are both {src_lang!r}")
    split_by = data_cfg.split_by or source.options.get("split_by") or tgt_lang
    if split_by not in (src_lang, tgt_lang):
        raise DataError(f"data.split_by must be the source or target language ({src_lang} or {tgt_lang}), "
                        f"got {split_by!r}")
    key = 0 if split_by == src_lang else 1
    settings = Settings(src_lang, tgt_lang, bool(data_cfg.lowercase_target), int(data_cfg.max_length),
                        int(data_cfg.max_output_length), bool(getattr(data_cfg, "skip_bad_rows", False)))
    fractions = (source.options.get("val_fraction", data_cfg.val_fraction),
                 source.options.get("test_fraction", data_cfg.test_fraction))
    if source.kind == "demo":
        rows = tuple(zip(*_demo_pairs(task, src_lang, tgt_lang)))
        return [Piece(rows=rows, fractions=fractions, key=key)], settings, source
    if source.kind == "tfds":
        def by_hash(pairs, val_fraction, test_fraction):
            return split(pairs, val_fraction, test_fraction, keys=pairs[key])

        def convert(examples, split_name):
            return _from_tfds(examples, source.tfds_name, split_name, data_cfg)

        parts = data_sources.read_tfds(source.tfds_name, convert, fractions[0], by_hash)
        return [Piece(rows=tuple(zip(*part)), role=role, key=key) for role, part in parts.items()
                if part is not None], settings, source
    columns = list(data_cfg.columns or source.options.get("columns") or [])
    files = dict(source.paths)
    if "path" in files:
        path = files.pop("path")
        found = find_split_files(path, (f".{src_lang}",), required=False) if path.is_dir() else {}
        files = found or {"all": path}
    if "all" in files:
        return [_file_piece(files["all"], columns, src_lang, tgt_lang, fractions=fractions, key=key)], settings, source
    pieces = {role: _file_piece(p, columns, src_lang, tgt_lang, role=role, key=key) for role, p in files.items()}
    if "val" not in pieces:  # carved from the training file by hash, as a piece in one file would be
        pieces["train"] = dataclasses.replace(pieces["train"], fractions=(fractions[0], 0.0))
    return list(pieces.values()), settings, source


# -- the streamed splits ------------------------------------------------------------------------------
class ParallelStream(StreamedSplit):
    """One split of a parallel source (:class:`~seqapps.data.streaming.StreamedSplit`): ``rows()``
    yields its ``(source, target)`` pairs (both sides non-empty), ``materialize()`` returns
    ``(sources, targets)``."""

    def keep(self, piece, bad):
        for pair in piece.pairs(bad):
            if pair[0] and pair[1] and piece.role_of(pair) == self.role:
                yield pair


def load_parallel(data_cfg, task: str, data_dir=None, verbose: bool = True) -> Splits:
    """Streamed splits (:class:`ParallelStream`) of ``data_cfg.source`` and, in ``info["fit"]``,
    what the fitting pass found (see :func:`fit_parallel`)."""
    pieces, settings, source = pieces_of(data_cfg, task, data_dir)
    caps = (max(50 * data_cfg.source_vocab_size, 500_000), max(50 * data_cfg.target_vocab_size, 500_000))
    limits = (data_cfg.source_vocab_size - 2, max(data_cfg.target_vocab_size - 2, 3) - 2)
    fit_sample = int(getattr(data_cfg, "fit_sample", 0) or 0)
    files = [f for p in pieces for f in p.files]
    key = {"task": task, "reader": 1, "settings": dataclasses.asdict(settings),
           "pieces": [[p.role, p.fractions, p.key, dataclasses.asdict(p.layout) if p.layout else None,
                       [str(f) for f in p.files]] for p in pieces],
           "caps": caps, "limits": limits, "fit_sample": fit_sample}
    fit = fitting_pass(f"{task} on {data_cfg.source}", files, key,
                       lambda progress: fit_parallel(pieces, settings, caps, limits, fit_sample, progress),
                       cache=bool(files) and source.kind != "tfds", verbose=verbose)
    if fit["bad_rows"]:
        import sys

        print(f"skipped {fit['bad_rows']:,} bad row(s) (data.skip_bad_rows); the first: {fit['first_bad']}",
              file=sys.stderr)
    counts = fit["counts"]
    if not counts["train"]:
        raise DataError(f"{data_cfg.source}: no non-empty sentence pairs for training")
    if not counts["val"]:
        raise DataError(f"{data_cfg.source}: the validation split is empty ({counts['train']} training "
                        "pairs); raise data.val_fraction or give a dev file")
    streams = {role: ParallelStream(pieces, role, settings, counts[role], data_cfg.source)
               for role in ("train", "val", "test")}
    return Splits(streams["train"], streams["val"], streams["test"] if fit["read"]["test"] else None,
                  {"source_lang": settings.source_lang, "target_lang": settings.target_lang, "fit": fit})


def pair_lengths(sources, targets, target_standardize):
    """Tokens per source and per target (after their standardization), as numpy arrays or, in a
    graph, tensors; the lengths the training pairs are filtered and bucketed by."""
    src = tf.strings.split(standardize(sources)).row_lengths()
    tgt = tf.strings.split(target_standardize(targets)).row_lengths()
    return src, tgt


def fits(src_lengths, tgt_lengths, max_length: int, max_output_length: int):
    """Which pairs train: a source of at most ``max_length`` tokens and a target that fits in
    ``max_output_length`` steps with its end token."""
    return (src_lengths <= max_length) & (tgt_lengths < max_output_length)


def fit_parallel(pieces: list[Piece], settings: Settings, caps, limits, fit_sample: int, progress) -> dict:
    """The fitting pass, one read of every piece: per split, ``read`` (pairs read), ``counts``
    (pairs with both sides non-empty: the split's size), ``fits`` (those that train: see
    :func:`fits`) and ``longest`` (the most time steps of a pair that fits, source or target with its
    start token); the training split's ``source_tokens`` and ``target_tokens`` ranked as
    ``TextVectorization.adapt`` ranks them (count, then token, descending; the first ``limits``);
    ``bad_rows`` and ``first_bad``; ``sampled`` (after ``data.fit_sample``, sizes estimated from the
    share of bytes read)."""
    roles = ("train", "val", "test")
    counters = TokenCounter(caps[0]), TokenCounter(caps[1])
    read, counts, kept, longest = ({r: 0 for r in roles} for _ in range(4))
    batch = {r: ([], []) for r in roles}
    bad = BadRows(settings.skip_bad_rows)
    done_bytes, sampled, read_bytes = 0, False, 0
    total_bytes = sum(f.stat().st_size for p in pieces for f in p.files)

    def flush(role):
        sources, targets = batch[role]
        if not sources:
            return
        words = (tf.strings.split(standardize(tf.constant(sources))),
                 tf.strings.split(settings.target_standardize(tf.constant(targets))))
        src_n, tgt_n = (w.row_lengths().numpy() for w in words)
        keep = fits(src_n, tgt_n, settings.max_length, settings.max_output_length)
        kept[role] += int(keep.sum())
        if keep.any():
            longest[role] = max(longest[role], int(np.maximum(src_n, tgt_n + 1)[keep].max()))
        if role == "train":
            for counter, w in zip(counters, words):
                tokens, _, n = tf.unique_with_counts(w.flat_values)
                counter.add(tokens.numpy().tolist(), n.numpy().tolist())
        batch[role] = ([], [])

    for piece in pieces:
        lines = [ByteLines(f) for f in piece.files]
        for pair in piece.pairs(bad, lines):
            role = piece.role_of(pair)
            read[role] += 1
            if not (pair[0] and pair[1]):
                continue
            counts[role] += 1
            batch[role][0].append(pair[0])
            batch[role][1].append(pair[1])
            if len(batch[role][0]) >= FIT_BATCH:
                flush(role)
            if counts["train"] % 1000 == 0:
                progress(sum(counts.values()), done_bytes + sum(b.bytes for b in lines))
            if fit_sample and counts["train"] >= fit_sample:
                sampled, read_bytes = True, done_bytes + sum(b.bytes for b in lines)
                break
        done_bytes += sum(b.bytes for b in lines)
        if sampled:
            break
    for role in roles:
        flush(role)
    progress(sum(counts.values()), done_bytes)
    if sampled and read_bytes:  # the sizes of the splits, estimated from the share of bytes read
        scale = total_bytes / read_bytes
        read, counts, kept = ({k: int(round(v * scale)) for k, v in d.items()} for d in (read, counts, kept))
    ranked = [[t.decode("utf-8", "replace") for t in c.ranked(max(limit, 0))] if limit > 0 else []
              for c, limit in zip(counters, limits)]
    return {"read": read, "counts": counts, "fits": kept, "longest": longest,
            "source_tokens": ranked[0], "target_tokens": ranked[1],
            "tokens_dropped": [c.dropped for c in counters], "bad_rows": bad.count, "first_bad": bad.first,
            "sampled": sampled}


def _demo_pairs(task, src_lang, tgt_lang):
    demo = importlib.import_module(f"tasks.{task}.demo")
    rows, langs = demo.pairs(), list(demo.LANGUAGES)
    for lang in (src_lang, tgt_lang):
        if lang not in langs:
            raise DataError(f"the demo pairs are in {' and '.join(langs)}; data.source_lang/target_lang "
                            f"{lang!r} is not one of them")
    return [r[langs.index(src_lang)] for r in rows], [r[langs.index(tgt_lang)] for r in rows]


def _from_tfds(examples, name, split_name, data_cfg):
    src_lang, tgt_lang = data_cfg.source_lang, data_cfg.target_lang
    sources, targets = [], []
    for ex in examples:
        if src_lang not in ex or tgt_lang not in ex:
            raise DataError(f"tfds:{name} has features {sorted(ex)}; set data.source_lang and "
                            "data.target_lang to two of them")
        sources.append(ex[src_lang].decode("utf-8", "replace"))
        targets.append(ex[tgt_lang].decode("utf-8", "replace"))
    return sources, targets


# -- vocabularies and encoding ---------------------------------------------------------------
def token_counts(texts, standardize_fn=standardize) -> np.ndarray:
    """Tokens per text after standardization."""
    if not len(texts):
        return np.zeros(0, np.int64)
    return tf.strings.split(standardize_fn(tf.constant(list(texts)))).row_lengths().numpy()


def source_keys(texts) -> list[bytes]:
    """Each source text as the model reads it, before the vocabulary lookup: :func:`standardize`
    (curly quotes to ``'``, lower-cased, zero-width characters dropped, runs of whitespace to one
    space, punctuation and clitics split off), as UTF-8 bytes. Two sources with the same key are the
    same input to the model (``data.max_length`` truncation aside)."""
    if not len(texts):
        return []
    return standardize(tf.constant(list(texts), tf.string)).numpy().tolist()


def unseen_sources(sources, seen) -> list[int]:
    """Indices of ``sources`` whose :func:`source_keys` key is no key of ``seen`` (source texts,
    or a set of keys such as :func:`training_source_keys` returns)."""
    keys = seen if isinstance(seen, (set, frozenset)) else set(source_keys(seen))
    return [i for i, key in enumerate(source_keys(sources)) if key not in keys]


_TRAINING_KEYS: dict[str, frozenset] = {}


def training_source_keys(data_cfg, task: str = "translation", data_dir=None) -> frozenset:
    """The :func:`source_keys` of the training split that ``data_cfg`` reads (kept per config, so
    scoring the validation and the test split reads the data once), read as a stream."""
    import json

    key = json.dumps([dataclasses.asdict(data_cfg), task, str(data_dir)], sort_keys=True)
    if key not in _TRAINING_KEYS:
        _TRAINING_KEYS.clear()
        keys, chunk = set(), []
        for source, _ in load_parallel(data_cfg, task, data_dir, verbose=False).train.rows():
            chunk.append(source)
            if len(chunk) >= FIT_BATCH:
                keys.update(source_keys(chunk))
                chunk = []
        keys.update(source_keys(chunk))
        _TRAINING_KEYS[key] = frozenset(keys)
    return _TRAINING_KEYS[key]


class ParallelVocab(Preprocessing):
    """Source and target vocabularies; files ``source_vocab.txt``, ``target_vocab.txt``.

    The target vocabulary holds ``""`` (0, padding), ``[UNK]`` (1), ``[START]`` (2) and
    ``[END]`` (3) first. Targets keep their case unless ``lowercase_target``."""

    task = "translation"

    def __init__(self, source_vocab, target_vocab, max_length: int, max_output_length: int,
                 lowercase_target: bool = False):
        self.source_vocab, self.target_vocab = list(source_vocab), list(target_vocab)
        self.max_length, self.max_output_length = int(max_length), int(max_output_length)
        self.lowercase_target = bool(lowercase_target)
        self.start_id, self.end_id = self.target_vocab.index(START), self.target_vocab.index(END)
        self.vectors = {}  # side -> the vocabulary's pretrained vectors, held while training

    def word_vectors(self, side: str, spec: str, seed: int = 0):
        """The ``side`` (source or target) vocabulary's rows of the vectors ``spec`` names (a file, a
        ``word_vectors`` run directory or ``count:DATASETS``; see :mod:`seqapps.data.vectors`), read once;
        the padding, unknown, start and end rows are zero."""
        if side not in self.vectors:
            from seqapps.data.vectors import resolve_vectors, vocabulary_vectors

            fn = standardize if side == "source" else self.target_standardize
            path = resolve_vectors(spec, lambda texts: tf.strings.split(fn(tf.constant(texts))))
            vocab = self.source_vocab if side == "source" else self.target_vocab
            self.vectors[side] = vocabulary_vectors(path, vocab, skip=2 if side == "source" else 4, seed=seed)[0]
        return self.vectors[side]

    @classmethod
    def fit(cls, cfg, splits) -> "ParallelVocab":
        """The vocabularies from the fitting pass's ranked training tokens: the padding and unknown
        entries, then the ``data.source_vocab_size - 2`` (target: ``data.target_vocab_size - 4``, at
        least 1) most frequent tokens, as ``TextVectorization.adapt`` on the training split lists them
        (the target's ``[START]`` and ``[END]`` after the first two)."""
        fit, data_cfg = splits.info["fit"], cfg.data
        src = [textlib.PAD, textlib.UNK, *fit["source_tokens"][:data_cfg.source_vocab_size - 2]]
        tgt = [textlib.PAD, textlib.UNK, *fit["target_tokens"][:max(data_cfg.target_vocab_size - 2, 3) - 2]]
        tgt = tgt[:2] + [START, END] + [t for t in tgt[2:] if t not in (START, END)]
        prep = cls(src, tgt, data_cfg.max_length, data_cfg.max_output_length, data_cfg.lowercase_target)
        for side in ("source", "target"):  # a bad vectors file fails before the run directory is written
            spec = getattr(cfg.model, "word_vectors" if side == "source" else "target_word_vectors", "")
            if spec:
                prep.word_vectors(side, spec, cfg.train.seed)
        return prep

    def save(self, run_dir) -> None:
        save_vocab(run_dir, "source_vocab.txt", self.source_vocab)
        save_vocab(run_dir, "target_vocab.txt", self.target_vocab)

    @classmethod
    def load(cls, run_dir, cfg=None) -> "ParallelVocab":
        d = cfg.data
        vocabs = cls.read_vocab(run_dir, "source_vocab.txt"), cls.read_vocab(run_dir, "target_vocab.txt")
        try:
            return cls(*vocabs, d.max_length, d.max_output_length, d.lowercase_target)
        except ValueError:
            raise DataError(f"{run_dir}/target_vocab.txt lacks {START} or {END}") from None

    @property
    def target_standardize(self):
        return standardize if self.lowercase_target else standardize_cased

    @functools.cache
    def source_vectorizer(self):
        return textlib.vectorizer(self.source_vocab, standardize_fn=standardize)

    @functools.cache
    def source_ragged_ids(self):
        """``texts -> ragged source ids`` in plain TF ops (for tf.data on any backend), the vectorizer's ids."""
        return textlib.vectorizer(self.source_vocab, standardize_fn=standardize, ragged=True)

    @functools.cache
    def target_ragged_ids(self):
        return textlib.vectorizer(self.target_vocab, standardize_fn=self.target_standardize, ragged=True)

    def source_encoder(self, pipeline: bool = False):
        """``encode(text, width=None) -> ids [batch, time]`` for a batch of raw source texts: the
        one function the export's signatures and training (in tf.data) both run. ``max_length``
        tokens are read (the rest cut), an empty text is one padding step; with ``width``, the time
        axis is padded to ``width``.

        The ids come from the export's TextVectorization layer, or, with ``pipeline`` (inside
        tf.data, where Keras layers need the TensorFlow backend), from the same vocabulary's lookup
        table in plain TF ops; the two give the same ids
        (tests/tasks/translation/test_translation_streaming.py)."""
        if pipeline:
            ragged = self.source_ragged_ids()

            def vectorizer(text):
                return ragged(text).to_tensor(0)
        else:
            vectorizer = self.source_vectorizer()

        def encode(text, width=None):
            ids = textlib.clip_and_pad(vectorizer(text), self.max_length)
            return ids if width is None else pad_time(ids, width)

        return encode

    def target_encoder(self):
        """``encode(text, width) -> (target_in, target_out)`` ids ``[batch, width]`` in plain TF ops:
        ``[START]`` + the tokens, and the tokens + ``[END]`` (training pairs fit: see :func:`fits`)."""
        ragged = self.target_ragged_ids()

        def encode(text, width):
            tgt = ragged(text)
            n = tgt.nrows()
            start = tf.fill([n, 1], tf.constant(self.start_id, tgt.dtype))
            end = tf.fill([n, 1], tf.constant(self.end_id, tgt.dtype))
            return (pad_time(tf.concat([start, tgt], axis=1).to_tensor(0), width),
                    pad_time(tf.concat([tgt, end], axis=1).to_tensor(0), width))

        return encode


def pad_time(ids, width):
    """Dense ``[batch, time]`` ids padded with 0 to ``width`` time steps."""
    return tf.pad(ids, [[0, 0], [0, tf.maximum(0, tf.cast(width, tf.int32) - tf.shape(ids)[1])]])

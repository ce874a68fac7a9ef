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

import functools
import importlib
import re
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from seqapps.data import text as textlib
from seqapps.data.preprocessing import Preprocessing, save_vocab
from seqapps.data.sources import Reader, load_splits, resolve
from seqapps.data.splits import split
from seqapps.core.errors import DataError
from seqapps.core.task import Splits

START, END = "[START]", "[END]"
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


# -- reading -------------------------------------------------------------------------------------
def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text") from None
    except OSError as e:
        raise DataError(f"{path}: {e.strerror}") from None


def read_pairs_file(path, columns: list[str] | None, source_lang: str, target_lang: str):
    """A tab-separated pairs file -> (sources, targets)."""
    path = Path(path)
    lines = _read_lines(path)
    rows = [(i + 1, line.split("\t")) for i, line in enumerate(lines) if line.strip()]
    if not rows:
        raise DataError(f"{path}: the file is empty; expected one tab-separated sentence pair a line")
    if not columns and len(rows[0][1]) >= 2 and all(_LANG.match(c.strip()) for c in rows[0][1][:2]):
        columns = [c.strip() for c in rows[0][1]]
        rows = rows[1:]
    columns = list(columns or [source_lang, target_lang])
    for lang in (source_lang, target_lang):
        if lang not in columns:
            raise DataError(f"{path}: no {lang!r} column; its columns are {', '.join(columns)} "
                            f"(set data.columns, data.source_lang and data.target_lang)")
    si, ti = columns.index(source_lang), columns.index(target_lang)
    need = max(si, ti) + 1
    sources, targets = [], []
    for number, fields in rows:
        if len(fields) < need:
            raise DataError(f"{path}:{number}: expected {need} tab-separated columns ({', '.join(columns)}), "
                            f"found {len(fields)}")
        sources.append(fields[si].strip())
        targets.append(fields[ti].strip())
    return sources, targets


def _read_aligned(src_path: Path, tgt_path: Path):
    src, tgt = _read_lines(src_path), _read_lines(tgt_path)
    if len(src) != len(tgt):
        raise DataError(f"{src_path} has {len(src)} lines but {tgt_path} has {len(tgt)}; "
                        "aligned files need one sentence a line, the same count")
    return [s.strip() for s in src], [t.strip() for t in tgt]


def _read_path(path: Path, columns, source_lang: str, target_lang: str):
    """A pairs file, one side of aligned files (``train.fr`` beside ``train.en``), or a
    folder holding one pair of aligned files (``corpus.fr``, ``corpus.en``)."""
    if path.is_dir():
        stems = sorted({p.stem for p in path.glob(f"*.{source_lang}")}
                       & {p.stem for p in path.glob(f"*.{target_lang}")})
        if not stems:
            raise DataError(f"{path}: expected aligned files NAME.{source_lang} and NAME.{target_lang} "
                            "(or a tab-separated pairs file)")
        if len(stems) > 1:
            raise DataError(f"{path}: several aligned file pairs ({', '.join(stems)}); name them train/dev/test")
        return _read_aligned(path / f"{stems[0]}.{source_lang}", path / f"{stems[0]}.{target_lang}")
    if path.suffix == f".{source_lang}" and path.with_suffix(f".{target_lang}").is_file():
        return _read_aligned(path, path.with_suffix(f".{target_lang}"))
    return read_pairs_file(path, columns, source_lang, target_lang)


def load_parallel(data_cfg, task: str, data_dir=None) -> Splits:
    """Sentence pairs per split as ``(sources, targets)`` lists (see the module docstring)."""
    source = resolve(data_cfg.source, task, data_dir)
    src_lang, tgt_lang = data_cfg.source_lang, data_cfg.target_lang
    if src_lang == tgt_lang:
        raise DataError(f"data.source_lang and data.target_lang are both {src_lang!r}")
    split_by = data_cfg.split_by or source.options.get("split_by") or tgt_lang
    if split_by not in (src_lang, tgt_lang):
        raise DataError(f"data.split_by must be the source or target language ({src_lang} or {tgt_lang}), "
                        f"got {split_by!r}")

    def by_hash(pairs, val_fraction, test_fraction):
        return split(pairs, val_fraction, test_fraction, keys=pairs[0] if split_by == src_lang else pairs[1])

    def read(path, cfg, options):
        return _read_path(path, list(cfg.columns or options.get("columns") or []), src_lang, tgt_lang)

    reader = Reader(lambda cfg: _demo_pairs(task, src_lang, tgt_lang), read, _from_tfds, (f".{src_lang}",),
                    by_hash, "sentence pairs", folder_piece=True)
    parts, _ = load_splits(data_cfg, task, reader, data_dir, source)

    def clean(pair):
        keep = [i for i, (s, t) in enumerate(zip(*pair)) if s and t]
        return [pair[0][i] for i in keep], [pair[1][i] for i in keep]

    parts = {k: clean(v) for k, v in parts.items() if v is not None}
    if not parts["train"][0]:
        raise DataError(f"{data_cfg.source}: no non-empty sentence pairs for training")
    if not parts["val"][0]:
        raise DataError(f"{data_cfg.source}: the validation split is empty ({len(parts['train'][0])} training "
                        "pairs); raise data.val_fraction or give a dev file")
    return Splits(parts["train"], parts["val"], parts.get("test") or None,
                  {"source_lang": src_lang, "target_lang": tgt_lang})


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
    scoring the validation and the test split reads the data once)."""
    import dataclasses
    import json

    key = json.dumps([dataclasses.asdict(data_cfg), task, str(data_dir)], sort_keys=True)
    if key not in _TRAINING_KEYS:
        _TRAINING_KEYS.clear()
        _TRAINING_KEYS[key] = frozenset(source_keys(load_parallel(data_cfg, task, data_dir).train[0]))
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

    @classmethod
    def fit(cls, cfg, splits) -> "ParallelVocab":
        (sources, targets), data_cfg = splits.train, cfg.data
        target_std = standardize if data_cfg.lowercase_target else standardize_cased
        src = textlib.fit_vocabulary(sources, data_cfg.source_vocab_size, standardize)
        tgt = textlib.fit_vocabulary(targets, max(data_cfg.target_vocab_size - 2, 3), target_std)
        tgt = tgt[:2] + [START, END] + [t for t in tgt[2:] if t not in (START, END)]
        return cls(src, tgt, data_cfg.max_length, data_cfg.max_output_length, data_cfg.lowercase_target)

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

    def encode(self, sources, targets, drop_long: bool = True):
        """Ragged ``source``, ``target_in`` (START + tokens) and ``target_out`` (tokens + END) ids.

        With ``drop_long``, pairs whose source is longer than ``max_length`` tokens or
        whose target does not fit in ``max_output_length`` steps are left out."""
        src = textlib.vectorizer(self.source_vocab, standardize_fn=standardize, ragged=True)(
            np.asarray(sources, dtype=object))
        tgt = textlib.vectorizer(self.target_vocab, standardize_fn=self.target_standardize, ragged=True)(
            np.asarray(targets, dtype=object))
        if drop_long:
            keep = (src.row_lengths() <= self.max_length) & (tgt.row_lengths() < self.max_output_length)
            src, tgt = tf.ragged.boolean_mask(src, keep), tf.ragged.boolean_mask(tgt, keep)
        else:
            src = src[:, :self.max_length]
            tgt = tgt[:, :self.max_output_length - 1]
        n = tgt.nrows()
        start = tf.fill([n, 1], tf.constant(self.start_id, tgt.dtype))
        end = tf.fill([n, 1], tf.constant(self.end_id, tgt.dtype))
        return src, tf.concat([start, tgt], axis=1), tf.concat([tgt, end], axis=1)

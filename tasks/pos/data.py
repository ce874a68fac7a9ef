"""Tagged sentences for the pos task: loading from any source, the vocabularies, and the
tokenizer the serving graph uses.

Sources (read by :func:`seqapps.data.sources.load_splits`): ``demo``; a named dataset;
a tagged file (CoNLL-U, ``word/TAG`` lines or two columns, see :mod:`tasks.pos.conllu`);
a folder of such files named with ``train`` / ``dev`` / ``test``; ``tfds:NAME`` with
token and tag features (``tfds:universal_dependencies/en_ewt``, ``tfds:xtreme_pos/xtreme_pos_en``).
Pieces are split in order: a source without a validation split gives up its last
``data.val_fraction`` of training sentences (the protocol for ``ud_english_ewt``); a
single file gives up its last ``data.val_fraction`` and ``data.test_fraction``.
"""

from __future__ import annotations

import functools
from collections import Counter
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from tasks.pos.conllu import TAGGED_SUFFIXES, TAGSETS, read_tagged
from seqapps.data.preprocessing import Preprocessing, save_vocab
from seqapps.data.sources import Reader, load_splits
from seqapps.data.splits import split
from seqapps.data.vectors import read_vectors, resolve_vectors
from seqapps.core.errors import ConfigError, DataError
from seqapps.core.task import Splits


# -- loading -------------------------------------------------------------------------------------
def load_tagged_sentences(data_cfg, task: str, data_dir=None) -> Splits:
    """``[(words, tags), ...]`` per split (see the module docstring); training sentences
    are cut to ``data.max_length`` words."""
    if data_cfg.tagset not in TAGSETS:
        raise ConfigError(f"data.tagset must be upos or xpos, got {data_cfg.tagset!r}")

    def demo(cfg):
        from tasks.pos.demo import sentences

        return sentences()

    def in_order(data, val_fraction, test_fraction):
        return split(data, val_fraction, test_fraction, what=data_cfg.source, unit="sentence(s)")

    reader = Reader(demo, lambda path, cfg, options: read_tagged(path, cfg.tagset), _from_tfds,
                    tuple(sorted(TAGGED_SUFFIXES)), in_order)
    parts, _ = load_splits(data_cfg, task, reader, data_dir)
    cut = data_cfg.max_length
    parts["train"] = [(w[:cut], t[:cut]) for w, t in parts["train"]]
    tags = sorted({t for _, ts in parts["train"] for t in ts})
    if len(tags) < 2:
        raise DataError(f"{data_cfg.source}: the training sentences have {len(tags)} distinct tag(s); need at least 2")
    return Splits(parts["train"], parts["val"], parts["test"], {"tags": tags})


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
        sentences, data_cfg = splits.train, cfg.data
        counts = Counter(w.lower() for words, _ in sentences for w in words)
        words = [w for w, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
                 if c >= data_cfg.min_count][:max(0, data_cfg.vocab_size - 2)]
        chars = sorted({c for words, _ in sentences for w in words for c in w})
        tags = sorted({t for _, tags in sentences for t in tags})
        word_vectors = cfg.model.word_vectors
        vector_words, matrix = read_vectors(word_vectors_file(word_vectors)) if word_vectors else ([], None)
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

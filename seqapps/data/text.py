"""Text to token ids, with the same graph ops at training and serving time."""

from __future__ import annotations

from pathlib import Path

import keras
import tensorflow as tf

PAD, UNK = "", "[UNK]"


@keras.saving.register_keras_serializable(package="seqapps")
def standardize(text):
    """Lower-case and split punctuation off words; keeps accents and apostrophes.

    ``"It's GREAT!"`` -> ``"it 's great !"``; ``"don't"`` -> ``"do n't"`` (Penn style).
    """
    text = tf.strings.lower(text, encoding="utf-8")
    # RE2's \w is ASCII-only; \pL / \pN keep accented and non-Latin letters inside words
    text = tf.strings.regex_replace(text, r"([\pL\pN])n't\b", r"\1 n't")
    text = tf.strings.regex_replace(text, r"([\pL\pN])'(s|re|ve|ll|d|m)\b", r"\1 '\2")
    text = tf.strings.regex_replace(text, r"([^\pL\pN\pM_\s'])", r" \1 ")
    return tf.strings.strip(tf.strings.regex_replace(text, r"\s+", " "))


def vectorizer(vocabulary: list[str], max_length: int | None = None, standardize_fn=standardize,
               ragged: bool = False) -> keras.layers.TextVectorization:
    """A built TextVectorization over ``vocabulary`` (without the pad and OOV entries).

    With ``ragged``, a function ``texts -> tf.RaggedTensor`` of the same ids in plain TF ops
    instead (Keras' ragged TextVectorization exists only on the TensorFlow backend, and
    datasets are built on whatever backend trains)."""
    if ragged:
        return _RaggedIds(vocabulary, standardize_fn)
    layer = keras.layers.TextVectorization(
        standardize=standardize_fn, split="whitespace", output_mode="int",
        vocabulary=[t for t in vocabulary if t not in (PAD, UNK)], ragged=ragged)
    layer.build(None)
    return layer


class _RaggedIds:
    """``texts -> ragged ids`` as TextVectorization gives them: 0 padding, 1 unknown, then the vocabulary."""

    def __init__(self, vocabulary, standardize_fn):
        words = [t for t in vocabulary if t not in (PAD, UNK)]
        self.table = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(
            tf.constant(words, tf.string), tf.range(2, len(words) + 2, dtype=tf.int64)), default_value=1)
        self.standardize_fn = standardize_fn

    def __call__(self, texts):
        tokens = tf.strings.split(self.standardize_fn(tf.convert_to_tensor(texts, tf.string)))
        return tf.ragged.map_flat_values(self.table.lookup, tokens)


def fit_vocabulary(texts, max_tokens: int, standardize_fn=standardize) -> list[str]:
    """The ``max_tokens`` most frequent tokens (pad and OOV included), ties broken by first use."""
    layer = keras.layers.TextVectorization(max_tokens=max_tokens, standardize=standardize_fn, split="whitespace")
    layer.adapt(tf.data.Dataset.from_tensor_slices(list(texts)).batch(4096))
    return layer.get_vocabulary()


def save_lines(path, items) -> None:
    Path(path).write_text("".join(f"{item}\n" for item in items), encoding="utf-8")


def load_lines(path) -> list[str]:
    return Path(path).read_text(encoding="utf-8").split("\n")[:-1]


def clip_and_pad(tokens, max_length: int, min_length: int = 1, pad_value=0):
    """Dense [batch, time] ids cut to ``max_length`` and at least ``min_length`` wide.

    An empty text vectorizes to a zero-width row; the recurrent layers need one step,
    so a batch of empty texts becomes one fully masked step.
    """
    tokens = tokens[:, :max_length]
    width = tf.shape(tokens)[1]
    return tf.pad(tokens, [[0, 0], [0, tf.maximum(0, min_length - width)]], constant_values=pad_value)


def words(texts, standardize_fn=standardize):
    """Ragged ``[batch, (words)]`` strings, split exactly as the vectorizer splits them."""
    return tf.strings.split(standardize_fn(texts))

def token_lengths(tokens):
    """Lengths of ``""``-padded token rows: up to the last non-empty token."""
    positions = tf.range(1, tf.shape(tokens)[1] + 1)[None, :]
    # a leading zero column keeps rows of no tokens at 0 (reduce_max over nothing is the lowest int)
    return tf.reduce_max(tf.pad(tf.where(tokens != "", positions, 0), [[0, 0], [1, 0]]), axis=1)

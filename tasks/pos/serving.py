"""The serving functions of a word tagger: raw sentences or token lists in, one tag per word out.

Both signatures return ``tokens`` and ``tags`` (``tf.string [batch, time]``, padded
with ``""``), ``lengths`` (``int32 [batch]``) and ``in_vocabulary`` (``bool [batch,
time]``: the word had an id of its own, not the unknown id 1).
"""

from __future__ import annotations

import tensorflow as tf

from seqapps.data.text import token_lengths
from tasks.pos.data import pad_tokens, tokenize
from seqapps.layers.tagging import decode_tags
from seqapps.inference.self_attention import self_attention_endpoint
from seqapps.core import bounds
from seqapps.core.task import Endpoint
from seqapps.inference.checks import require

OUTPUTS = "tokens, tags (tf.string [batch, time], padded with ''), lengths (int32 [batch]), in_vocabulary"


def tagger_features(encode, tokens, lengths):
    """What every signature feeds the model, and training too (:func:`tasks.pos.task.encode_sentences`):
    ``tokens`` ``tf.string [batch, time]`` padded with ``""`` (made at least one step wide) and the
    real ones per row -> ``(tokens, lengths int32, encode(tokens, lengths), mask)``."""
    tokens, lengths = pad_tokens(tokens), tf.cast(lengths, tf.int32)
    return tokens, lengths, encode(tokens, lengths), tf.sequence_mask(lengths, tf.shape(tokens)[1])


def tagger_endpoints(model, encode, tags: list[str], crf: bool) -> dict[str, Endpoint]:
    """``serving_default`` (``text``, tokenized in the graph by :func:`tokenize`), ``tag_tokens``
    (``tokens`` padded with ``""``) and ``self_attention`` (:mod:`seqapps.inference.self_attention`)
    over ``model``, which reads ``encode(tokens, lengths)`` (a feature dict with ``words`` ids) and
    scores ``tags`` (CRF potentials when ``crf``)."""
    names = tf.constant(tags)

    def features(tokens, lengths):
        return tagger_features(encode, tokens, lengths)

    def tag(tokens, lengths):
        shape = tf.shape(tokens, out_type=tf.int64)
        most = bounds.TAG_TOKENS  # what the tagger holds grows with every token position of the call
        tokens = require(tokens, shape[0] * shape[1] <= most,
                         ["rows x the tokens of the longest row is ", shape[0], " x ", shape[1], f"; the bound is {most}: "
                          "send long sentences in calls of their own"])
        tokens, lengths, feats, mask = features(tokens, lengths)
        ids = decode_tags(model(feats, training=False), mask, crf)
        return {"tokens": tf.where(mask, tokens, ""), "tags": tf.where(mask, tf.gather(names, tf.maximum(ids, 0)), ""),
                "lengths": lengths, "in_vocabulary": tf.logical_and(mask, feats["words"] > 1)}

    def serve_text(text):
        ragged = tokenize(text)
        return tag(ragged.to_tensor(""), ragged.row_lengths())

    def encode_text(text):  # the model's inputs and the words they are, for the self-attention maps
        ragged = tokenize(text)
        tokens, _, feats, mask = features(ragged.to_tensor(""), ragged.row_lengths())
        return feats, tf.where(mask, tokens, "")

    def serve_tokens(tokens):
        return tag(tokens, token_lengths(tokens))

    return {
        "serving_default": Endpoint(serve_text, [tf.TensorSpec([None], tf.string, name="text")],
                                    f"raw sentences, tokenized in the graph -> {OUTPUTS}"),
        "tag_tokens": Endpoint(serve_tokens, [tf.TensorSpec([None, None], tf.string, name="tokens")],
                               f"pre-tokenized sentences padded with '' -> {OUTPUTS}"),
        "self_attention": self_attention_endpoint(model, encode_text),
    }

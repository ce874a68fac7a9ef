"""The ``self_attention`` signature of a text encoder: which words each word reads, per layer and head.

Every sentiment and pos export has it, whatever ``model.architecture`` (so serving code does not
change when the encoder does): ``text`` in, ``tokens`` (``tf.string [batch, time]``, padded with
``""``), ``lengths`` (``int32 [batch]``) and ``attention`` (``float32 [batch, layers, heads, time,
time]``: row i is what word i attends to, each row summing to 1 over the real words) out. A recurrent
or bag encoder has no self-attention: its ``attention`` has 0 layers and 0 heads.
``evaluate --plot`` draws it with :func:`seqapps.analysis.plots.plot_self_attention_maps`.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from seqapps.layers.transformer import TransformerBlock
from seqapps.core.task import Endpoint

DOC = ("text -> tokens (tf.string [batch, time], padded with ''), lengths (int32 [batch]), attention "
       "(float32 [batch, layers, heads, time, time]; 0 layers without self-attention)")


def attention_model(model: keras.Model) -> keras.Model | None:
    """The self-attention weights of ``model``'s transformer blocks, in order, as a model over the same
    inputs (a list of ``[batch, heads, time, time]``), or None when it has no block."""
    blocks = [layer for layer in model.layers if isinstance(layer, TransformerBlock)]
    if not blocks:
        return None
    return keras.Model(model.input, [block.output[1] for block in blocks], name=f"{model.name}_self_attention")


def self_attention_endpoint(model: keras.Model, encode) -> Endpoint:
    """``encode(text)`` -> (``model``'s inputs, tokens ``tf.string [batch, time]`` padded with ``""``,
    aligned with those inputs' time axis) ; the endpoint returns the tokens, lengths and attention."""
    weights = attention_model(model)

    def serve(text):
        inputs, tokens = encode(text)
        lengths = tf.reduce_sum(tf.cast(tf.not_equal(tokens, ""), tf.int32), axis=1)
        if weights is None:
            shape = tf.shape(tokens)
            attention = tf.zeros(tf.stack([shape[0], 0, 0, shape[1], shape[1]]), tf.float32)
        else:
            per_block = weights(inputs, training=False)
            per_block = list(per_block) if isinstance(per_block, (list, tuple)) else [per_block]  # one block: a tensor
            attention = tf.cast(tf.stack(per_block, axis=1), tf.float32)
        return {"tokens": tokens, "lengths": lengths, "attention": attention}

    return Endpoint(serve, [tf.TensorSpec([None], tf.string, name="text")], DOC)

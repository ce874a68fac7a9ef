"""Recurrent layers traced for ONNX as ONNX Runtime's fused ``LSTM``/``GRU`` operators instead of a ``Loop``.

tf2onnx rewrites a Keras LSTM or GRU into ONNX's own ``LSTM``/``GRU`` operator (one fused kernel in ONNX
Runtime) only when the layer runs without a mask: with a mask, Keras' step function selects between the new
and the carried state at every step and the converter keeps the whole loop as an ONNX ``Loop``, whose
per-step cost dominated every recurrent export (a bidirectional LSTM of 64 units over 14 tokens: 1.46 ms as
a ``Loop``, 0.11 ms as the fused operator, one thread).

:func:`by_lengths` is a context manager for the ONNX adapters: inside it, a Keras ``LSTM``/``GRU``/``SimpleRNN``
called with a mask whose ``True`` steps come first in every row (seqapps' tokenizers pad on the right) runs
without the mask and gives the same answers: a forward layer reads the row as it is (the steps after its end
cannot change the outputs before it); a ``go_backwards`` layer reads each row reversed within its length
(``tf.reverse_sequence``), so the padding comes after the row's first token as well; the outputs are then
put where Keras' masked loop puts them (zeros, or the last output carried, at masked steps) and the last
output and state are read at each row's end. An LSTM asked for its states (its cell state ``c`` is not among
the outputs) and a stateful or unrolled layer keep Keras' own masked loop.
"""

from __future__ import annotations

import contextlib


def _unmasked(layer, sequences, initial_state, mask, training, call):
    """``call`` (Keras' ``RNN.call``) without ``mask``, answering as it would with it (see the module)."""
    import tensorflow as tf

    lengths = tf.reduce_sum(tf.cast(mask, tf.int32), axis=1)
    backwards, sequences_asked = layer.go_backwards, layer.return_sequences
    x = tf.reverse_sequence(sequences, lengths, seq_axis=1, batch_axis=0) if backwards else sequences
    layer.go_backwards, layer.return_sequences = False, True
    try:
        result = call(layer, x, initial_state=initial_state, mask=None, training=training)
    finally:
        layer.go_backwards, layer.return_sequences = backwards, sequences_asked
    out = result[0] if layer.return_state else result  # [batch, steps, units], the row's first step first
    rows = tf.range(tf.shape(lengths)[0])
    seen = tf.cast(lengths > 0, out.dtype)[:, None]
    last = tf.gather_nd(out, tf.stack([rows, tf.maximum(lengths - 1, 0)], axis=1)) * seen
    if sequences_asked:
        valid = tf.cast(tf.sequence_mask(lengths, tf.shape(out)[1]), out.dtype)[:, :, None]
        if backwards:  # Keras' order: step j holds position T-1-j; its masked steps (the first) output zeros
            out = tf.reverse(tf.reverse_sequence(out, lengths, seq_axis=1, batch_axis=0) * valid, axis=[1])
        elif layer.zero_output_for_mask:
            out = out * valid
        else:  # masked steps carry the last output
            out = out * valid + last[:, None, :] * (1.0 - valid)
    elif layer.zero_output_for_mask and not backwards:  # Keras' last step is masked in a short row: zeros
        out = last * tf.cast(lengths == tf.shape(out)[1], out.dtype)[:, None]
    else:
        out = last
    if not layer.return_state:
        return out
    first = initial_state[0] if initial_state is not None else tf.zeros_like(last)  # GRU / SimpleRNN: h only
    return [out, last + (1.0 - seen) * first]


@contextlib.contextmanager
def by_lengths():
    """Inside: masked Keras recurrent layers run unmasked with the same answers (see the module)."""
    import keras

    rnn = keras.layers.RNN  # LSTM, GRU and SimpleRNN call it
    original = rnn.call

    def call(self, sequences, initial_state=None, mask=None, training=False):
        if (mask is None or self.stateful or self.unroll or
                (self.return_state and isinstance(self, keras.layers.LSTM))):
            return original(self, sequences, initial_state=initial_state, mask=mask, training=training)
        return _unmasked(self, sequences, initial_state, mask, training, original)

    rnn.call = call
    try:
        yield
    finally:
        rnn.call = original

"""The one recurrent-layer factory every task uses.

``cell=rnn|lstm|gru``, ``units``, ``layers``, ``bidirectional``, ``dropout`` and
``recurrent_dropout`` mean the same thing everywhere. LSTM and GRU keep Keras'
defaults (tanh/sigmoid, ``reset_after=True``, no recurrent dropout, not unrolled)
so that on a GPU they run the fused cuDNN kernel.
"""

from __future__ import annotations

import keras

from seqapps.core.errors import ConfigError

LAYERS = {"rnn": keras.layers.SimpleRNN, "lstm": keras.layers.LSTM, "gru": keras.layers.GRU}
CELLS = {"rnn": keras.layers.SimpleRNNCell, "lstm": keras.layers.LSTMCell, "gru": keras.layers.GRUCell}


def _check(cell: str) -> str:
    if cell not in LAYERS:
        raise ConfigError(f"model.cell must be one of {', '.join(LAYERS)}, got {cell!r}")
    return cell


def recurrent_layer(cfg, *, units: int | None = None, return_sequences=False, return_state=False,
                    stateful=False, name=None, bidirectional: bool | None = None):
    """One recurrent layer from ``cfg`` (a ModelConfig), optionally bidirectional."""
    layer = LAYERS[_check(cfg.cell)](
        units or cfg.units, return_sequences=return_sequences, return_state=return_state,
        stateful=stateful, recurrent_dropout=cfg.recurrent_dropout, name=None if name is None else f"{name}_{cfg.cell}")
    bidirectional = cfg.bidirectional if bidirectional is None else bidirectional
    return keras.layers.Bidirectional(layer, name=name) if bidirectional else layer


def recurrent_cell(cfg, *, units: int | None = None, name=None):
    """A single cell (for decoders that step one token at a time)."""
    return CELLS[_check(cfg.cell)](units or cfg.units, recurrent_dropout=cfg.recurrent_dropout, name=name)


def state_size(cfg, units: int | None = None) -> int:
    """How many state tensors a cell of this kind carries (2 for LSTM: h and c)."""
    return 2 if _check(cfg.cell) == "lstm" else 1


def recurrent_stack(x, cfg, *, return_sequences=False, name="rnn", mask=None):
    """Apply ``cfg.layers`` recurrent layers to ``x`` (functional API).

    Every layer but the last returns sequences; ``cfg.dropout`` follows each layer.
    """
    if cfg.layers < 1:
        raise ConfigError(f"model.layers must be >= 1, got {cfg.layers}")
    for i in range(cfg.layers):
        last = i == cfg.layers - 1
        layer = recurrent_layer(cfg, return_sequences=return_sequences or not last, name=f"{name}_{i + 1}")
        x = layer(x, mask=mask) if mask is not None else layer(x)
        if cfg.dropout:
            x = keras.layers.Dropout(cfg.dropout, name=f"{name}_{i + 1}_dropout")(x)
    return x


#: the gates each cell computes at every step, in the order :func:`cell_gates` stacks them
GATES = {"lstm": ("input", "forget", "output", "candidate"), "gru": ("update", "reset"), "rnn": ()}


def cell_gates(cell, x, carried):
    """The gate activations a Keras LSTM/GRU cell computes from input ``x`` ``[batch, in]`` and its
    carried state, ``[batch, gates, units]`` in :data:`GATES` order, read from the cell's own weights:
    LSTM i, f, o (``recurrent_activation``) and the candidate g (``activation``); GRU z (update) and
    r (reset), as ``reset_after`` computes them. A SimpleRNN cell has none: ``[batch, 0, units]``."""
    from keras import ops

    h = carried[0]
    units = cell.units
    if isinstance(cell, keras.layers.LSTMCell):
        z = ops.matmul(x, cell.kernel) + ops.matmul(h, cell.recurrent_kernel)
        if cell.use_bias:
            z = z + cell.bias
        i, f, g, o = (z[:, k * units:(k + 1) * units] for k in range(4))  # Keras' order: i, f, c, o
        act, rec = cell.activation, cell.recurrent_activation
        return ops.stack([rec(i), rec(f), rec(o), act(g)], axis=1)
    if isinstance(cell, keras.layers.GRUCell):
        bias = cell.bias if cell.use_bias else None
        from_x = ops.matmul(x, cell.kernel)
        from_h = ops.matmul(h, cell.recurrent_kernel)
        if bias is not None:
            from_x = from_x + (bias[0] if cell.reset_after else bias)
            if cell.reset_after:
                from_h = from_h + bias[1]
        rec = cell.recurrent_activation
        z = rec(from_x[:, :units] + from_h[:, :units])
        r = rec(from_x[:, units:2 * units] + from_h[:, units:2 * units])
        return ops.stack([z, r], axis=1)
    return ops.zeros((ops.shape(h)[0], 0, units), dtype=h.dtype)

"""The one recurrent-layer factory every task uses.

``cell=rnn|lstm|gru``, ``units``, ``layers``, ``bidirectional``, ``dropout`` and
``recurrent_dropout`` mean the same thing everywhere. LSTM and GRU keep Keras'
defaults (tanh/sigmoid, ``reset_after=True``, no recurrent dropout, not unrolled)
so that on a GPU they run the fused cuDNN kernel.
"""

from __future__ import annotations

import keras

from seqapps.errors import ConfigError

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

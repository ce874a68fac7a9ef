"""The one-to-one baseline over a sequence: a bag of vectors, no order at all.

:func:`bag_of_vectors` pools ``[batch, time, dim]`` vectors over the unmasked steps
(their mean, as fastText does, or their sum) and feeds the result to :func:`mlp`, a
small multi-layer perceptron. Permuting the steps of a row changes nothing but the
order of a float sum. Functional helpers over serializable layers, like
:func:`seqapps.layers.recurrent_stack`.
"""

from __future__ import annotations

import keras

from seqapps.core.errors import ConfigError
from seqapps.layers.pooling import MaskedPooling

#: what a bag may pool with (order-free modes of MaskedPooling)
BAG_POOLING = ("mean", "sum")


def mlp(x, units: int, layers: int = 1, dropout: float = 0.0, activation: str = "relu", name: str = "mlp"):
    """``layers`` dense layers of ``units`` (``activation``), each followed by ``dropout`` when > 0."""
    if layers < 1:
        raise ConfigError(f"model.layers must be >= 1, got {layers}")
    for i in range(layers):
        x = keras.layers.Dense(units, activation=activation, name=f"{name}_{i + 1}")(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name=f"{name}_{i + 1}_dropout")(x)
    return x


def bag_of_vectors(x, mask, pooling: str = "mean", units: int = 64, layers: int = 1, dropout: float = 0.0,
                   name: str = "bag"):
    """``[batch, time, dim]`` vectors and their ``[batch, time]`` mask -> ``[batch, units]``: the masked
    ``pooling`` (mean or sum) of the vectors through :func:`mlp`."""
    if pooling not in BAG_POOLING:
        raise ConfigError(f"model.bag_pooling must be one of {', '.join(BAG_POOLING)}, got {pooling!r}")
    x = MaskedPooling(pooling, name=f"{name}_pooling")(x, mask=mask)
    return mlp(x, units, layers, dropout, name=f"{name}_mlp")

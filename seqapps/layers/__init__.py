"""Serializable building blocks shared by tasks."""

from seqapps.layers.pooling import MaskedPooling
from seqapps.layers.recurrent import recurrent_cell, recurrent_layer, recurrent_stack, state_size

__all__ = ["MaskedPooling", "recurrent_cell", "recurrent_layer", "recurrent_stack", "state_size"]

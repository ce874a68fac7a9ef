"""What every model that steps shares: its constructor arguments are its config.

A subclass keeps its constructor arguments in ``self.settings``; ``get_config`` returns
them and ``from_config`` rebuilds the model from them. The layers are created in
``__init__`` and built by the first call, so a loaded model needs no build config:
Keras restores the weights once the saved model has been called.
"""

from __future__ import annotations

import keras


class SettingsModel(keras.Model):
    """A ``keras.Model`` serialized by its ``settings`` dict (set it in ``__init__``)."""

    settings: dict

    def get_config(self):
        return {**super().get_config(), **self.settings}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def get_build_config(self):
        return {}

    def build_from_config(self, config):
        pass

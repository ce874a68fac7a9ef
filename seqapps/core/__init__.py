"""The task contract, registry, configuration, presets and errors: the bottom layer."""

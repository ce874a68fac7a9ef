"""Training: fit, the run directory, prepared data, backends, distribution, callbacks, losses."""

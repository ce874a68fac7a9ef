"""What char_lm's predictor says, over any runtime: generated text from ``serving_default`` and nats
per character from ``score``. Imports no TensorFlow, so an ONNX export answers through it too
(:mod:`seqapps.inference.onnx_runtime` finds it as ``tasks.<task>.predicting.Predictions``); the
SavedModel's predictor adds ``states``."""

from __future__ import annotations

import math

import numpy as np

from seqapps.core import bounds
from seqapps.core.errors import ConfigError, DataError
from seqapps.inference.predictor import decode_strings, text_items

MAX_GENERATE = 20_000       # characters one generate call may produce


def check_generate_args(length, temperature, top_k, top_p) -> None:
    """The documented limits of ``generate``; everything else is an error naming the argument."""
    import numbers

    for value, name, kind in ((length, "length", numbers.Integral), (top_k, "top_k", numbers.Integral),
                              (temperature, "temperature", numbers.Real), (top_p, "top_p", numbers.Real)):
        if isinstance(value, bool) or not isinstance(value, kind):
            raise DataError(f"{name} must be {'a whole number' if kind is numbers.Integral else 'a number'}, got "
                            f"{type(value).__name__} {value!r}")
    if not 0 <= int(length) <= MAX_GENERATE:
        raise ConfigError(f"length must be between 0 and {MAX_GENERATE} characters, got {length}")
    if not 0 <= float(temperature) < float("inf"):
        raise ConfigError(f"temperature must be a finite number >= 0 (0 picks the most likely character), "
                          f"got {temperature}")
    if int(top_k) < 0:
        raise ConfigError(f"top_k must be >= 0 (0 switches it off), got {top_k}")
    if not 0 < float(top_p) <= 1:
        raise ConfigError(f"top_p must be in (0, 1] (1 switches it off), got {top_p}")



class Predictions:
    """A mixin for a :class:`~seqapps.inference.predictor.Predictor` of a character language model."""

    def generate(self, prime="", length: int = 200, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
                 seed: int | None = None):
        """The continuation of ``prime`` (a str, or a list of str for a list of continuations)."""
        check_generate_args(length, temperature, top_k, top_p)
        primes = text_items(prime, "prime")
        if seed is None:
            seed = int(np.random.default_rng().integers(0, 2 ** 31 - 1))
        out = self.call(prime=primes, length=int(length), temperature=float(temperature), top_k=int(top_k),
                        top_p=float(top_p), seed=int(seed))
        texts = decode_strings(out["text"]) if primes else []
        return texts[0] if isinstance(prime, str) else texts

    def score(self, text: str, streams: int = 16) -> dict:
        """Nats and bits per character of ``text`` read as ``streams`` contiguous pieces (more, where a
        piece would be longer than the export's ``score_values`` bound lets one call read), sent in as
        many calls as the bound needs."""
        if len(text) < 2:
            raise DataError(f"need at least 2 characters to score, got {len(text)}")
        per_char = int(self.metadata.get("vocabulary_size", len(self.metadata.get("chars", "")))) + 1
        budget = bounds.of(self.metadata)["score_values"] // per_char  # rows x (characters + 2) of one call
        longest = max(2, budget - 3)  # the characters one piece may hold
        streams = max(1, min(max(int(streams), math.ceil((len(text) - 1) / (longest - 1))), len(text) - 1))
        size = math.ceil((len(text) - 1) / streams)
        # pieces overlap by one character, so every character but the first is predicted once
        pieces = [text[i:i + size + 1] for i in range(0, len(text) - 1, size)]
        rows = max(1, budget // (size + 3))
        outs = [self.call("score", text=pieces[i:i + rows]) for i in range(0, len(pieces), rows)]
        total = float(sum(np.sum(o["log_likelihood"], dtype=np.float64) for o in outs))
        count = int(sum(np.sum(o["count"]) for o in outs))
        nats = -total / max(count, 1)
        return {"nats_per_char": nats, "bits_per_char": nats / math.log(2), "perplexity": math.exp(nats),
                "chars": count}

    def predict(self, inputs):
        return self.generate(inputs)

    def format(self, inputs, results):
        return [p + r for p, r in zip(inputs, results)]


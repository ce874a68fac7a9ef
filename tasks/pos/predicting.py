"""What pos' predictor says, over any runtime: tokens, tags and whether each word was in the vocabulary,
from the ``serving_default`` (sentences) and ``tag_tokens`` (token lists) signatures. Imports no
TensorFlow, so an ONNX export answers through it too (:mod:`seqapps.inference.onnx_runtime` finds it
as ``tasks.<task>.predicting.Predictions``)."""

from __future__ import annotations

from seqapps.core import bounds
from seqapps.core.errors import DataError
from seqapps.inference.predictor import decode_strings, length_batches, one_or_many, pad_strings, text_items


class Predictions:
    """A mixin for a :class:`~seqapps.inference.predictor.Predictor` of a word tagger."""

    def analyze(self, inputs, batch_size: int = 128) -> list[dict]:
        """``[{"tokens": [...], "tags": [...], "in_vocabulary": [...]}, ...]`` for raw strings
        (tokenized in the graph) or token lists (tagged as given); batches by length."""
        single, inputs = isinstance(inputs, str), text_items(inputs, "inputs", strings_only=False)
        results = [None] * len(inputs)
        for signature, idx in by_kind(inputs).items():
            # a sentence's tokens are at most its characters: calls stay within the export's tag_tokens
            for chunk in length_batches(idx, inputs, batch_size, bounds.of(self.metadata).get("tag_tokens")):
                if signature == "serving_default":
                    out = self.call(signature, text=[inputs[i] for i in chunk])
                else:  # "" would read as padding: a real empty token is passed as one space
                    out = self.call(signature, tokens=pad_strings([[t or " " for t in inputs[i]] for i in chunk]))
                for row, i in enumerate(chunk):
                    n = int(out["lengths"][row])
                    tokens = list(inputs[i]) if signature == "tag_tokens" else decode_strings(out["tokens"][row][:n])
                    results[i] = {"tokens": tokens, "tags": decode_strings(out["tags"][row][:n]),
                                  "in_vocabulary": out["in_vocabulary"][row][:n].tolist()}
        return results[0] if single else results

    def predict(self, inputs, batch_size: int = 128) -> list[list[tuple[str, str]]]:
        """One ``[(word, tag), ...]`` list per input (a sentence string or a token list); one
        string gives one list."""
        results = self.analyze(text_items(inputs, "inputs", strings_only=False), batch_size)
        pairs = [list(zip(r["tokens"], r["tags"])) for r in results]
        return one_or_many(inputs, pairs)

    def format(self, inputs, results):
        return [" ".join(f"{w}/{t}" for w, t in pairs) for pairs in results]


def by_kind(inputs) -> dict[str, list[int]]:
    """The indices of the sentences (``serving_default``) and of the token lists (``tag_tokens``)."""
    groups = {"serving_default": [], "tag_tokens": []}
    for i, item in enumerate(inputs):
        if isinstance(item, str):
            groups["serving_default"].append(i)
        elif isinstance(item, (list, tuple)):
            bad = next((j for j, t in enumerate(item) if not isinstance(t, str)), None)
            if bad is not None:
                raise DataError(f"input {i}: a list of tokens holds only strings; token {bad} is "
                                f"{type(item[bad]).__name__}")
            groups["tag_tokens"].append(i)
        else:
            raise DataError(f"input {i}: expected a sentence (str) or a list of tokens, got {type(item).__name__}")
    return groups

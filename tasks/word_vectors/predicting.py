"""What a word_vectors predictor says, over any runtime: ``vectors``, ``neighbours``, ``analogy`` and the CLI's
lines. Imports no TensorFlow, so an ONNX or LiteRT export answers through it too
(:mod:`seqapps.inference.onnx_runtime` finds it as ``tasks.<task>.predicting.Predictions``).

:func:`signatures` is such an export's three signatures. Its graph is the vector table only (``ids`` int64
``[batch]`` -> ``vectors`` float32 ``[batch, dim]``, id 0 the unknown word), read whole once when the export
loads; the rest runs in NumPy as the SavedModel's graph runs it: the signatures' text checks (rows and bytes,
the same lines), the cut of every run of non-space characters to its first ``WORD_CHARS`` (100) characters,
strip and lower-case (:func:`standardize`), the vocabulary lookup (``words.json``), unit-normalization, the
cosine matmul and the top k (ties: the lower id first, as ``tf.math.top_k``).

:func:`standardize` equals the graph's ``tf.strings.lower(tf.strings.strip(...))`` on ASCII and the accented
Latin letters (a property test), and on every single character but one class, measured over all of Unicode:
the 40 capital letters newer than TensorFlow's Unicode tables (U+2C2F, U+A7C0, U+A7D0, U+A7D6, U+A7D8, Vithkuqi
U+10570..U+10595), which Python lower-cases and TensorFlow keeps. ``'İ'`` becomes ``'i̇'`` in both; Unicode
spaces stay in a word in both (only ASCII whitespace is stripped).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from seqapps.core import bounds
from seqapps.core.errors import DataError
from seqapps.inference.predictor import decode_strings, one_or_many, text_items
from seqapps.inference.ranking import top_k

WORDS = "words.json"  # beside an ONNX or LiteRT graph: the vocabulary, ids 1.. in order
STRIP = " \t\n\v\f\r"  # absl's ASCII whitespace: what tf.strings.strip strips
# RE2's \S (the signatures' cut of long words): anything but [\t\n\f\r ]
LONG_WORD = re.compile(r"([^\t\n\f\r ]{%d})[^\t\n\f\r ]+" % bounds.WORD_CHARS)


class Predictions:
    """``vectors(words)``, ``neighbours(words, k)``, ``analogy(a, b, c)``; ``predict`` = ``neighbours``."""

    def vectors(self, words) -> np.ndarray:
        words = text_items(words, "words")
        return np.asarray(self.call("serving_default", words=words)["vectors"])

    def neighbours(self, words, k: int = 10):
        """One ``[(word, cosine similarity), ...]`` list (nearest first) per word; ``[]`` for a word without
        a vector; one string gives one list."""
        items = text_items(words, "words")
        out = self.call("neighbours", words=items, k=np.int32(k))
        known = self.call("serving_default", words=items)["in_vocabulary"] if items else []
        lists = [list(zip(decode_strings(n), map(float, s))) if ok else []
                 for n, s, ok in zip(out["neighbours"], out["similarities"], known)]
        return one_or_many(words, lists)

    def analogy(self, a, b, c) -> list[str]:
        """``d`` for each ``a : b :: c : d`` (3CosAdd over the vocabulary, ``a``, ``b``, ``c`` excluded)."""
        return decode_strings(self.call("analogy", a=list(a), b=list(b), c=list(c))["answer"])

    def predict(self, inputs, k: int = 10):
        return self.neighbours(inputs, k)

    def format(self, inputs, results):
        return [f"{w}: " + (", ".join(f"{n} {s:.3f}" for n, s in r) or "(no vector)") for w, r in zip(inputs, results)]


def standardize(word: str) -> str:
    """One ``words`` item as the SavedModel's graph reads it: every run of non-space characters cut to its first
    ``WORD_CHARS``, ASCII whitespace stripped, lower-cased (``tf.strings.lower`` ends a string at NUL)."""
    return LONG_WORD.sub(r"\1", word).strip(STRIP).split("\0", 1)[0].lower()


def check_text(items: list, name: str) -> None:
    """The SavedModel signatures' text bounds (:func:`seqapps.inference.checks.bounded_text`), same lines."""
    b = bounds
    per_row = [len(t.encode("utf-8")) if isinstance(t, str) else len(t) for t in items]
    longest, total = max(per_row, default=0), sum(per_row)
    if len(items) > b.ROWS:
        raise DataError(f"{name} has more than {b.ROWS} rows; send at most {b.ROWS} in one call")
    if longest > b.TEXT_BYTES:
        raise DataError(f"a {name} item is over {b.TEXT_BYTES} bytes (UTF-8); split it, or send less")
    if total > b.CALL_TEXT_BYTES:
        raise DataError(f"the {name} items together are over {b.CALL_TEXT_BYTES} bytes; send them in several calls")
    if len(items) * longest > b.PADDED_TEXT_BYTES:
        raise DataError(f"rows x the longest {name} item is over {b.PADDED_TEXT_BYTES} bytes; "
                        "send long texts in calls of their own")


def write_words(folder: Path, words: list) -> None:
    (Path(folder) / WORDS).write_text(json.dumps(list(words), ensure_ascii=False) + "\n", encoding="utf-8")


def signatures(path: Path, metadata: dict, sess) -> dict:
    """``serving_default``, ``neighbours`` and ``analogy`` of an ONNX or LiteRT export, answered as the
    SavedModel's: the table read from the graph once, the rest in NumPy (module docstring)."""
    from seqapps.inference.array_spec import ArraySpec

    words = json.loads((Path(path) / WORDS).read_text(encoding="utf-8"))
    ids_of = {w: i for i, w in enumerate(words, start=1)}
    names = np.array([b"", *(w.encode("utf-8") for w in words)], dtype=object)
    (table,) = sess.run(["vectors"], {"ids": np.arange(len(words) + 1, dtype=np.int64)})
    table = np.asarray(table, np.float32)
    unit = table / np.maximum(np.linalg.norm(table, axis=1, keepdims=True), np.float32(1e-9))
    unit[0] = 0.0  # the unknown word matches nothing
    n = len(unit)

    def ids(items, name):
        items = [t.decode("utf-8", "replace") if isinstance(t, bytes) else t for t in np.asarray(items).tolist()]
        check_text(items, name)
        return np.array([ids_of.get(standardize(t), 0) for t in items], np.int64)

    def nearest(query, exclude, k):
        sims = (query @ unit.T).astype(np.float32)  # [batch, vocab + 1]
        banned = np.zeros(sims.shape, bool)
        banned[np.arange(len(sims))[:, None], exclude] = True
        banned[:, 0] = True
        sims = np.where(banned, np.float32(-2.0), sims)
        k = int(np.clip(k, 0, n - 1))
        top = top_k(sims, k)  # ties: the lower id first, as tf.math.top_k
        return names[top].reshape(len(sims), k), np.take_along_axis(sims, top, axis=1)

    def serve(words):
        i = ids(words, "words")
        return {"vectors": np.where((i > 0)[:, None], table[i], np.float32(0.0)), "in_vocabulary": i > 0}

    def neighbours(words, k):
        i = ids(words, "words")
        found, sims = nearest(unit[i], i[:, None], k)
        return {"neighbours": found, "similarities": sims}

    def analogy(a, b, c):
        ia, ib, ic = ids(a, "a"), ids(b, "b"), ids(c, "c")
        if not len(ia) == len(ib) == len(ic):
            raise DataError(f"a, b and c must hold as many words each; got {len(ia)}, {len(ib)} and {len(ic)}")
        found, sims = nearest(unit[ib] - unit[ia] + unit[ic], np.stack([ia, ib, ic], axis=1), 1)
        return {"answer": found[:, 0], "similarity": sims[:, 0]}

    text = ArraySpec("words", "string", (None,))
    return {"serving_default": (serve, {"words": text}),
            "neighbours": (neighbours, {"words": text, "k": ArraySpec("k", "int32", ())}),
            "analogy": (analogy, {n: ArraySpec(n, "string", (None,)) for n in "abc"})}

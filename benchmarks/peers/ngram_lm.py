"""Classical character n-gram language models, the peers of char_lm.

- :class:`KneserNeyLM`: interpolated Kneser-Ney. By default *modified* KN (Chen &
  Goodman 1998): three absolute discounts per order (for counts 1, 2 and 3+), estimated
  from that order's count-of-counts, ``Y = n1/(n1+2 n2)``, ``D_r = r - (r+1) Y n_{r+1}/n_r``.
  The highest order uses raw counts, every lower order continuation counts
  (``N1+(. h w)``, how many different characters precede ``h w``), and the unigram level
  is discounted too and interpolated with the uniform distribution over the vocabulary:

      P_k(w | h) = (max(c(h w) - D(c), 0) + gamma(h) P_{k-1}(w | h')) / c(h .)
      gamma(h)   = D_1 N_1(h .) + D_2 N_2(h .) + D_3 N_3+(h .),      P_0(w) = 1 / |V|

  where ``h'`` drops the oldest character of ``h``; a context never seen in training
  (``c(h .) = 0``) passes the lower order's distribution through unchanged. Every
  ``P_k(. | h)`` sums to 1 over the vocabulary (the discounts are clipped to ``D_r <= r``).
  ``discount=<float>`` instead applies one fixed absolute discount at every order above
  the unigram and leaves the unigram undiscounted, without the uniform floor: that is
  the formulation of NLTK's ``nltk.lm.KneserNeyInterpolated`` (default discount 0.1), and
  ``tests/test_peers_ngram.py`` checks that both give the same probabilities.
- :class:`AddOneLM`: add-one (Laplace) smoothed n-grams, ``(c(h w) + 1) / (c(h .) + |V|)``;
  orders 1 and 2 are the floor rows of the benchmark.

The vocabulary is the training text's characters plus one unknown symbol (the same size
as the task's ``CharVocab``, whose id 0 is the unknown character). A character not seen
in training is read as the unknown symbol: as a target it gets only the uniform floor's
share ``gamma(.) / |V|`` (never 0 with the default discounts); in a context it matches no
training n-gram, so the orders whose context holds it back off to the shorter history.

Characters are the digits of base-``|V|`` integers, so every n-gram is one int64 key:
counting is ``np.unique`` per order and scoring ``np.searchsorted`` per order, vectorized
over every position. Written here rather than taken from NLTK because NLTK's
``KneserNeyInterpolated`` recomputes every continuation count by scanning all the
n-grams of the next order on each call. Fitted on the 1,003,855 training characters of
Tiny Shakespeare (measured with :func:`measure_nltk` on the benchmark machine, 2 shared
CPU cores, 2026-12-01, the first 5 validation characters), order 7 took 130 s to fit and
0.129 s per scored character, about 4 hours for the 111,538 validation characters
(order 3: 57 s and 0.55 ms per character); this module fits and scores order 7 in about
1.3 s, and gives the same log-probabilities as NLTK with ``discount=0.1`` on those
characters (to within 1e-15 bits).
"""

from __future__ import annotations

import math
import time

import numpy as np

UNK = "\ufffd"  # how the unknown symbol is shown in ``vocab``; it never matches a character of the text


class _CharNgrams:
    """Shared pieces: the vocabulary, n-gram keys, counting and lookups."""

    def __init__(self, order: int):
        if int(order) < 1:
            raise ValueError(f"order must be >= 1, got {order}")
        self.order = int(order)
        self.vocab: list[str] = []
        self.fit_seconds = None

    # -- encoding --------------------------------------------------------------------------
    @property
    def size(self) -> int:
        """|V|: the training characters and the unknown symbol."""
        return len(self.vocab)

    def encode(self, text: str) -> np.ndarray:
        unk = self.size - 1
        return np.fromiter((self._index.get(c, unk) for c in text), dtype=np.int64, count=len(text))

    def _set_vocab(self, text: str) -> None:
        chars = sorted(set(text))
        self.vocab = chars + [UNK]
        self._index = {c: i for i, c in enumerate(chars)}
        if self.size ** self.order >= 2 ** 63:
            raise ValueError(f"{self.size} characters at order {self.order} do not fit an int64 n-gram key")

    def _keys(self, cols: np.ndarray) -> np.ndarray:
        """The key of each row of ``cols`` (oldest character most significant)."""
        key = np.zeros(len(cols), dtype=np.int64)
        for j in range(cols.shape[1]):
            key = key * self.size + np.maximum(cols[:, j], 0)
        return key

    def _raw_counts(self, ids: np.ndarray) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """``{k: (sorted unique k-gram keys, their counts)}`` for k = 1..order."""
        out, key = {}, np.zeros(len(ids), dtype=np.int64)
        for k in range(1, self.order + 1):
            key = key[:len(ids) - k + 1] * self.size + ids[k - 1:]  # the k-gram starting at each position
            out[k] = np.unique(key, return_counts=True)
        return out

    # -- scoring -----------------------------------------------------------------------------
    def _windows(self, ids: np.ndarray) -> np.ndarray:
        """Row t: the ``order - 1`` ids before ``ids[t]`` (-1 before the text starts), then ``ids[t]``."""
        padded = np.concatenate([np.full(self.order - 1, -1, dtype=np.int64), ids])
        return np.lib.stride_tricks.sliding_window_view(padded, self.order)

    def log_probs(self, text: str, start: int = 1) -> np.ndarray:
        """Natural-log probability of ``text[t]`` given ``text[:t]``, for t = start..len-1 (the
        history is the text itself, at most ``order - 1`` characters)."""
        if not self.vocab:
            raise RuntimeError("fit the model first")
        return np.log(self._probs(self._windows(self.encode(text))[start:]))

    def nats_per_char(self, text: str, start: int = 1) -> float:
        return float(-np.mean(self.log_probs(text, start), dtype=np.float64))

    def distribution(self, context: str) -> np.ndarray:
        """``P(w | context)`` for every w in ``vocab`` (the unknown symbol last)."""
        ids = self.encode(context[-(self.order - 1):] if self.order > 1 else "")
        ctx = np.concatenate([np.full(self.order - 1 - len(ids), -1, dtype=np.int64), ids])
        windows = np.concatenate([np.tile(ctx, (self.size, 1)), np.arange(self.size)[:, None]], axis=1)
        return self._probs(windows)

    def prob(self, char: str, context: str = "") -> float:
        unk = self.size - 1
        return float(self.distribution(context)[self._index.get(char, unk)])


def _lookup(keys: np.ndarray, values: np.ndarray, query: np.ndarray, missing=0):
    if len(keys) == 0:
        return np.full(len(query), missing, dtype=values.dtype)
    at = np.minimum(np.searchsorted(keys, query), len(keys) - 1)
    return np.where(keys[at] == query, values[at], missing)


class KneserNeyLM(_CharNgrams):
    """Interpolated (by default modified) Kneser-Ney character n-grams; see the module docstring."""

    def __init__(self, order: int = 5, discount: float | None = None):
        super().__init__(order)
        if discount is not None and not 0 <= discount <= 1:
            raise ValueError(f"discount must be in [0, 1], got {discount}")
        self.discount = discount
        self.levels: dict[int, dict] = {}

    def fit(self, text: str) -> "KneserNeyLM":
        t0 = time.perf_counter()
        self._set_vocab(text)
        ids = self.encode(text)
        raw = self._raw_counts(ids)
        self.levels = {}
        for k in range(1, self.order + 1):
            if k == self.order:
                keys, counts = raw[k]
            else:  # continuation counts: how many distinct characters precede each k-gram
                keys, counts = np.unique(raw[k + 1][0] % self.size ** k, return_counts=True)
            self.levels[k] = self._level(k, keys, counts)
        self.fit_seconds = time.perf_counter() - t0
        return self

    def _level(self, k, keys, counts) -> dict:
        if self.discount is None:
            d = _modified_discounts(counts)
        else:
            d = np.array([0.0] + [0.0 if k == 1 else self.discount] * 3)
        ctx = keys // self.size  # keys are sorted, so each context's k-grams are contiguous
        ctx_keys, starts = np.unique(ctx, return_index=True)
        if len(keys) == 0:
            tot = gamma = np.zeros(0)
        else:
            tot = np.add.reduceat(counts, starts).astype(np.float64)
            gamma = sum(d[r] * np.add.reduceat(sel.astype(np.float64), starts)
                        for r, sel in ((1, counts == 1), (2, counts == 2), (3, counts >= 3)))
        return {"keys": keys, "counts": counts, "discounts": d, "ctx_keys": ctx_keys, "ctx_total": tot,
                "ctx_gamma": gamma}

    def _probs(self, windows: np.ndarray) -> np.ndarray:
        n = self.order
        p = np.full(len(windows), 1.0 / self.size)
        for k in range(1, n + 1):
            lv = self.levels[k]
            cols = windows[:, n - k:]
            has_history = (cols >= 0).all(axis=1)
            key = self._keys(cols)
            c = _lookup(lv["keys"], lv["counts"], key).astype(np.float64)
            tot = _lookup(lv["ctx_keys"], lv["ctx_total"], key // self.size, 0.0)
            gamma = _lookup(lv["ctx_keys"], lv["ctx_gamma"], key // self.size, 0.0)
            d = lv["discounts"][np.minimum(c, 3).astype(np.int64)]
            seen = has_history & (tot > 0)
            p = np.where(seen, (np.maximum(c - d, 0.0) + gamma * p) / np.where(seen, tot, 1.0), p)
        return p


def _modified_discounts(counts: np.ndarray) -> np.ndarray:
    """``[0, D1, D2, D3+]`` from the count-of-counts (Chen & Goodman), each clipped into (0, r]."""
    n = [int(np.sum(counts == r)) for r in range(5)]
    y = n[1] / (n[1] + 2 * n[2]) if n[1] + 2 * n[2] else 0.5
    d = [0.0]
    for r in (1, 2, 3):
        est = r - (r + 1) * y * n[r + 1] / n[r] if n[r] else y
        d.append(min(max(est, 1e-3), float(r)))
    return np.array(d)


class AddOneLM(_CharNgrams):
    """Add-one (Laplace) character n-grams: ``(c(h w) + 1) / (c(h .) + |V|)``; the first
    ``order - 1`` characters of a text use the shorter history."""

    def fit(self, text: str) -> "AddOneLM":
        t0 = time.perf_counter()
        self._set_vocab(text)
        self.raw = self._raw_counts(self.encode(text))
        self.ctx = {}
        for k, (keys, counts) in self.raw.items():
            ctx_keys, starts = np.unique(keys // self.size, return_index=True)
            self.ctx[k] = (ctx_keys, np.add.reduceat(counts, starts) if len(keys) else np.zeros(0, np.int64))
        self.fit_seconds = time.perf_counter() - t0
        return self

    def _probs(self, windows: np.ndarray) -> np.ndarray:
        n = self.order
        history = (windows >= 0).sum(axis=1) - 1
        p = np.zeros(len(windows))
        for k in range(1, n + 1):
            rows = np.minimum(history + 1, n) == k
            key = self._keys(windows[rows, n - k:])
            c = _lookup(*self.raw[k], key)
            tot = _lookup(*self.ctx[k], key // self.size)
            p[rows] = (c + 1.0) / (tot + self.size)
        return p


# -- the benchmark rows ----------------------------------------------------------------------
def score_row(name: str, model, train: str, val: str) -> dict:
    """Fit ``model`` on ``train`` and score every validation character after the first."""
    model.fit(train)
    t0 = time.perf_counter()
    nats = model.nats_per_char(val, start=1)
    score_seconds = time.perf_counter() - t0
    return {"model": name, "order": model.order, "nats_per_char": nats, "bits_per_char": nats / math.log(2),
            "val_chars": len(val) - 1, "fit_seconds": model.fit_seconds, "score_seconds": score_seconds}


def peer_rows(train: str, val: str, orders=range(3, 8)) -> dict:
    """Add-one unigram and bigram, modified Kneser-Ney at each of ``orders``; the best KN order
    is the one with the lowest validation loss."""
    rows = [score_row("unigram, add-one", AddOneLM(1), train, val),
            score_row("bigram, add-one", AddOneLM(2), train, val)]
    rows += [score_row(f"Kneser-Ney (modified, interpolated), order {k}", KneserNeyLM(k), train, val)
             for k in orders]
    kn = [r for r in rows if r["model"].startswith("Kneser-Ney")]
    best = min(kn, key=lambda r: r["nats_per_char"]) if kn else None
    unseen = sorted(set(val) - set(train))
    return {"rows": rows, "best": best, "vocabulary_size": len(set(train)) + 1,
            "unseen_val_chars": {"distinct": unseen, "count": sum(val.count(c) for c in unseen)}}


def measure_nltk(train: str, val: str, order: int, chars: int = 10) -> dict:
    """Seconds NLTK's ``KneserNeyInterpolated`` takes to fit on ``train`` and to score the
    first ``chars`` predicted characters of ``val`` (the same positions this module scores)."""
    from nltk.lm import KneserNeyInterpolated
    from nltk.util import everygrams

    t0 = time.perf_counter()
    lm = KneserNeyInterpolated(order)
    lm.fit([everygrams(list(train), max_len=order)], vocabulary_text=list(train))
    fit = time.perf_counter() - t0
    t0 = time.perf_counter()
    logs = [lm.logscore(val[t], list(val[max(0, t - order + 1):t])) for t in range(1, chars + 1)]
    score = time.perf_counter() - t0
    return {"order": order, "fit_seconds": fit, "chars_scored": chars, "seconds_per_char": score / chars,
            "projected_val_seconds": score / chars * (len(val) - 1), "log2_probs": logs}

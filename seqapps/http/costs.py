"""What a request will cost, checked against the served export's bounds before it runs or is merged.

The bounds are :mod:`seqapps.core.bounds`' (an export carries the ones its graph checks in
``metadata.json``, ``bounds``; an export without them gets the defaults), lowered where
``serve --bound NAME=VALUE`` says. A request over them is answered 400 ``invalid input: ...``
without touching the graph, and :mod:`.batching` merges requests only while the merged call
stays within them, so a merged call is never refused (or run) for its company's size.
"""

from __future__ import annotations

from dataclasses import dataclass

from seqapps.core import bounds as defaults


@dataclass(frozen=True)
class Cost:
    rows: int = 0
    text_bytes: int = 0      # every text item together
    longest_text: int = 0    # the longest text item (or row of tokens)
    image_bytes: int = 0     # every encoded image together
    frames: int = 0          # encoded images (rows x time for video frames)
    has_text: bool = False
    has_images: bool = False
    most_tokens: int = 0     # at most this many tokens in the longest row (its characters, or a token row's width)

    def __add__(self, other: "Cost") -> "Cost":
        return Cost(self.rows + other.rows, self.text_bytes + other.text_bytes,
                    max(self.longest_text, other.longest_text), self.image_bytes + other.image_bytes,
                    self.frames + other.frames, self.has_text or other.has_text, self.has_images or other.has_images,
                    max(self.most_tokens, other.most_tokens))


def cost_of(arrays: dict) -> Cost:
    """A request's cost from its (already checked) numpy inputs."""
    import numpy as np

    cost = Cost()
    for name, a in arrays.items():
        if a.ndim == 0:
            continue
        rows = a.shape[0]
        if a.dtype == object and name not in defaults.IMAGE_INPUTS:
            sizes = np.fromiter((len(v) for v in a.ravel()), np.int64, a.size).reshape(a.shape)
            per_row = sizes.reshape(rows, -1).sum(axis=1) if rows else sizes.reshape(0)
            tokens = int(a.shape[1]) if a.ndim == 2 else int(sizes.max(initial=0))  # a token is >= 1 byte
            cost += Cost(rows, int(per_row.sum()), int(per_row.max(initial=0)), has_text=True, most_tokens=tokens)
        elif a.dtype == object:
            cost += Cost(rows, image_bytes=int(sum(len(v) for v in a.ravel())), frames=a.size, has_images=True)
        else:
            cost += Cost(rows)
    return Cost(max((a.shape[0] for a in arrays.values() if a.ndim), default=0), cost.text_bytes,
                cost.longest_text, cost.image_bytes, cost.frames, cost.has_text, cost.has_images, cost.most_tokens)


def over(cost: Cost, bounds: dict, merged: bool = False) -> str | None:
    """Why ``cost`` is over ``bounds`` (one line, without the ``invalid input: `` prefix), or None. A
    request's tokens are counted in its graph (``tag_tokens``); a ``merged`` call of several requests is
    kept within that bound by the most tokens its rows can hold, so merging never makes a refused call."""
    if merged and "tag_tokens" in bounds and cost.rows * cost.most_tokens > bounds["tag_tokens"]:
        return f"rows x the most tokens of a row could be over {bounds['tag_tokens']}"
    rows_bound = bounds["image_rows"] if cost.has_images else bounds["rows"]
    if cost.rows > rows_bound:
        return f"the request has {cost.rows} rows; a call takes at most {rows_bound}"
    if cost.has_text:
        if cost.longest_text > bounds["text_bytes"]:
            return f"a text item is {cost.longest_text} bytes (UTF-8); the bound is {bounds['text_bytes']}"
        if cost.text_bytes > bounds["call_text_bytes"]:
            return (f"the text items together are {cost.text_bytes} bytes; the bound is {bounds['call_text_bytes']}: "
                    "send them in several requests")
        if cost.rows * cost.longest_text > bounds["padded_text_bytes"]:
            return (f"rows x the longest text item is {cost.rows} x {cost.longest_text} bytes; the bound is "
                    f"{bounds['padded_text_bytes']}: send long texts in requests of their own")
    if cost.has_images and cost.image_bytes > bounds["image_call_bytes"]:
        return f"the images together are {cost.image_bytes} bytes; the bound is {bounds['image_call_bytes']}"
    return None


def parse_bound(text: str) -> tuple[str, int]:
    """``NAME=VALUE`` of ``serve --bound`` -> (name, value); the names are :func:`seqapps.core.bounds.table`'s."""
    import argparse

    name, sep, value = text.partition("=")
    name = name.strip().lower().replace("-", "_")
    known = {k: v for k, v in defaults.table().items() if k not in defaults.SLICED}
    if not sep or name not in known:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE with NAME one of {', '.join(sorted(known))}; "
                                         f"got {text!r}")
    try:
        number = int(value.replace("_", ""))
    except ValueError:
        number = -1
    if number < 1:
        raise argparse.ArgumentTypeError(f"{name} must be a whole number >= 1, got {value!r}")
    return name, number

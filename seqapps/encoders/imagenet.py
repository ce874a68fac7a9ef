"""ImageNet-1k class names, offline: ``imagenet_classes.txt`` beside this file says where they come from."""

from __future__ import annotations

import functools
from pathlib import Path

FILE = Path(__file__).with_name("imagenet_classes.txt")


@functools.cache
def classes() -> list[tuple[str, str]]:
    """1000 (WordNet id, readable name) pairs in classifier output order."""
    rows = [line.split("\t") for line in FILE.read_text(encoding="utf-8").splitlines()
            if line and not line.startswith("#")]
    assert len(rows) == 1000, f"{FILE} should list 1000 classes, found {len(rows)}"
    return [(w, n) for w, n in rows]


def class_names() -> list[str]:
    return [n for _, n in classes()]

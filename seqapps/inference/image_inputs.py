"""Image inputs on the Python side of a predictor: paths or bytes in, one readable reason per bad item.

``read_items`` reads each item (a path, or bytes as they are) without failing the
others; ``why_undecodable`` says in words why bytes did not decode in the graph;
``size_warning`` flags images too small for a result to mean much; ``run_images`` batches
them through a signature and ``image_paths`` reads the paths a command line names. Nothing here
imports TensorFlow.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np

from seqapps.core.bounds import IMAGE_PIXELS
from seqapps.core.errors import DataError

FORMATS = {b"\xff\xd8\xff": "JPEG", b"\x89PNG": "PNG", b"GIF8": "GIF", b"BM": "BMP"}


def sniff(data: bytes) -> str | None:
    """The format name of encoded image bytes, from their first bytes; None if unknown."""
    for magic, name in FORMATS.items():
        if data[:len(magic)] == magic:
            return name
    return None


def read_items(items, result_key: str = "result") -> tuple[list, list[dict]]:
    """``(blobs, info)``: the bytes of each item (None where it could not be read) and per item
    ``{"source", result_key: None, "error", "warning"}``, with ``error`` set for unreadable files."""
    if isinstance(items, (str, bytes, bytearray, memoryview, Path)):
        items = [items]
    if items is None or not hasattr(items, "__iter__"):
        raise DataError(f"images must be a path, bytes, or a list of them; got {type(items).__name__}")
    blobs, info = [], []
    for item in items:
        if not isinstance(item, (str, bytes, bytearray, memoryview, Path)):
            raise DataError(f"each image must be a path (str or Path) or bytes, got {type(item).__name__}")
        if isinstance(item, (bytes, bytearray, memoryview)):
            blobs.append(bytes(item))
            info.append({"source": f"<{len(bytes(item))} bytes>", result_key: None, "error": None, "warning": None})
            continue
        entry = {"source": str(item), result_key: None, "error": None, "warning": None}
        try:
            blobs.append(Path(item).expanduser().read_bytes())
        except IsADirectoryError:
            entry["error"] = "is a folder, not an image file"
            blobs.append(None)
        except OSError as e:
            entry["error"] = f"cannot read the file ({e.strerror})"
            blobs.append(None)
        info.append(entry)
    return blobs, info


def why_undecodable(blob: bytes) -> str:
    """Why bytes did not decode, in words."""
    if not blob:
        return "empty input (0 bytes); expected JPEG, PNG, GIF or BMP image bytes"
    kind = sniff(blob)
    if kind is None:
        start = blob[:12]
        what = "text" if all(32 <= c < 127 or c in (9, 10, 13) for c in start) else "unknown data"
        return f"not a JPEG, PNG, GIF or BMP image (it starts with {what} {start!r})"
    return (f"corrupt or truncated {kind} data, or larger than {IMAGE_PIXELS / 1e6:.1f} megapixels decoded "
            "(the bound image_pixels)")


def size_warning(blob: bytes, smallest: int = 16, what: str = "the caption") -> str | None:
    """A warning when either side of the image is under ``smallest`` pixels (None otherwise, or if PIL cannot tell)."""
    try:
        from PIL import Image

        w, h = Image.open(io.BytesIO(blob)).size
    except Exception:  # PIL cannot tell: no warning
        return None
    if min(w, h) < smallest:
        return f"the image is only {w}x{h} pixels; {what} is unlikely to mean much"
    return None


def run_images(call, items, fill, batch_size: int = 16, result_key: str = "result") -> list[dict]:
    """Read ``items`` (paths or bytes; see :func:`read_items`), send the readable ones in batches of
    ``batch_size`` to ``call(image_bytes_array) -> outputs`` (with a ``valid`` row flag), and
    ``fill(info, outputs, row, blob)`` each decoded item's entry; undecodable ones get an ``error``."""
    blobs, info = read_items(items, result_key)
    todo = [i for i, b in enumerate(blobs) if b is not None]
    for start in range(0, len(todo), batch_size):
        chunk = todo[start:start + batch_size]
        out = call(np.asarray([blobs[i] for i in chunk], dtype=object))
        for row, i in enumerate(chunk):
            if out["valid"][row]:
                fill(info[i], out, row, blobs[i])
            else:
                info[i]["error"] = why_undecodable(blobs[i])
    return info


def image_paths(inputs: list[str], input_file: str | None, what: str = "caption") -> list[str]:
    """The images a CLI ``predict`` names: its arguments, then ``--input FILE`` or (piped) stdin
    listing one path a line; blank lines are skipped."""
    from seqapps.inference.predictor import input_chunks

    if input_file or (not inputs and not sys.stdin.isatty()):
        listed = [line.strip() for chunk in input_chunks([], input_file) for line in chunk if line.strip()]
        inputs = list(inputs) + listed
    if not inputs:
        raise DataError(f"give image files to {what} (or --input FILE, or stdin, listing one path a line)")
    return inputs

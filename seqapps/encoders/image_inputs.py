"""Image inputs on the Python side of a predictor: paths or bytes in, one readable reason per bad item.

``read_items`` reads each item (a path, or bytes as they are) without failing the
others; ``why_undecodable`` says in words why bytes did not decode in the graph;
``size_warning`` flags images too small for a result to mean much.
"""

from __future__ import annotations

import io
from pathlib import Path

from seqapps.encoders.images import MAX_PIXELS, sniff


def read_items(items, result_key: str = "result") -> tuple[list, list[dict]]:
    """``(blobs, info)``: the bytes of each item (None where it could not be read) and per item
    ``{"source", result_key: None, "error", "warning"}``, with ``error`` set for unreadable files."""
    blobs, info = [], []
    for item in items:
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
    return f"corrupt or truncated {kind} data, or larger than {MAX_PIXELS // 1_000_000} megapixels"


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

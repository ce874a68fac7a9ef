"""Per-frame labels and segments: converting one into the other, and scoring segments.

A segment is ``(start, end, label)`` in frame indices with ``end`` exclusive (frames
``start .. end - 1``), the way Python ranges count. :func:`to_segments` and
:func:`to_frames` convert between segments and one label per frame, and round-trip;
:func:`segment_scores` scores predicted segments against true ones (F1 at 50%: a
predicted segment is a hit when its intersection over union with a true segment of
the same label, not matched before, is at least 0.5).
"""

from __future__ import annotations

from seqapps.core.errors import DataError


def to_segments(labels) -> list[tuple[int, int, str]]:
    """Runs of equal labels: ``["a", "a", "b"]`` -> ``[(0, 2, "a"), (2, 3, "b")]``."""
    out = []
    for t, label in enumerate(labels):
        if out and out[-1][2] == label:
            out[-1] = (out[-1][0], t + 1, label)
        else:
            out.append((t, t + 1, label))
    return out


def to_frames(segments, frames: int, what: str = "video") -> list[str]:
    """One label per frame of a ``frames``-frame video from ``segments``. Overlapping
    segments, segments past the last frame and frames no segment covers are DataErrors
    naming ``what`` and the frames."""
    labels: list[str | None] = [None] * frames
    for start, end, label in sorted(segments):
        if not 0 <= start < end:
            raise DataError(f"{what}: segment {start}-{end} ({label}) is empty or negative; expected 0 <= start < end")
        if end > frames:
            raise DataError(f"{what}: segment {start}-{end} ({label}) refers to frames that do not exist "
                            f"(the video has {frames} frames, 0-{frames - 1})")
        clash = next((t for t in range(start, end) if labels[t] is not None), None)
        if clash is not None:
            raise DataError(f"{what}: segment {start}-{end} ({label}) overlaps another segment at frame {clash}")
        labels[start:end] = [label] * (end - start)
    missing = [t for t, x in enumerate(labels) if x is None]
    if missing:
        raise DataError(f"{what}: {len(missing)} frames have no label (the first is frame {missing[0]} of {frames})")
    return labels


def iou(a, b) -> float:
    inter = max(0, min(a[1], b[1]) - max(a[0], b[0]))
    return inter / (max(a[1], b[1]) - min(a[0], b[0])) if inter else 0.0


def segment_counts(true_segments, pred_segments, threshold: float = 0.5) -> tuple[int, int, int]:
    """``(hits, predicted, true)``: each predicted segment (in order) is matched to the unmatched true
    segment of its label it overlaps most, and is a hit when that intersection over union >= ``threshold``."""
    used, hits = set(), 0
    for p in pred_segments:
        best, best_iou = None, 0.0
        for j, t in enumerate(true_segments):
            if j not in used and t[2] == p[2] and iou(p, t) > best_iou:
                best, best_iou = j, iou(p, t)
        if best is not None and best_iou >= threshold:
            used.add(best)
            hits += 1
    return hits, len(pred_segments), len(true_segments)


def segment_scores(true_labels, pred_labels, threshold: float = 0.5) -> dict:
    """Segment precision, recall and F1 over videos (lists of per-frame labels), counts summed."""
    hits = predicted = true = 0
    for y, p in zip(true_labels, pred_labels):
        h, n_p, n_t = segment_counts(to_segments(y), to_segments(p), threshold)
        hits, predicted, true = hits + h, predicted + n_p, true + n_t
    precision = hits / predicted if predicted else 0.0
    recall = hits / true if true else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"segment_precision": precision, "segment_recall": recall, "segment_f1": f1,
            "true_segments": true, "predicted_segments": predicted}


def position_scores(true_labels, pred_labels, after: int = 10) -> dict:
    """Accuracy by frame index in the video (``accuracy_by_position``) and by frames since the true
    label last changed (``accuracy_after_change[k]``: frames ``k`` steps after a change, for ``k < after``;
    a video's first frame is no change)."""
    def rate(pairs):
        pairs = list(pairs)
        return sum(y == p for y, p in pairs) / len(pairs) if pairs else None
    longest = max([len(y) for y in true_labels] + [0])
    by_position = [rate((y[t], p[t]) for y, p in zip(true_labels, pred_labels) if len(y) > t) for t in range(longest)]
    since: dict[int, list] = {}
    for y, p in zip(true_labels, pred_labels):
        last = None
        for t in range(1, len(y)):
            last = t if y[t] != y[t - 1] else last
            if last is not None and t - last < after:
                since.setdefault(t - last, []).append((y[t], p[t]))
    return {"accuracy_by_position": by_position, "accuracy_after_change": [rate(since.get(k, [])) for k in range(after)]}

"""video_frames' helpers that need no TensorFlow: the predictor's Python methods (:class:`Predictions`,
shared by the SavedModel's :class:`tasks.video_frames.task.VideoPredictor` and an ONNX or LiteRT export's
predictor), Pillow's decoding of frames and GIFs (:func:`decode_frames`, :func:`decode_gif`: what an export
runs where the SavedModel runs :mod:`tasks.video_frames.serving`'s graph) and the signatures of an ONNX or
LiteRT export (:func:`signatures`).

Frames are decoded as captioning's images (:func:`tasks.captioning.predicting.decode_image`: the same bounds
and antialiased resize, close to the graph's pixels, not equal); a GIF's first ``max_length`` frames are counted
in its blocks as :func:`seqapps.encoders.images.gif_frames` counts them, held to the same bounds, then decoded
with Pillow (each frame composed onto the screen, RGB), subsampled and resized as the graph does.
"""

from __future__ import annotations

import io
import warnings

import numpy as np

from seqapps.core import bounds
from seqapps.core.errors import DataError
from seqapps.inference.array_spec import ArraySpec
from seqapps.inference.image_inputs import image_paths
from seqapps.inference.predictor import decode_strings, pad_strings
from tasks.video_frames import data as videolib
from tasks.video_frames.segments import to_segments


class Predictions:
    """``analyze(items)``: per video ``{"source", "frames": [(index, label, probability)],
    "segments": [(start_s, end_s, label)], "error", "warning"}``; items are paths (video files or
    frame folders), uint8 arrays ``[T, H, W(, C)]`` or lists of encoded frames."""

    def analyze(self, items, batch_size: int = 8) -> list[dict]:
        data = self.metadata["config"]["data"]
        fps, results, todo = float(data["fps"]), [], []
        for item in videolib.video_items(items)[0]:
            source = str(item) if isinstance(item, (str, bytes)) or hasattr(item, "__fspath__") else \
                f"<video of {len(item)} frames>"
            results.append({"source": source, "frames": None, "segments": None, "error": None, "warning": None})
            try:
                todo.append((len(results) - 1, videolib.clip_of(item, fps, int(data["max_length"]))))
            except DataError as e:  # the line names the source; the result says it once
                results[-1]["error"] = str(e).removeprefix(f"{source}: ")
        todo.sort(key=lambda x: len(x[1][0]))
        for chunk in self._calls(todo, batch_size, int(data["max_length"])):
            out = self.call("serving_default", frames=pad_strings([blobs for _, (blobs, *_) in chunk]))
            for row, (i, (blobs, indices, times, warning)) in enumerate(chunk):
                n = int(out["lengths"][row])
                labels, probs = decode_strings(out["labels"][row, :n]), out["probabilities"][row, :n].max(-1)
                bad = [indices[t] for t in range(n) if not out["valid"][row, t]]
                step = times[1] - times[0] if n > 1 else (1.0 / fps if fps else 1.0)
                ends = times[1:n] + [times[n - 1] + step]
                results[i].update(frames=[(indices[t], labels[t], float(probs[t])) for t in range(n)],
                                  segments=[(times[s], ends[e - 1], x) for s, e, x in to_segments(labels)],
                                  warning="; ".join(([warning] if warning else []) + (
                                      [f"{len(bad)} frames did not decode (read as black), first {bad[0]}"]
                                      if bad else [])) or None)
        return results

    def _calls(self, todo, batch_size: int, max_length: int):
        """``todo`` (shortest video first) in calls of at most ``batch_size`` videos whose rows x the longest
        stay within the export's frames bound (``metadata.json``, ``bounds``; at least one whole video)."""
        most = max(bounds.of(self.metadata)["frames"], max_length)
        chunk = []
        for entry in todo:
            longest = max(1, len(entry[1][0]))  # sorted: the newest is the longest of the chunk
            if chunk and (len(chunk) == batch_size or (len(chunk) + 1) * longest > most):
                yield chunk
                chunk = []
            chunk.append(entry)
        if chunk:
            yield chunk

    def predict(self, inputs):
        items, single = videolib.video_items(inputs)
        results = self.analyze(items)
        return results[0] if single else results

    def cli_predict(self, inputs, input_file):
        inputs = image_paths(inputs, input_file, "label")
        return self.format(inputs, self.analyze(inputs))

    def format(self, inputs, results):
        lines = []
        for r in results:
            if r["error"]:
                lines.append(f"{r['source']}\terror: {r['error']}")
                continue
            lines.append(r["source"] + (f"\t(warning: {r['warning']})" if r["warning"] else ""))
            lines += [f"  {s:.1f}-{e:.1f} s  {label}" for s, e, label in r["segments"]]
        return lines


# -- decoding with Pillow (an ONNX or LiteRT export's; the SavedModel decodes in its graph) -------------------
def _blobs(array) -> list[bytes]:
    return [bytes(b) if isinstance(b, (bytes, bytearray)) else str(b).encode("utf-8")
            for b in np.asarray(array, dtype=object).reshape(-1).tolist()]


def check_images(blobs: list[bytes], rows: int, name: str) -> None:
    """The SavedModel's checks of a call's encoded images (:func:`seqapps.inference.checks.bounded_images`),
    in its words."""
    if rows > bounds.IMAGE_ROWS:
        raise DataError(f"{name} has more than {bounds.IMAGE_ROWS} rows; "
                        f"send at most {bounds.IMAGE_ROWS} in one call")
    if sum(map(len, blobs)) > bounds.IMAGE_CALL_BYTES:
        raise DataError(f"the {name} items together are over {bounds.IMAGE_CALL_BYTES} bytes; "
                        "send them in several calls")


def decode_frames(frames, size: int, max_length: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``frames`` (encoded images ``[batch, time]``, ``""`` padding) -> ``(pixels [batch, time, size, size, 3],
    lengths int32 [batch], valid bool [batch, time])``, as :func:`tasks.video_frames.serving.decode_frames` with
    the same checks and lines; frames that do not decode are black and not valid."""
    from tasks.captioning.predicting import decode_image

    frames = np.asarray(frames, dtype=object)
    check_images(_blobs(frames), frames.shape[0], "frames")
    frames = frames[:, :max_length]
    rows, width = frames.shape
    most = max(bounds.FRAMES, max_length)  # at least one whole video
    if rows * width > most:
        raise DataError(f"frames has more than {most} frames (rows x time, after the cut at max_length "
                        f"{max_length}); send at most {most} in one call")
    blobs = [_blobs(row) for row in frames]
    lengths = np.array([max([t + 1 for t, b in enumerate(row) if b] + [0]) for row in blobs], np.int32)
    pixels = np.zeros((rows, width, size, size, 3), np.float32)
    valid = np.zeros((rows, width), bool)
    for i, row in enumerate(blobs):
        for t in range(lengths[i]):
            decoded = decode_image(row[t], size)
            if decoded is not None:
                pixels[i, t], valid[i, t] = decoded, True
    return pixels, lengths, valid


def gif_frames(blob: bytes, limit: int) -> tuple[int, int] | None:
    """``(frames, end)`` as :func:`seqapps.encoders.images.gif_frames`: the frames GIF ``blob`` holds, counted up
    to ``limit`` from its blocks without decoding, and the offset where the last counted ends; None past
    ``bounds.GIF_BLOCKS`` steps (the graph drops the item)."""
    n = len(blob)

    def at(p):
        return blob[min(max(p, 0), n)] if p < n else 0

    def table(flags):
        return 3 * (2 << (flags % 8)) if flags >= 128 else 0

    start = 13 + table(at(10))
    pos, mode, frames, end, steps = start, 0, 0, start, 0
    done = limit <= 0 or start > n
    while not done:
        steps += 1
        byte = at(pos)
        ext, image = mode == 0 and byte == 0x21, mode == 0 and byte == 0x2C
        last_block = mode > 0 and byte == 0
        frames_now = frames + int(last_block and mode == 2)
        run = 0
        while run < 256 and at(pos + 256 * run) == 255:
            run += 1
        new_pos = pos + 2 if ext else pos + 11 + table(at(pos + 9)) if image else pos + 256 * run if run else pos + 1 + byte
        new_mode = 1 if ext else 2 if image else 0 if last_block else mode
        done = (mode == 0 and not (ext or image)) or frames_now >= limit or new_pos > n
        end = new_pos if frames_now > frames else end
        pos, mode, frames = new_pos, new_mode, frames_now
    if steps > bounds.GIF_BLOCKS:
        return None
    return frames, end


def _resize(pixels: np.ndarray, size: int) -> np.ndarray:
    """``uint8 [H, W, 3]`` -> float32 ``[size, size, 3]``: the subsampling of large sides and the antialiased
    bilinear resize (Pillow's, in float), as :func:`tasks.captioning.predicting.decode_image`."""
    from PIL import Image

    h, w = pixels.shape[:2]
    pixels = pixels[::-(-h // bounds.SHRINK_SIDE), ::-(-w // bounds.SHRINK_SIDE)]
    return np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(pixels[:, :, c], np.float32), "F")
                                .resize((size, size), Image.BILINEAR)) for c in range(3)], -1).astype(np.float32)


def decode_gif(blob: bytes, size: int, max_length: int) -> np.ndarray | None:
    """An animated GIF -> float32 ``[frames, size, size, 3]`` of its first ``max_length`` frames, or None where the
    graph gives length 0: not a GIF, too many blocks, a frame (the screen) over ``bounds.IMAGE_PIXELS``, the frames
    read over ``bounds.VIDEO_PIXELS`` together, or bytes Pillow cannot decode."""
    from PIL import Image, ImageSequence

    if not blob.startswith(b"GIF"):
        return None
    counted = gif_frames(blob, max_length)
    if counted is None or not counted[0]:
        return None
    frames, end = counted
    pixels = int.from_bytes(blob[6:8].ljust(2, b"\0"), "little") * int.from_bytes(blob[8:10].ljust(2, b"\0"), "little")
    if pixels > bounds.IMAGE_PIXELS or frames * pixels > bounds.VIDEO_PIXELS:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image = Image.open(io.BytesIO(blob[:end] + b"\x3b"), formats=["GIF"])
            decoded = [np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(image)][:frames]
    except Exception:  # noqa: BLE001 (a GIF that does not decode gives length 0, as in the graph)
        return None
    if not decoded or not all(f.shape[0] and f.shape[1] for f in decoded):
        return None
    return np.stack([_resize(f, size) for f in decoded])


def decode_gifs(video, size: int, max_length: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """GIFs ``[batch]`` -> ``(pixels [batch, time, size, size, 3], lengths, valid)`` as
    :func:`tasks.video_frames.serving.decode_gifs` (with the call's image checks first)."""
    blobs = _blobs(video)
    check_images(blobs, len(blobs), "video")
    clips = [decode_gif(b, size, max_length) for b in blobs]
    lengths = np.array([0 if c is None else len(c) for c in clips], np.int32)
    width = int(lengths.max(initial=0))
    pixels = np.zeros((len(blobs), width, size, size, 3), np.float32)
    for i, clip in enumerate(clips):
        if clip is not None:
            pixels[i, :len(clip)] = clip
    return pixels, lengths, np.arange(width)[None] < lengths[:, None]


# -- an ONNX or LiteRT export's signatures ---------------------------------------------------------------
def signatures(path, metadata: dict, sess, viterbi) -> dict:
    """``serving_default`` (``frames``) and ``gif`` (``video``) over the export's graph (``pixels`` and ``mask``
    in, ``scores`` and ``probabilities`` out), answering the SavedModel's outputs: the labels (argmax, or
    ``viterbi(potentials, mask)`` over a CRF's: :func:`seqapps.inference.onnx_runtime.viterbi`, passed in by
    its caller), probabilities (0 past each length), lengths and valid."""
    cfg = metadata["config"]
    size, max_length, crf = int(cfg["model"]["image_size"]), int(cfg["data"]["max_length"]), bool(cfg["model"]["crf"])
    names = np.array([label.encode("utf-8") for label in metadata["labels"]], dtype=object)

    def tag(pixels, lengths, valid):
        b, t = pixels.shape[:2]
        pb, pt = max(b, 1), max(t, 1)  # at least one row and one frame, as the graph
        padded = np.zeros((pb, pt) + pixels.shape[2:], np.float32)
        padded[:b, :t] = pixels
        mask = np.arange(pt)[None] < np.pad(lengths, (0, pb - b))[:, None]
        scores, probs = sess.run(["scores", "probabilities"], {"pixels": padded, "mask": mask.astype(np.float32)})
        ids = viterbi(scores, mask) if crf else scores.argmax(-1)
        labels = np.where(mask, names[np.maximum(ids, 0)], b"")
        probs = (probs * mask[..., None]).astype(np.float32)
        return {"labels": labels[:b, :t], "probabilities": probs[:b, :t], "lengths": lengths.astype(np.int32),
                "valid": valid}

    def serve_frames(frames):
        return tag(*decode_frames(frames, size, max_length))

    def serve_gif(video):
        return tag(*decode_gifs(video, size, max_length))

    return {"serving_default": (serve_frames, {"frames": ArraySpec("frames", "string", (None, None))}),
            "gif": (serve_gif, {"video": ArraySpec("video", "string", (None,))})}

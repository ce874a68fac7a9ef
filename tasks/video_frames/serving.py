"""The serving functions of a per-frame video labeller: encoded frames or a GIF in, one label per frame out.

Decoding and resizing run in the graph and never fail the batch:

- ``serving_default``: ``frames: tf.string [batch, time]``, one encoded image (JPEG,
  PNG, GIF, BMP; any size, see :mod:`seqapps.encoders.images`) per frame, padded on
  the right with ``""``; a video's length runs to its last non-empty frame. A frame
  that does not decode is read as black and marked ``valid=false``.
- ``gif``: ``video: tf.string [batch]``, an animated GIF per item (GIF frame delays are
  not read). Its first ``max_length`` frames are found in its blocks and only they are
  decoded; bytes that are not a decodable GIF, or whose frames read are larger than
  ``bounds.IMAGE_PIXELS`` each or ``bounds.VIDEO_PIXELS`` together, give length 0.

Videos are cut at ``max_length`` frames. Both return ``labels`` (``tf.string [batch,
time]``, ``""`` past each length), ``probabilities`` (``float32 [batch, time,
labels]``, 0 past each length), ``lengths`` (``int32 [batch]``) and ``valid`` (``bool
[batch, time]``: the frame decoded).
"""

from __future__ import annotations

import tensorflow as tf

from seqapps.data.text import token_lengths
from seqapps.core import bounds
from seqapps.inference import checks
from seqapps.encoders.images import _u, decode_batch, first_frames, shrink
from seqapps.layers.tagging import decode_tags
from seqapps.core.task import Endpoint

OUTPUTS = ("labels (tf.string [batch, time], '' past each length), probabilities [batch, time, labels], "
           "lengths (int32 [batch]), valid (bool [batch, time]: the frame decoded)")


def frame_pixels(frames, size: int):
    """Decoded frames ``uint8 [T, H, W, C]`` (C = 1 or 3) -> ``float32 [T, size, size, 3]`` in [0, 255]:
    what :func:`decode_frames` does to each decoded frame (RGB, then an antialiased resize), so training
    on decoded videos gives the model the inputs the export gives it (tests/tasks/video_frames)."""
    frames = tf.convert_to_tensor(frames, tf.uint8)
    if frames.shape[-1] == 1:
        frames = tf.image.grayscale_to_rgb(frames)
    return tf.image.resize(tf.cast(frames, tf.float32), (size, size), antialias=True)


def decode_frames(frames, size: int, max_length: int):
    """``tf.string [batch, time]`` -> ``(pixels [batch, time, size, size, 3], lengths, valid [batch, time])``."""
    frames = tf.convert_to_tensor(frames, tf.string)[:, :max_length]
    shape = tf.shape(frames)
    most = max(bounds.FRAMES, max_length)  # at least one whole video
    frames = checks.require(frames, shape[0] * shape[1] <= most,
                            f"frames has more than {most} frames (rows x time, after the cut at max_length {max_length}); "
                            f"send at most {most} in one call")
    lengths = tf.cast(token_lengths(frames), tf.int32)
    pixels, ok = decode_batch(tf.reshape(frames, [-1]), size)
    mask = tf.sequence_mask(lengths, shape[1])
    return (tf.reshape(pixels, [shape[0], shape[1], size, size, 3]), lengths,
            tf.logical_and(tf.reshape(ok, shape[:2]), mask))


def _one_gif(b, size: int, max_length: int):
    magic = tf.equal(tf.strings.substr(b, 0, 3), b"GIF")
    check = tf.debugging.Assert(magic, ["not a GIF"])
    with tf.control_dependencies([check]):
        kept, frames = first_frames(b, max_length)  # the first max_length frames' bytes, read without decoding
    pixels = _u(b, 6, 2, True) * _u(b, 8, 2, True)  # a frame's (the screen's) size, from the header
    check = tf.debugging.Assert(tf.logical_and(pixels <= bounds.IMAGE_PIXELS, frames * pixels <= bounds.VIDEO_PIXELS),
                                ["GIF too large"])
    with tf.control_dependencies([check]):
        decoded = shrink(tf.io.decode_gif(kept))
    return tf.map_fn(lambda f: tf.image.resize(tf.cast(f, tf.float32), (size, size), antialias=True), decoded,
                     fn_output_signature=tf.TensorSpec([size, size, 3], tf.float32), parallel_iterations=1)


def decode_gifs(video, size: int, max_length: int):
    """``tf.string [batch]`` GIFs -> ``(pixels [batch, time, size, size, 3], lengths, valid [batch, time])``."""
    video = tf.convert_to_tensor(video, tf.string)
    n = tf.shape(video)[0]
    ds = tf.data.Dataset.from_tensor_slices((tf.range(n), video))
    ds = ds.map(lambda i, b: (i, _one_gif(b, size, max_length))).ignore_errors()
    # one blank entry keeps the batch non-empty when no item decodes
    ds = ds.concatenate(tf.data.Dataset.from_tensors((tf.constant(-1), tf.zeros([0, size, size, 3]))))
    idx, pixels, got = ds.map(lambda i, p: (i, p, tf.shape(p)[0])).padded_batch(
        tf.cast(n + 1, tf.int64)).get_single_element()
    keep = idx >= 0
    idx, pixels, got = tf.boolean_mask(idx, keep), tf.boolean_mask(pixels, keep), tf.boolean_mask(got, keep)
    width = tf.shape(pixels)[1]
    lengths = tf.scatter_nd(idx[:, None], got, [n])
    full = tf.scatter_nd(idx[:, None], pixels, tf.stack([n, width, size, size, 3]))
    return full, lengths, tf.sequence_mask(lengths, width)


def video_endpoints(model, labels: list[str], size: int, max_length: int, crf: bool) -> dict[str, Endpoint]:
    """``serving_default`` (``frames``) and ``gif`` (``video``) over ``model``, which reads
    ``{"frames": pixels, "mask": [batch, time]}`` and scores ``labels`` per frame (CRF potentials when ``crf``)."""
    names = tf.constant(labels)

    def tag(pixels, lengths, valid):
        b, t = tf.shape(pixels)[0], tf.shape(pixels)[1]
        # at least one row and one frame: recurrent layers need a step, batch norm a row
        pb, pt = tf.maximum(b, 1), tf.maximum(t, 1)
        pixels = tf.pad(pixels, [[0, pb - b], [0, pt - t], [0, 0], [0, 0], [0, 0]])
        lengths_p = tf.pad(lengths, [[0, pb - b]])
        mask = tf.sequence_mask(lengths_p, pt)
        scores = model({"frames": pixels, "mask": tf.cast(mask, tf.float32)}, training=False)
        ids = decode_tags(scores, mask, crf)
        frame_scores = tf.reduce_logsumexp(scores, axis=2) if crf else scores
        probs = tf.nn.softmax(tf.cast(frame_scores, tf.float32), axis=-1) * tf.cast(mask, tf.float32)[..., None]
        out = {"labels": tf.where(mask, tf.gather(names, tf.maximum(ids, 0)), ""), "probabilities": probs}
        out = {k: v[:b, :t] for k, v in out.items()}
        return {**out, "lengths": lengths, "valid": valid}

    def serve_frames(frames):
        return tag(*decode_frames(frames, size, max_length))

    def serve_gif(video):
        return tag(*decode_gifs(video, size, max_length))

    return {
        "serving_default": Endpoint(serve_frames, [tf.TensorSpec([None, None], tf.string, name="frames")],
                                    f"encoded frames (JPEG/PNG/GIF/BMP) per video, padded with '' -> {OUTPUTS}"),
        "gif": Endpoint(serve_gif, [tf.TensorSpec([None], tf.string, name="video")],
                        f"an animated GIF per video -> {OUTPUTS}"),
    }

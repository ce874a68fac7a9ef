"""Encoded image bytes -> fixed-size RGB tensors, inside the graph, never failing the batch.

``decode_batch(images, size)`` turns ``tf.string [batch]`` (JPEG, PNG, GIF, BMP; any
size; grayscale, palette or alpha) into ``float32 [batch, size, size, 3]`` pixels in
[0, 255] plus ``valid: bool [batch]``. Items that do not decode (empty, truncated,
not an image, larger than ``bounds.IMAGE_PIXELS`` decoded) come back as black images with
``valid=False`` instead of raising, so one bad item never fails the others: decoding
runs in a ``tf.data`` pipeline whose errors are dropped, and results are scattered
back to their positions. Large JPEGs are decoded at 1/2, 1/4 or 1/8 scale (libjpeg's
DCT scaling) when that still covers ``size``, so a 4000x4000 photo costs little; the
size of the others is read from their headers before they are decoded, a GIF's first
frame only is decoded, and sides over ``bounds.SHRINK_SIDE`` are subsampled before the
float resize (:mod:`seqapps.core.bounds`).
"""

from __future__ import annotations

import tensorflow as tf

from seqapps.core.bounds import GIF_BLOCKS, IMAGE_PIXELS, SHRINK_SIDE
from seqapps.inference import image_inputs

MAX_PIXELS = 10_000 * 10_000  # JPEGs whose header claims more pixels are refused rather than decoded
FORMATS, sniff = image_inputs.FORMATS, image_inputs.sniff  # TensorFlow-free, where they live


def _u(b, start, n, little):
    """Unsigned integer from ``n`` bytes of a scalar string at ``start``."""
    raw = tf.cast(tf.io.decode_raw(tf.strings.substr(b, start, n), tf.uint8), tf.int64)
    weights = tf.constant([256 ** i for i in (range(n) if little else reversed(range(n)))], tf.int64)
    return tf.reduce_sum(raw[:n] * weights)


def _header_pixels(b):
    """Width * height read from a PNG/GIF/BMP header (0 when unknown)."""
    head = tf.strings.substr(b, 0, 4)
    png = lambda: _u(b, 16, 4, False) * _u(b, 20, 4, False)  # noqa: E731
    gif = lambda: _u(b, 6, 2, True) * _u(b, 8, 2, True)  # noqa: E731

    def bmp():
        height = _u(b, 22, 4, True)  # int32, negative for top-down bitmaps
        return _u(b, 18, 4, True) * tf.where(height >= 2 ** 31, 2 ** 32 - height, height)

    long_enough = tf.strings.length(b) >= 26
    return tf.case([(tf.logical_and(long_enough, tf.equal(head, b"\x89PNG")), png),
                    (tf.logical_and(long_enough, tf.equal(tf.strings.substr(head, 0, 3), b"GIF")), gif),
                    (tf.logical_and(long_enough, tf.equal(tf.strings.substr(head, 0, 2), b"BM")), bmp)],
                   default=lambda: tf.constant(0, tf.int64))


def _not_too_large(pixels, most: int = MAX_PIXELS):
    """An op that fails (dropping the item in :func:`decode_batch`) when ``pixels`` > ``most``."""
    return tf.debugging.assert_less_equal(tf.cast(pixels, tf.int64), tf.constant(most, tf.int64),
                                          message="image too large")


def gif_frames(b, limit):
    """``(frames, end)`` of GIF bytes ``b``, read from its blocks without decoding: the frames it holds,
    counted up to ``limit``, and the offset where the last one counted ends. At most
    ``bounds.GIF_BLOCKS`` data blocks are read (encoders write 255-byte blocks); past that the walk
    fails, dropping the item (a run of full 255-byte blocks counts as one). A truncated GIF counts the
    frames it holds whole."""
    data = tf.concat([tf.io.decode_raw(b, tf.uint8), tf.zeros([1], tf.uint8)], 0)
    n = tf.size(data, tf.int64) - 1

    def at(p):
        return tf.cast(tf.gather(data, tf.clip_by_value(tf.cast(p, tf.int64), 0, n)), tf.int64)

    def table(flags):  # the size of a colour table whose packed-fields byte is ``flags``
        return tf.where(flags >= 128, 3 * tf.bitwise.left_shift(tf.constant(2, tf.int64), flags % 8), 0)

    limit = tf.cast(limit, tf.int64)
    start = 13 + table(at(10))

    def body(i, pos, mode, frames, end, done):
        byte = at(pos)
        # mode 0: at a block; 1: in an extension's data blocks; 2: in an image's data blocks
        ext, image = tf.logical_and(tf.equal(mode, 0), tf.equal(byte, 0x21)), \
            tf.logical_and(tf.equal(mode, 0), tf.equal(byte, 0x2C))
        last_block = tf.logical_and(mode > 0, tf.equal(byte, 0))
        frames_now = frames + tf.cast(tf.logical_and(last_block, tf.equal(mode, 2)), tf.int64)
        # a run of full (255-byte) data blocks is crossed in one step: the size bytes 256 apart
        full = tf.cast(tf.equal(at(pos + 256 * tf.range(256, dtype=tf.int64)), 255), tf.int64)
        run = tf.reduce_sum(tf.math.cumprod(full))
        new_pos = tf.where(ext, pos + 2, tf.where(image, pos + 11 + table(at(pos + 9)),
                                                  tf.where(run > 0, pos + 256 * run, pos + 1 + byte)))
        one, two, zero = (tf.constant(v, tf.int64) for v in (1, 2, 0))
        new_mode = tf.where(ext, one, tf.where(image, two, tf.where(last_block, zero, mode)))
        stop = tf.logical_or(tf.logical_and(tf.equal(mode, 0), tf.logical_not(tf.logical_or(ext, image))),
                             tf.logical_or(frames_now >= limit, new_pos > n))
        new_end = tf.where(frames_now > frames, new_pos, end)
        return i + 1, new_pos, new_mode, frames_now, new_end, stop

    zero = tf.constant(0, tf.int64)
    i, _, _, frames, end, _ = tf.while_loop(
        lambda i, pos, mode, frames, end, done: tf.logical_not(done), body,
        (zero, start, zero, zero, start, tf.logical_or(limit <= 0, start > n)))
    with tf.control_dependencies([tf.debugging.assert_less_equal(i, tf.constant(GIF_BLOCKS, tf.int64),
                                                                 message="too many GIF blocks")]):
        return tf.identity(frames), tf.identity(end)


def first_frames(b, limit):
    """``(GIF bytes holding only the first ``limit`` frames of GIF ``b``, their count)``: the bytes up to
    the end of frame ``limit``, and the trailer, so decoding reads no more (the header's screen size
    and the frames' pixels are as they were)."""
    frames, end = gif_frames(b, limit)
    return tf.strings.join([tf.strings.substr(b, tf.constant(0, tf.int64), end), b"\x3b"]), frames


def shrink(image, side: int = SHRINK_SIDE):
    """Decoded ``uint8 [..., H, W, C]`` with each side over ``side`` subsampled (every k-th row or
    column) to at most ``side``: the resize to the model's size then works on at most ``side`` x
    ``side`` float pixels. Images within ``side`` are returned as they are."""
    shape = tf.shape(image)
    h, w = shape[-3], shape[-2]
    out = image[..., ::(h + side - 1) // side, ::(w + side - 1) // side, :]
    if image.shape.rank is not None:
        out.set_shape(image.shape[:-3].concatenate([None, None]).concatenate(image.shape[-1:]))
    return out


def decode_one(b, size: int):
    """One encoded image -> float32 [size, size, 3] in [0, 255]; raises on bad bytes."""
    is_jpeg = tf.equal(tf.strings.substr(b, 0, 3), b"\xff\xd8\xff")

    def jpeg():
        shape = tf.io.extract_jpeg_shape(b)
        with tf.control_dependencies([_not_too_large(tf.cast(shape[0], tf.int64) * tf.cast(shape[1], tf.int64))]):
            shape = tf.identity(shape)
        short = tf.minimum(shape[0], shape[1])
        branch = tf.reduce_sum(tf.cast(short // tf.constant([2, 4, 8]) >= size, tf.int32))  # 0..3
        ratio = tf.gather(tf.constant([1, 2, 4, 8], tf.int64), branch)
        decoded = ((tf.cast(shape[0], tf.int64) + ratio - 1) // ratio) * ((tf.cast(shape[1], tf.int64) + ratio - 1) // ratio)
        with tf.control_dependencies([_not_too_large(decoded, IMAGE_PIXELS)]):
            branch = tf.identity(branch)
        # libjpeg's accurate integer DCT (TensorFlow's default is the fast one): the same pixels as
        # Pillow's decoding, which ONNX and LiteRT exports run outside the graph
        return tf.switch_case(branch, [lambda r=r: tf.io.decode_jpeg(b, channels=3, ratio=r, dct_method="INTEGER_ACCURATE")
                                       for r in (1, 2, 4, 8)])

    def other():  # PNG, GIF or BMP, whose headers say their size; WebP and the rest are refused, not decoded
        head = tf.strings.substr(b, 0, 4)
        known = tf.reduce_any(tf.stack([tf.equal(head, b"\x89PNG"), tf.equal(head, b"GIF8"),
                                        tf.equal(tf.strings.substr(head, 0, 2), b"BM")]))
        checks = [tf.debugging.Assert(known, ["not a JPEG, PNG, GIF or BMP image"]),
                  _not_too_large(_header_pixels(b), IMAGE_PIXELS)]
        with tf.control_dependencies(checks):
            # a GIF is read to the end of its first frame: decode_image would decode every frame first
            one = tf.cond(tf.equal(head, b"GIF8"), lambda: first_frames(b, 1)[0], lambda: b)
            return tf.io.decode_image(one, channels=3, expand_animations=False, dtype=tf.uint8)

    image = tf.cond(is_jpeg, jpeg, other)
    image.set_shape([None, None, 3])
    return tf.image.resize(tf.cast(shrink(image), tf.float32), (size, size), antialias=True)


def decode_batch(images, size: int):
    """See the module docstring: ``(pixels [batch, size, size, 3], valid [batch])``."""
    images = tf.convert_to_tensor(images, tf.string)
    n = tf.shape(images)[0]
    ds = tf.data.Dataset.from_tensor_slices((tf.range(n), images))
    ds = ds.map(lambda i, b: (i, decode_one(b, size))).ignore_errors()
    options = tf.data.Options()
    # one image decoded at a time: tf.data would otherwise run the map on several threads at once,
    # each holding a decoded full-size image (the bound on one call's memory is one image's)
    options.experimental_optimization.map_parallelization = False
    options.threading.private_threadpool_size = 1
    ds = ds.with_options(options)
    empty = (tf.zeros([0], tf.int32), tf.zeros([0, size, size, 3], tf.float32))
    idx, pixels = ds.batch(tf.cast(tf.maximum(n, 1), tf.int64)).reduce(
        empty, lambda acc, x: (tf.concat([acc[0], x[0]], 0), tf.concat([acc[1], x[1]], 0)))
    valid = tf.scatter_nd(idx[:, None], tf.ones_like(idx, tf.bool), [n])
    full = tf.scatter_nd(idx[:, None], pixels, [n, size, size, 3])
    return full, valid


def augment(pixels, size: int):
    """A training-time variant of one image ``[size, size, 3]``: a random crop of 85-100% of the
    side resized back, random brightness and contrast; values stay in [0, 255]."""
    crop = tf.cast(tf.cast(size, tf.float32) * tf.random.uniform([], 0.85, 1.0), tf.int32)
    pixels = tf.image.random_crop(pixels, [crop, crop, 3])
    pixels = tf.image.resize(pixels, (size, size))
    pixels = tf.image.random_brightness(pixels, 20.0)
    return tf.clip_by_value(tf.image.random_contrast(pixels, 0.85, 1.15), 0.0, 255.0)

"""Encoded image bytes -> fixed-size RGB tensors, inside the graph, never failing the batch.

``decode_batch(images, size)`` turns ``tf.string [batch]`` (JPEG, PNG, GIF, BMP; any
size; grayscale, palette or alpha) into ``float32 [batch, size, size, 3]`` pixels in
[0, 255] plus ``valid: bool [batch]``. Items that do not decode (empty, truncated,
not an image, larger than ``MAX_PIXELS``) come back as black images with
``valid=False`` instead of raising, so one bad item never fails the others: decoding
runs in a ``tf.data`` pipeline whose errors are dropped, and results are scattered
back to their positions. Large JPEGs are decoded at 1/2, 1/4 or 1/8 scale (libjpeg's
DCT scaling) when that still covers ``size``, so a 4000x4000 photo costs little.
"""

from __future__ import annotations

import tensorflow as tf

MAX_PIXELS = 10_000 * 10_000  # images whose header claims more pixels are refused rather than decoded
FORMATS = {b"\xff\xd8\xff": "JPEG", b"\x89PNG": "PNG", b"GIF8": "GIF", b"BM": "BMP"}


def sniff(data: bytes) -> str | None:
    """The format name of encoded image bytes, from their first bytes; None if unknown."""
    for magic, name in FORMATS.items():
        if data[:len(magic)] == magic:
            return name
    return None


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


def _not_too_large(pixels):
    """An op that fails (dropping the item in :func:`decode_batch`) when ``pixels`` > MAX_PIXELS."""
    return tf.debugging.assert_less_equal(pixels, tf.constant(MAX_PIXELS, tf.int64), message="image too large")


def decode_one(b, size: int):
    """One encoded image -> float32 [size, size, 3] in [0, 255]; raises on bad bytes."""
    is_jpeg = tf.equal(tf.strings.substr(b, 0, 3), b"\xff\xd8\xff")

    def jpeg():
        shape = tf.io.extract_jpeg_shape(b)
        with tf.control_dependencies([_not_too_large(tf.cast(shape[0], tf.int64) * tf.cast(shape[1], tf.int64))]):
            shape = tf.identity(shape)
        short = tf.minimum(shape[0], shape[1])
        branch = tf.reduce_sum(tf.cast(short // tf.constant([2, 4, 8]) >= size, tf.int32))  # 0..3
        return tf.switch_case(branch, [lambda r=r: tf.io.decode_jpeg(b, channels=3, ratio=r) for r in (1, 2, 4, 8)])

    def other():  # PNG, GIF or BMP, whose headers say their size; WebP and the rest are refused, not decoded
        head = tf.strings.substr(b, 0, 4)
        known = tf.reduce_any(tf.stack([tf.equal(head, b"\x89PNG"), tf.equal(head, b"GIF8"),
                                        tf.equal(tf.strings.substr(head, 0, 2), b"BM")]))
        checks = [tf.debugging.Assert(known, ["not a JPEG, PNG, GIF or BMP image"]),
                  _not_too_large(_header_pixels(b))]
        with tf.control_dependencies(checks):
            return tf.io.decode_image(b, channels=3, expand_animations=False, dtype=tf.uint8)

    image = tf.cond(is_jpeg, jpeg, other)
    image.set_shape([None, None, 3])
    return tf.image.resize(tf.cast(image, tf.float32), (size, size), antialias=True)


def decode_batch(images, size: int):
    """See the module docstring: ``(pixels [batch, size, size, 3], valid [batch])``."""
    images = tf.convert_to_tensor(images, tf.string)
    n = tf.shape(images)[0]
    ds = tf.data.Dataset.from_tensor_slices((tf.range(n), images))
    ds = ds.map(lambda i, b: (i, decode_one(b, size))).ignore_errors()
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

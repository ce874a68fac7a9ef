"""Image batches for training an image-to-sequence model: cached encoder features or pixels.

A frozen pretrained encoder is run once per image and its feature grid cached on disk
(:func:`frozen_features`, keyed by encoder, weights and image size); a trained encoder
reads decoded (and, for training, augmented) pixels instead. ``m`` is a model config
with ``encoder``, ``encoder_weights``, ``encoder_trainable`` and ``image_size``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import tensorflow as tf

from tasks.captioning.data import cache_root, encoder_features
from seqapps.encoders import build_encoder
from seqapps.encoders.images import augment, decode_one


def feature_cache_dir(m, feature_cache: str = "", flip: bool = False) -> Path | None:
    """The feature cache folder of a frozen pretrained encoder (None for a weights file that is missing);
    ``flip``: of the horizontally mirrored images, a second view kept beside the first."""
    if m.encoder_weights.lower() == "imagenet":
        tag = "imagenet"
    else:
        p = Path(m.encoder_weights)
        if not p.is_file():
            return None
        stat = p.stat()
        tag = f"{p.resolve()}:{stat.st_size}:{int(stat.st_mtime)}"
    key = hashlib.sha1(f"{m.encoder}|{tag}|{m.image_size}|v1{'|hflip' if flip else ''}".encode()).hexdigest()[:16]
    return cache_root(feature_cache) / f"{m.encoder}-{m.image_size}-{key}{'-hflip' if flip else ''}"


def frozen_features(m, data, feature_cache: str = "", flip: bool = False):
    """Encoder features ``[images, cells, channels]`` of ``data`` (a CaptionSet), read from the cache when
    there; ``flip``: of each image mirrored left to right."""
    encoder = build_encoder(m.encoder, m.encoder_weights, m.image_size)
    fn = tf.function(lambda x: encoder(tf.reverse(x, axis=[2]) if flip else x, training=False))
    return encoder_features(data, fn, m.image_size, feature_cache_dir(m, feature_cache, flip))


def image_batches(data, columns, m, batch_size: int, shuffle: bool, seed: int = 0, augment_images: bool = False,
                  feature_cache: str = "", flip: bool = False) -> tf.data.Dataset:
    """Batches of ``({"features" or "image": ..., "tokens": inputs}, targets)`` from ``columns`` =
    ``(image_ids, inputs, targets)`` (one row per target sequence, ``image_ids`` indexing ``data``):
    cached features with a frozen encoder, else decoded pixels (augmented when ``augment_images``).
    ``flip``: each row reads the left-right mirrored image with probability 1/2 (with a frozen
    encoder, from a second cached feature view), drawn anew each pass from ``seed``."""
    image_ids, inputs, targets = columns
    n = len(image_ids)
    ds = tf.data.Dataset.from_tensor_slices((image_ids, inputs, targets))
    if shuffle:
        ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True)
    if flip:  # one coin per row, appended: (image id, inputs, targets, mirrored?)
        coins = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).map(lambda r: r % 2 == 1)
        ds = tf.data.Dataset.zip((ds, coins)).map(lambda row, c: (*row, c))
    if not m.encoder_trainable:
        feats = tf.constant(frozen_features(m, data, feature_cache))
        if flip:
            mirrored = tf.constant(frozen_features(m, data, feature_cache, flip=True))

            def gather(i, x, y, c):
                f = tf.where(c[:, None, None], tf.gather(mirrored, i), tf.gather(feats, i))
                return {"features": f, "tokens": x}, y
        else:
            def gather(i, x, y):
                return {"features": tf.gather(feats, i), "tokens": x}, y
        ds = ds.batch(batch_size).map(gather)
    else:
        blobs, size = tf.constant([data.read(i) for i in range(len(data))]), m.image_size

        def load(i, x, y, c=None):
            pixels = decode_one(blobs[i], size)
            if c is not None:
                pixels = tf.cond(c, lambda: tf.reverse(pixels, axis=[1]), lambda: pixels)
            return {"image": augment(pixels, size) if augment_images else pixels, "tokens": x}, y
        ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE).batch(batch_size)
    n_batches = -(-n // batch_size)
    return ds.apply(tf.data.experimental.assert_cardinality(n_batches)).prefetch(tf.data.AUTOTUNE)

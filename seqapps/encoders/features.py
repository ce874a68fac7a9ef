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

from seqapps.data.captions import cache_root, encoder_features
from seqapps.encoders import build_encoder
from seqapps.encoders.images import augment, decode_one


def feature_cache_dir(m, feature_cache: str = "") -> Path | None:
    """The feature cache folder of a frozen pretrained encoder (None for a weights file that is missing)."""
    if m.encoder_weights.lower() == "imagenet":
        tag = "imagenet"
    else:
        p = Path(m.encoder_weights)
        if not p.is_file():
            return None
        stat = p.stat()
        tag = f"{p.resolve()}:{stat.st_size}:{int(stat.st_mtime)}"
    key = hashlib.sha1(f"{m.encoder}|{tag}|{m.image_size}|v1".encode()).hexdigest()[:16]
    return cache_root(feature_cache) / f"{m.encoder}-{m.image_size}-{key}"


def frozen_features(m, data, feature_cache: str = ""):
    """Encoder features ``[images, cells, channels]`` of ``data`` (a CaptionSet), read from the cache when there."""
    encoder = build_encoder(m.encoder, m.encoder_weights, m.image_size)
    fn = tf.function(lambda x: encoder(x, training=False))
    return encoder_features(data, fn, m.image_size, feature_cache_dir(m, feature_cache))


def image_batches(data, columns, m, batch_size: int, shuffle: bool, seed: int = 0, augment_images: bool = False,
                  feature_cache: str = "") -> tf.data.Dataset:
    """Batches of ``({"features" or "image": ..., "tokens": inputs}, targets)`` from ``columns`` =
    ``(image_ids, inputs, targets)`` (one row per target sequence, ``image_ids`` indexing ``data``):
    cached features with a frozen encoder, else decoded pixels (augmented when ``augment_images``)."""
    image_ids, inputs, targets = columns
    n = len(image_ids)
    ds = tf.data.Dataset.from_tensor_slices((image_ids, inputs, targets))
    if shuffle:
        ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True)
    if not m.encoder_trainable:
        feats = tf.constant(frozen_features(m, data, feature_cache))
        ds = ds.batch(batch_size).map(lambda i, x, y: ({"features": tf.gather(feats, i), "tokens": x}, y))
    else:
        blobs, size = tf.constant([data.read(i) for i in range(len(data))]), m.image_size

        def load(i, x, y):
            pixels = decode_one(blobs[i], size)
            return {"image": augment(pixels, size) if augment_images else pixels, "tokens": x}, y
        ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE).batch(batch_size)
    n_batches = -(-n // batch_size)
    return ds.apply(tf.data.experimental.assert_cardinality(n_batches)).prefetch(tf.data.AUTOTUNE)

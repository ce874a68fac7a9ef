"""Training batches for an image-to-sequence model, streamed: cached encoder features or pixels.

Rows ``(image, caption)`` come from a split's ``rows()`` (a :class:`~tasks.captioning.data.CaptionStream`
reading its table, or a :class:`~tasks.captioning.data.CaptionSet` in memory) and pass a bounded shuffle
buffer (``data.shuffle_buffer``) as names or paths and captions; images are read after it, per batch.

- A trained encoder reads pixels: each row's image file is read after the shuffle buffer and decoded by
  :func:`seqapps.encoders.images.decode_one`, the per-image function of ``decode_batch``, which the
  export's signatures run on raw bytes (then, for training, mirrored and augmented when asked); the
  fitting pass has checked that every image decodes.
- A frozen pretrained encoder is run once per image and its feature grid kept in a
  :class:`FeatureStore`: one file of float16 rows ``[cells, channels]`` per image list, written once
  (keyed by the encoder, its weights and image size, and each image's name and size and modification
  time, or bytes for images held in memory), read per batch by positional reads (no memory map, so
  the pages read are not held).

``m`` is a model config with ``encoder``, ``encoder_weights``, ``encoder_trainable`` and ``image_size``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path

import numpy as np
import tensorflow as tf

from seqapps.core.errors import DataError
from seqapps.data import cache_folder
from seqapps.data.streaming import chunked
from seqapps.encoders import build_encoder
from seqapps.encoders.images import augment, decode_one

STORE_VERSION = 2
STORE_BATCH = 32  # images encoded at once when a store is written


def cache_root(explicit: str = "") -> Path:
    return cache_folder(explicit) / "features"


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


def name_keys(names) -> np.ndarray:
    """A 64-bit key per image name (BLAKE2b of its UTF-8 bytes): what a store's index is sorted by."""
    return np.fromiter((int.from_bytes(hashlib.blake2b(n.encode("utf-8"), digest_size=8).digest(), "little")
                        for n in names), np.uint64, count=len(names))


class FeatureStore:
    """Encoder features of an image list: ``path`` holds ``[images, cells, channels]`` float16 rows in the
    list's order (names sorted); the index maps a name's 64-bit key to its row (16 bytes an image)."""

    def __init__(self, path: Path, names: list[str], cells: int, channels: int):
        self.path, self.cells, self.channels = Path(path), int(cells), int(channels)
        keys = name_keys(names)
        self.order = np.argsort(keys, kind="stable")
        self.keys = keys[self.order]
        if len(self.keys) > 1 and np.any(self.keys[1:] == self.keys[:-1]):
            raise DataError(f"{path}: two image names share a 64-bit key; rename one of them")
        self.row_bytes = self.cells * self.channels * 2
        self.fd = os.open(self.path, os.O_RDONLY)

    def __len__(self) -> int:
        return len(self.keys)

    def __del__(self):
        fd = getattr(self, "fd", None)
        if fd is not None:
            os.close(fd)

    def rows_of(self, names) -> np.ndarray:
        """The row of each name (every name must be in the list)."""
        keys = name_keys(names)
        at = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
        if len(keys) and not np.all(self.keys[at] == keys):
            missing = next(n for n, k, j in zip(names, keys, at) if self.keys[j] != k)
            raise DataError(f"{self.path}: image {missing} is not in the feature store")
        return self.order[at].astype(np.int64)

    def read(self, rows) -> np.ndarray:
        """Features ``[len(rows), cells, channels]`` float16 of ``rows``."""
        out = np.empty((len(rows), self.cells, self.channels), np.float16)
        flat = out.reshape(len(rows), -1).view(np.uint8)
        for i, row in enumerate(np.asarray(rows, np.int64)):
            got = os.pread(self.fd, self.row_bytes, int(row) * self.row_bytes)
            if len(got) != self.row_bytes:
                raise DataError(f"{self.path}: the feature store is cut short (row {int(row)}); delete it to rebuild")
            flat[i] = np.frombuffer(got, np.uint8)
        return out

    def all(self) -> np.ndarray:
        return self.read(np.arange(len(self)))


def _list_key(images) -> str:
    """The key of an image list: each name with its file's size and modification time, or its bytes."""
    h = hashlib.sha1(f"v{STORE_VERSION}".encode())
    for name, image in images:
        if isinstance(image, bytes):
            h.update(b"b" + hashlib.sha1(image).digest())
        else:
            try:
                st = os.stat(image)
            except OSError as e:
                raise DataError(f"{image}: {e.strerror}") from None
            h.update(f"p{name}\0{st.st_size}\0{st.st_mtime_ns}".encode())
        h.update(b"\0" + name.encode("utf-8") + b"\0")
    return h.hexdigest()[:24]


def feature_store(m, split, feature_cache: str = "", flip: bool = False) -> FeatureStore:
    """The :class:`FeatureStore` of ``split``'s images under the frozen encoder ``m`` (``flip``: of the
    images mirrored left to right), written first when it is not in the cache."""
    images = split.distinct_images()
    folder = feature_cache_dir(m, feature_cache, flip)
    if folder is None:
        raise DataError(f"model.encoder_weights: no such file {m.encoder_weights!r}")
    path = folder / f"{_list_key(images)}.f16"
    meta = path.with_suffix(".json")
    names = [n for n, _ in images]
    if path.exists() and meta.exists():
        try:
            info = json.loads(meta.read_text())
            if info["images"] == len(images) and path.stat().st_size == len(images) * info["cells"] * info["channels"] * 2:
                return FeatureStore(path, names, info["cells"], info["channels"])
        except (OSError, ValueError, KeyError):
            pass  # a damaged entry is written again
    encoder = build_encoder(m.encoder, m.encoder_weights, m.image_size)
    size = m.image_size

    @tf.function
    def encode(pixels):
        grid = encoder(tf.reverse(pixels, axis=[2]) if flip else pixels, training=False)
        return tf.reshape(grid, [tf.shape(grid)[0], -1, tf.shape(grid)[-1]])

    # the images decoded by the export's per-image function (decode_one, what decode_batch runs on each
    # item), in a parallel tf.data map, in the list's order
    held = any(isinstance(i, bytes) for _, i in images)
    pixels = tf.data.Dataset.from_generator(lambda: (i for _, i in images), output_signature=tf.TensorSpec([], tf.string))
    pixels = pixels.map(lambda b: decode_one(b if held else tf.io.read_file(b), size),
                        num_parallel_calls=tf.data.AUTOTUNE).batch(STORE_BATCH).prefetch(2)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    cells = channels = 1
    try:
        with open(tmp, "wb") as f:
            for batch in pixels:
                grid = np.asarray(encode(batch)).astype(np.float16)
                cells, channels = grid.shape[1], grid.shape[2]
                f.write(np.ascontiguousarray(grid).tobytes())
    except tf.errors.OpError as e:
        tmp.unlink(missing_ok=True)
        raise DataError(f"{getattr(split, 'what', '') or 'the data'}: an image cannot be read or decoded (changed since the fitting "
                        f"pass?): {str(e.message).splitlines()[0][:200]}") from None
    os.replace(tmp, path)  # never a half-written store under the real name
    meta.write_text(json.dumps({"images": len(images), "cells": int(cells), "channels": int(channels)}))
    return FeatureStore(path, names, cells, channels)


def frozen_features(m, data, feature_cache: str = "", flip: bool = False) -> np.ndarray:
    """Encoder features ``[images, cells, channels]`` of ``data`` (a split, in the order of its sorted image
    names), read from the cache when there; for scoring tools on small splits (training reads per batch)."""
    return feature_store(m, data, feature_cache, flip).all()


def image_batches(split, prep, m, width: int, batch_size: int, shuffle: bool, seed: int = 0,
                  augment_images: bool = False, feature_cache: str = "", flip: bool = False,
                  buffer: int = 100_000) -> tf.data.Dataset:
    """Batches of ``({"features" or "image": ..., "tokens": inputs}, targets)`` over ``split``'s caption rows,
    teacher-forced ``width`` steps (:meth:`~tasks.captioning.data.CaptionVocab.caption_encoder`): features
    from a store with a frozen encoder, else decoded pixels (augmented when ``augment_images``).
    Training (``shuffle``) repeats the stream through a shuffle buffer of ``buffer`` rows and takes
    ``ceil(captions / batch_size)`` batches an epoch; validation reads each row once.
    ``flip``: each row reads the left-right mirrored image with probability 1/2 (with a frozen
    encoder, from a second feature store), drawn anew each pass from ``seed``."""
    n = split.n
    encode = prep.caption_encoder()
    frozen = not m.encoder_trainable
    if frozen:
        store = feature_store(m, split, feature_cache)
        mirrored = feature_store(m, split, feature_cache, flip=True) if flip else None

        def generate():
            for names, captions in chunked(((name, c) for name, _, c in split.rows()), (object, object)):
                yield store.rows_of(list(names)), captions

        signature = (tf.TensorSpec([None], tf.int64), tf.TensorSpec([None], tf.string))
    else:  # rows as (the image's path, or its name for images held in memory; the caption)
        held = any(isinstance(image, bytes) for _, image, _ in _first(split))

        def generate():
            return chunked(((name if held else image, c) for name, image, c in split.rows()), (object, object))

        signature = (tf.TensorSpec([None], tf.string), tf.TensorSpec([None], tf.string))
    ds = tf.data.Dataset.from_generator(generate, output_signature=signature).unbatch()
    if shuffle:
        ds = ds.shuffle(max(1, min(buffer, n)), seed=seed, reshuffle_each_iteration=True).repeat()
    if flip:  # one coin per row, appended: (image, caption, mirrored?)
        coins = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).map(lambda r: r % 2 == 1)
        ds = tf.data.Dataset.zip((ds, coins)).map(lambda row, c: (*row, c))
    if frozen:
        def load(rows, captions, coins=None):
            feats = tf.numpy_function(store.read, [rows], tf.float16)
            if coins is not None:
                flipped = tf.numpy_function(mirrored.read, [rows], tf.float16)
                feats = tf.where(coins[:, None, None], flipped, feats)
            feats = tf.ensure_shape(feats, [None, store.cells, store.channels])
            inputs, targets = encode(captions, width)
            return {"features": feats, "tokens": inputs}, targets
    else:
        size = m.image_size
        if held:
            images = split.distinct_images()
            blobs = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(
                tf.constant([n for n, _ in images], tf.string), tf.constant([b for _, b in images], tf.string)), "")
            del images
            read = blobs.lookup
        else:
            read = tf.io.read_file
        # each row's image read after the shuffle buffer and decoded by the export's per-image function
        # (decode_one: what decode_batch, the signatures' decoding, runs on each item)

        def pixels(key, caption, coin=None):
            image = decode_one(read(key), size)
            if coin is not None:
                image = tf.cond(coin, lambda: tf.reverse(image, axis=[1]), lambda: image)
            return augment(image, size) if augment_images else image, caption

        ds = ds.map(pixels, num_parallel_calls=tf.data.AUTOTUNE)

        def load(images, captions):
            inputs, targets = encode(captions, width)
            return {"image": images, "tokens": inputs}, targets
    ds = ds.batch(batch_size).map(load, num_parallel_calls=tf.data.AUTOTUNE)
    n_batches = max(math.ceil(n / batch_size), 1)
    if shuffle:
        ds = ds.take(n_batches)
    return ds.apply(tf.data.experimental.assert_cardinality(n_batches)).prefetch(tf.data.AUTOTUNE)


def _first(split, k: int = 1):
    """The first ``k`` rows of ``split`` (a look at whether its images are paths or bytes)."""
    out = []
    for row in split.rows():
        out.append(row)
        if len(out) >= k:
            break
    return out

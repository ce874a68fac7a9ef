"""captioning streams its data: Flickr8k's splits stay the benchmark protocol, the fitting pass's vocabulary
is the one fitted on the training captions held in lists, the pass is cached until the table changes, a bad
row or image deep in a table names its line, training batches hold the export's decoding of the raw images,
and a big source trains at about the peak memory of the demo."""

from __future__ import annotations

import collections
import io
import os
import random
import sys

import numpy as np
import pytest

from conftest import needs_data, peak_memory_mb
from seqapps.core.errors import DataError

WORDS = "a the red blue green dog cat runs sits on in grass water man woman child ball plays near big small".split()
TINY = ["model.encoder=small_cnn", "model.encoder_weights=none", "model.encoder_trainable=true",
        "model.image_size=32", "model.units=8", "model.embedding_dim=8", "model.feature_units=8",
        "model.attention_units=8", "model.beam_width=2", "data.max_length=8", "data.min_count=1",
        "data.augment=false", "train.batch_size=16"]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SEQAPPS_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def config(source, *sets):
    from seqapps.core import registry
    from seqapps.training.fit import resolve_config

    return resolve_config(registry.get("captioning"), str(source), overrides=[*TINY, *sets], preset="none")


def image(rng, size=16, fmt="PNG") -> bytes:
    from PIL import Image

    out = io.BytesIO()
    pixels = rng.integers(0, 256, size=(size, size, 3), dtype="uint8")
    Image.fromarray(pixels).save(out, fmt)
    return out.getvalue()


def write_source(folder, n_images: int, captions_per_image: int = 3, seed: int = 0, bad_line=None,
                 shuffled: bool = True, sizes=(16,)):
    """``folder/images/img*.png`` and ``folder/captions.csv`` (rows in a shuffled order, some quoted with
    commas); ``bad_line``: that line of the table has three fields."""
    gen, rng = np.random.default_rng(seed), random.Random(seed)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    for i in range(n_images):
        size = sizes[i % len(sizes)]
        (folder / "images" / f"img{i:05d}.png").write_bytes(image(gen, size, "PNG" if i % 3 else "JPEG"))
    rows = [(f"img{i:05d}.png", " ".join(rng.choices(WORDS, k=rng.randint(2, 11))) + rng.choice(["", " ."]))
            for i in range(n_images) for _ in range(captions_per_image)]
    if shuffled:
        rng.shuffle(rows)
    lines = ["image,caption"]
    for name, caption in rows:
        if len(lines) + 1 == bad_line:
            lines.append(f"{name},one caption,and a stray field")
        lines.append(f'{name},"{caption}, then more"' if rng.random() < 0.1 else f"{name},{caption}")
    (folder / "captions.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder / "captions.csv"


def as_before(table, val_fraction=0.1, test_fraction=0.1):
    """The training captions per image as the reader of before held them: the table read whole by pandas,
    grouped by image, sorted by name and split 80/10/10."""
    import csv

    import pandas as pd

    from seqapps.data.splits import split

    frame = pd.read_csv(table, sep=",", quoting=csv.QUOTE_MINIMAL, keep_default_na=False, dtype=str)
    grouped = collections.OrderedDict()
    for name, caption in zip(frame["image"].str.strip(), frame["caption"]):
        caption = " ".join(caption.split())
        if name and caption:
            grouped.setdefault(name, []).append(caption)
    names = sorted(grouped)
    return split(names, val_fraction, test_fraction), grouped


@needs_data
def test_flickr8k_1000_splits_are_the_benchmark_protocol(cache):
    """Sort the image file names; the first 800 train, the next 100 validate, the last 100 test, with all
    5 captions of each image."""
    from seqapps.core import registry
    from seqapps.data import catalog

    folder = catalog.data_dir() / "flickr8k_1000"
    names = sorted(os.listdir(folder / "images"))
    assert len(names) == 1000
    splits = registry.get("captioning").load_data(config("flickr8k_1000"))
    for stream, expected in zip((splits.train, splits.val, splits.test), (names[:800], names[800:900], names[900:])):
        data = stream.materialize()
        assert data.names == expected and len(stream) == len(expected)
        assert stream.n == 5 * len(expected) and all(len(c) == 5 for c in data.captions)
    assert splits.info["images"] == {"train": 800, "val": 100, "test": 100}


@needs_data
def test_flickr8k_1000_vocabulary_is_the_fit_of_before(cache):
    from seqapps.core import registry
    from seqapps.data import catalog
    from tasks.captioning.data import CaptionVocab

    task = registry.get("captioning")
    (train, _, _), grouped = as_before(catalog.data_dir() / "flickr8k_1000" / "captions.txt")
    for sets in ((), ("data.min_count=3", "data.vocab_size=10000"), ("data.min_count=1", "data.vocab_size=500")):
        cfg = config("flickr8k_1000", *sets)
        prep = task.fit_preprocessing(cfg, task.load_data(cfg))
        d = cfg.data
        before = CaptionVocab.from_captions([grouped[n] for n in train], d.vocab_size, d.min_count, d.max_length)
        assert prep.words == before.words


def test_vocabulary_and_splits_are_those_of_the_table_read_whole(tmp_path, cache):
    """A shuffled table with quoted captions: the splits by sorted name, each caption, and the vocabulary of
    before; data.split_order=hash puts each image by the MD5 bucket of its name."""
    from seqapps.core import registry
    from seqapps.data.streaming import hash_role
    from tasks.captioning.data import CaptionVocab

    task = registry.get("captioning")
    table = write_source(tmp_path, 60, sizes=(12,))
    (train, val, test), grouped = as_before(table)
    cfg = config(tmp_path)
    splits = task.load_data(cfg)
    for stream, names in zip((splits.train, splits.val, splits.test), (train, val, test)):
        data = stream.materialize()
        assert data.names == names and data.captions == [grouped[n] for n in names]
        assert stream.n == sum(len(grouped[n]) for n in names) == sum(1 for _ in stream.rows())
    before = CaptionVocab.from_captions([grouped[n] for n in train], 10000, 1, 8)
    assert task.fit_preprocessing(cfg, splits).words == before.words
    hashed = task.load_data(config(tmp_path, "data.split_order=hash"))
    for role in ("train", "val", "test"):
        expected = [n for n in sorted(grouped) if hash_role(n, 0.1, 0.1) == role]
        got = getattr(hashed, role)
        assert (got.materialize().names if got is not None else []) == expected


def test_the_fitting_pass_is_cached_until_the_table_or_the_image_folder_changes(tmp_path, cache, monkeypatch):
    import time

    from tasks.captioning import data

    calls = []
    fit = data.fit_captions
    monkeypatch.setattr(data, "fit_captions", lambda *a, **k: calls.append(1) or fit(*a, **k))
    table = write_source(tmp_path, 30, sizes=(12,))
    first = data.load_caption_data(config(tmp_path).data, "captioning", verbose=False)
    second = data.load_caption_data(config(tmp_path).data, "captioning", verbose=False)
    assert len(calls) == 1 and first.info["fit"] == second.info["fit"]
    table.write_text(table.read_text() + "img00001.png,one more caption\n")
    os.utime(table, ns=(time.time_ns(), time.time_ns() + 10**9))  # a new modification time, whatever the clock
    third = data.load_caption_data(config(tmp_path).data, "captioning", verbose=False)
    assert len(calls) == 2 and sum(third.info["fit"]["rows"].values()) == 91
    (tmp_path / "images" / "extra.png").write_bytes(b"")  # the folder changes
    folder = tmp_path / "images"
    os.utime(folder, ns=(time.time_ns(), time.time_ns() + 2 * 10**9))
    data.load_caption_data(config(tmp_path).data, "captioning", verbose=False)
    assert len(calls) == 3
    data.load_caption_data(config(tmp_path, "data.val_fraction=0.2").data, "captioning", verbose=False)
    assert len(calls) == 4  # the split depends on the fractions


def test_a_bad_row_or_image_deep_in_a_table_names_its_line_or_is_skipped_and_counted(tmp_path, cache, capsys):
    from tasks.captioning.data import load_caption_data

    table = write_source(tmp_path, 2000, captions_per_image=2, sizes=(8,), bad_line=3456)
    with pytest.raises(DataError, match=r"captions.csv:3456: expected 2 fields as in the header, got 3 "
                                        r".*data.skip_bad_rows=true"):
        load_caption_data(config(tmp_path).data, "captioning", verbose=False)
    splits = load_caption_data(config(tmp_path, "data.skip_bad_rows=true").data, "captioning", verbose=False)
    fit = splits.info["fit"]
    assert fit["bad_rows"] == 1 and "captions.csv:3456" in fit["first_bad"] and not fit["bad_images"]
    assert sum(fit["rows"].values()) == 4000 and "skipped 1 bad row(s)" in capsys.readouterr().err
    assert sum(1 for _ in splits.train.rows()) == splits.train.n  # reading again skips it too

    lines = table.read_text().splitlines()
    del lines[3455]
    table.write_text("\n".join(lines) + "\n")
    (tmp_path / "images" / "img01234.png").write_bytes(b"\x89PNG\r\n\x1a\n cut short")
    first = 1 + next(i for i, line in enumerate(lines) if line.startswith("img01234.png"))
    with pytest.raises(DataError, match=rf"captions.csv:{first}: image img01234.png cannot be read or decoded as "
                                        r"JPEG, PNG, GIF or BMP \(.*img01234.png\)"):
        load_caption_data(config(tmp_path).data, "captioning", verbose=False)
    splits = load_caption_data(config(tmp_path, "data.skip_bad_rows=true").data, "captioning", verbose=False)
    fit = splits.info["fit"]
    assert fit["bad_images"] == ["img01234.png"] and sum(fit["rows"].values()) == 3998
    assert sum(fit["images"].values()) == 1999 and "1 image(s)" in capsys.readouterr().err
    assert all(name != "img01234.png" for stream in (splits.train, splits.val, splits.test)
               for name, _, _ in stream.rows())
    os.remove(tmp_path / "images" / "img00007.png")
    with pytest.raises(DataError, match=r"captions.csv:\d+: image img00007.png is not in .*images \(1 of 2000"):
        load_caption_data(config(tmp_path).data, "captioning", verbose=False)


def _decoded(blobs, size):
    import tensorflow as tf

    from seqapps.encoders.images import decode_batch

    pixels, valid = decode_batch(tf.constant(blobs, tf.string), size)
    assert all(valid.numpy())
    return pixels.numpy()


def test_training_batches_are_the_exports_decoding_of_the_raw_images(tmp_path, cache):
    """Every validation row (in file order) holds the pixels the export's signatures compute from the raw
    bytes (decode_batch: PNG, JPEG, another size, gray) and the caption's teacher-forcing ids; every
    training row's pixels are those of one of the training images; an epoch is ceil(captions / batch)."""
    from seqapps.core import registry

    task = registry.get("captioning")
    write_source(tmp_path, 40, captions_per_image=2, sizes=(32, 20, 45))
    from PIL import Image

    Image.new("L", (30, 40), 90).save(tmp_path / "images" / "img00003.png")  # gray, another shape
    cfg = config(tmp_path, "data.val_fraction=0.25", "data.test_fraction=0")
    splits = task.load_data(cfg)
    prep = task.fit_preprocessing(cfg, splits)
    train, val = task.datasets(cfg, prep, splits)
    rows = list(splits.val.rows())
    expected = _decoded([open(path, "rb").read() for _, path, _ in rows], 32)
    width = task.teacher_steps(cfg, splits)
    inputs, targets = prep.encode([c for _, _, c in rows])
    at = 0
    for x, y in val:
        n = len(y)
        np.testing.assert_array_equal(x["image"].numpy(), expected[at:at + n])
        np.testing.assert_array_equal(x["tokens"].numpy(), inputs[at:at + n, :width])
        np.testing.assert_array_equal(y.numpy(), targets[at:at + n, :width])
        at += n
    assert at == len(rows) == splits.val.n
    images = {p.tobytes() for p in _decoded([open(path, "rb").read() for _, path in
                                             splits.train.distinct_images()], 32)}
    batches = 0
    for x, _ in train:
        assert all(p.tobytes() in images for p in x["image"].numpy())
        batches += 1
    assert batches == -(-splits.train.n // 16) == int(train.cardinality())


def test_frozen_features_come_from_a_store_of_the_exports_encoding(tmp_path, cache):
    """A frozen encoder (small_cnn with a weights file): each validation row's features are the export's
    image_features of its decoded raw bytes, in float16; the store is written once and then read."""
    import keras
    import tensorflow as tf

    from seqapps.core import registry
    from seqapps.encoders import build_encoder
    from tasks.captioning.features import cache_root

    task = registry.get("captioning")
    encoder = build_encoder("small_cnn", "none", 32)
    weights = tmp_path / "cnn.weights.h5"
    encoder.save_weights(weights)
    write_source(tmp_path / "data", 30, captions_per_image=2, sizes=(32, 24))
    cfg = config(tmp_path / "data", "model.encoder_trainable=false", f"model.encoder_weights={weights}",
                 "data.val_fraction=0.3", "data.test_fraction=0")
    splits = task.load_data(cfg)
    prep = task.fit_preprocessing(cfg, splits)
    _, val = task.datasets(cfg, prep, splits)
    stores = sorted(cache_root().rglob("*.f16"))
    assert len(stores) == 2  # the training and validation image lists
    model = task.build_model(cfg, prep)
    rows = list(splits.val.rows())
    pixels = _decoded([open(path, "rb").read() for _, path, _ in rows], 32)
    expected = keras.ops.convert_to_numpy(model.image_features(tf.constant(pixels))).astype(np.float16)
    got = np.concatenate([x["features"].numpy() for x, _ in val])
    assert got.dtype == np.float16 and got.shape == expected.shape
    np.testing.assert_allclose(got.astype("float32"), expected.astype("float32"), rtol=2e-3, atol=2e-3)
    mtimes = [p.stat().st_mtime_ns for p in stores]
    task.datasets(cfg, prep, task.load_data(cfg))
    assert [p.stat().st_mtime_ns for p in sorted(cache_root().rglob("*.f16"))] == mtimes  # read, not written


@pytest.mark.slow
def test_captioning_trains_from_a_table_larger_than_its_in_memory_form_allows(tmp_path):
    """In a child process, a 600,000-row table over 500 images trains at about the peak memory of the
    demo (1.04x measured; the in-memory reader of before held every caption and its teacher-forcing ids
    several times over: 1.47x)."""
    folder = tmp_path / "big"
    gen, rng = np.random.default_rng(0), random.Random(0)
    (folder / "images").mkdir(parents=True)
    for i in range(500):
        (folder / "images" / f"im{i:04d}.png").write_bytes(image(gen, 16))
    with open(folder / "captions.csv", "w") as f:
        f.write("image,caption\n")
        for i in range(600_000):
            f.write(f"im{rng.randrange(500):04d}.png,{' '.join(rng.choices(WORDS, k=rng.randint(3, 9)))}\n")
    env = {**os.environ, "SEQAPPS_CACHE": str(tmp_path / "cache"), "TF_CPP_MIN_LOG_LEVEL": "2"}

    def peak(data):
        argv = [sys.executable, "-m", "seqapps", "train", "captioning", "--data", str(data), "--epochs", "1",
                "--preset", "none", *[a for s in TINY for a in ("--set", s)], "--set", "train.steps_per_epoch=3",
                "--set", "train.validation_steps=2", "--set", "data.demo_image_size=32",
                "--set", "data.shuffle_buffer=20000", "--no-eval",
                "--run-dir", str(tmp_path / "run"), "--overwrite"]
        return peak_memory_mb(argv, env)

    small, big = peak("demo"), peak(folder)
    assert big < 1.3 * small, (small, big)

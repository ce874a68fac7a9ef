"""char_lm on files of any size: the cached fitting pass writes the text once as ids, training reads
windows of that file, and the ids are the ones CharVocab and the export give the same text."""

from __future__ import annotations

import os
import random
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from seqapps.core.errors import DataError

DATA = Path(os.environ["SEQAPPS_DATA"])


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SEQAPPS_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def in_memory(text: str, val_fraction: float = 0.1, test_fraction: float = 0.0):
    """Today's reading of a text held whole: the contiguous split and CharVocab fitted on training."""
    from seqapps.data.splits import split
    from tasks.char_lm.data import CharVocab

    train, val, test = split(text, val_fraction, test_fraction, unit="characters")
    return CharVocab.from_text(train), train, val, test


def assert_same_as_in_memory(files, text, val_fraction=0.1, test_fraction=0.0):
    from tasks.char_lm.data import CharVocab, load_char_ids

    vocab, train, val, test = in_memory(text, val_fraction, test_fraction)
    splits = load_char_ids(files, val_fraction, test_fraction, verbose=False)
    fitted = CharVocab.fit(None, splits)
    assert (fitted.chars, fitted.start, fitted.warmup) == (vocab.chars, vocab.start, vocab.warmup)
    np.testing.assert_array_equal(splits.train.ids(), vocab.encode(train))
    np.testing.assert_array_equal(splits.val.ids(), vocab.encode(val))
    assert splits.val.materialize() == val
    if test is None:
        assert splits.test is None
    else:
        np.testing.assert_array_equal(splits.test.ids(), vocab.encode(test))
        assert splits.test.materialize() == test
    assert splits.info["fit"]["counts"] == {c: text.count(c) for c in set(text)}
    return splits


# -- the fitting pass ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", [pytest.param("tinyshakespeare", marks=pytest.mark.needs_data), "demo"])
def test_streamed_vocabulary_and_ids_equal_char_vocabs(name, cache, tmp_path):
    from tasks.char_lm.demo import text as demo_text

    if name == "demo":
        path = tmp_path / "demo.txt"
        path.write_text(demo_text(), encoding="utf-8")
    else:
        path = DATA / "tinyshakespeare" / "input.txt"
    text = path.read_text(encoding="utf-8")
    splits = assert_same_as_in_memory([path], text)
    assert splits.info["fit"]["ids"]["dtype"] == "uint8"
    assert len(splits.train) == len(text) - round(len(text) * 0.1)  # the boundary of the in-memory split


def test_odd_texts_fit_as_in_memory(cache, tmp_path, monkeypatch):
    """Chunk edges inside multi-byte characters, a BOM, CRLF, over 255 characters (uint16 ids), no
    newline (the start character is the most frequent, ties to the first met), characters only in
    the validation part (id 0), a folder of files joined by blank lines, a test slice."""
    import tasks.char_lm.data as data

    monkeypatch.setattr(data, "CHUNK_BYTES", 1000)
    rng = random.Random(0)
    wide = "".join(chr(0x4E00 + rng.randrange(600)) + rng.choice(" \r\n.é") for _ in range(3000))
    (tmp_path / "wide.txt").write_bytes(b"\xef\xbb\xbf" + wide.encode("utf-8"))
    splits = assert_same_as_in_memory([tmp_path / "wide.txt"], wide, 0.1, 0.05)
    assert splits.info["fit"]["ids"]["dtype"] == "uint16"

    flat = "ab" * 500 + "ba" * 300 + "xyz€"  # a and b tie; the validation part has x, y, z, €
    (tmp_path / "flat.txt").write_text(flat, encoding="utf-8")
    splits = assert_same_as_in_memory([tmp_path / "flat.txt"], flat, 0.1)
    assert splits.val.ids()[-4:].tolist() == [0, 0, 0, 0]

    folder = tmp_path / "folder"
    (folder / "sub").mkdir(parents=True)
    (folder / "b.txt").write_text("second file\r\n" * 40, encoding="utf-8")
    (folder / "sub" / "a.md").write_text("first, ünïcödé\n\n" * 50, encoding="utf-8")
    (folder / ".hidden.txt").write_text("never read")
    files = data.text_files(folder)
    assert_same_as_in_memory(files, data.read_text_source(folder), 0.2)


def test_bad_files_fail_as_when_read_whole(cache, tmp_path, monkeypatch):
    import tasks.char_lm.data as data

    monkeypatch.setattr(data, "CHUNK_BYTES", 64)
    bad = tmp_path / "latin1.txt"
    bad.write_bytes(("x" * 300 + "café").encode("latin-1"))
    with pytest.raises(DataError) as whole:
        data.read_text_source(bad)
    with pytest.raises(DataError) as streamed:
        data.load_char_ids([bad], 0.1, 0.0, verbose=False)
    assert str(streamed.value) == str(whole.value)
    (tmp_path / "blank.txt").write_text(" \n\n \n")
    with pytest.raises(DataError, match="empty"):
        data.load_char_ids([tmp_path / "blank.txt"], 0.1, 0.0, verbose=False)


def test_the_pass_is_cached_and_a_changed_file_invalidates_it(cache, tmp_path, monkeypatch):
    import tasks.char_lm.data as data

    path = tmp_path / "text.txt"
    path.write_text("to be or not to be\n\n" * 200, encoding="utf-8")
    calls = []
    real = data.fit_char_ids
    monkeypatch.setattr(data, "fit_char_ids", lambda *a, **k: calls.append(1) or real(*a, **k))
    first = data.load_char_ids([path], 0.1, 0.0, verbose=False)
    again = data.load_char_ids([path], 0.1, 0.0, verbose=False)
    assert len(calls) == 1 and again.info["fit"] == first.info["fit"]
    ids_file = Path(first.info["fit"]["ids"]["path"])
    assert ids_file.parent == cache / "fits" and ids_file.stat().st_size == len(path.read_text())

    data.load_char_ids([path], 0.2, 0.0, verbose=False)  # other fractions: another entry
    assert len(calls) == 2

    path.write_text("that is the question\n\n" * 200, encoding="utf-8")  # a changed file: fitted again
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10 ** 9))
    changed = data.load_char_ids([path], 0.1, 0.0, verbose=False)
    assert len(calls) == 3 and changed.info["fit"]["ids"]["path"] != str(ids_file)
    assert_same_as_in_memory([path], path.read_text(encoding="utf-8"))
    assert len(calls) == 3

    Path(changed.info["fit"]["ids"]["path"]).unlink()  # a lost ids file: fitted again
    data.load_char_ids([path], 0.1, 0.0, verbose=False)
    assert len(calls) == 4


# -- reading windows -------------------------------------------------------------------------------
def big_file(path: Path, n_bytes: int) -> Path:
    piece = (DATA / "tinyshakespeare" / "input.txt").read_bytes()
    with open(path, "wb") as f:
        for _ in range(n_bytes // len(piece) + 1):
            f.write(piece)
    return path


@pytest.mark.needs_data
@pytest.mark.parametrize("stateful", [True, False])
def test_training_reads_windows_never_the_whole_text(stateful, cache, tmp_path, monkeypatch):
    """The task's data for a 10 MB file: nothing reads it whole, Python holds a small part of it at
    a time, and the batches read no more than their windows."""
    import tasks.char_lm.data as data
    from seqapps.core import registry
    from seqapps.training.fit import resolve_config

    path = big_file(tmp_path / "big.txt", 10_000_000)
    size = path.stat().st_size
    task = registry.get("char_lm")
    cfg = resolve_config(task, str(path), overrides=["train.batch_size=16", "train.bptt=32",
                                                     f"train.stateful={str(stateful).lower()}"], preset="none")

    def refuse(*args, **kwargs):
        raise AssertionError("the training text is read whole")

    for name in ("read_text_file", "read_text_source"):
        monkeypatch.setattr(data, name, refuse)
    monkeypatch.setattr(Path, "read_text", refuse)
    monkeypatch.setattr(Path, "read_bytes", refuse)
    monkeypatch.setattr(data, "CHUNK_BYTES", 1 << 14)
    read = []
    windows = data.CharIds.windows
    monkeypatch.setattr(data.CharIds, "windows", lambda self, starts, length: read.append(len(starts) * length)
                        or windows(self, starts, length))

    tracemalloc.start()
    try:
        splits = task.load_data(cfg)
        prep = task.fit_preprocessing(cfg, splits)
        train, val = task.datasets(cfg, prep, splits)
        batches = list(train.take(3).as_numpy_iterator())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < size / 4, peak  # Python (numpy included) never held the text or its ids whole
    assert len(splits.train) > 9_000_000
    for x, y in batches:
        assert x.shape == (16, 32) and x.dtype == np.int32
        np.testing.assert_array_equal(x[:, 1:], y[:, :-1])
    assert 0 < sum(read) <= 16 * 33 * 100  # the batches taken and the few prefetched: windows, not the text
    x, y = next(val.as_numpy_iterator())
    with open(path, "rb") as f:  # tinyshakespeare is ASCII: a character is a byte
        f.seek(len(splits.train))
        expected = prep.encode(f.read(33).decode("ascii"))
    np.testing.assert_array_equal(x[0], expected[:32])
    np.testing.assert_array_equal(y[0], expected[1:])


@pytest.mark.needs_data
def test_batches_equal_the_in_memory_ones(cache):
    """Stateful streams, random windows (same seed: same batches) and validation windows read from the
    ids file equal those of the ids in memory."""
    from tasks.char_lm.data import load_char_ids
    from tasks.char_lm.streams import random_window_dataset, stateful_dataset, stream_windows, window_dataset

    splits = load_char_ids([DATA / "tinyshakespeare" / "input.txt"], 0.1, 0.0, verbose=False)
    ids = splits.train.ids()

    def same(a, b, n=6):
        for (x1, y1), (x2, y2) in zip(a.take(n).as_numpy_iterator(), b.take(n).as_numpy_iterator(), strict=True):
            np.testing.assert_array_equal(x1, x2)
            np.testing.assert_array_equal(y1, y2)

    same(stateful_dataset(splits.train, 64, 100, "t"), stateful_dataset(ids, 64, 100, "t"))
    x, y = stream_windows(ids, 64, 100)
    first = next(stateful_dataset(splits.train, 64, 100, "t").as_numpy_iterator())
    np.testing.assert_array_equal(first[0], x[0])
    np.testing.assert_array_equal(first[1], y[0])
    same(random_window_dataset(splits.train, 12, 64, seed=5), random_window_dataset(ids, 12, 64, seed=5))
    same(window_dataset(splits.val, 64, 100), window_dataset(splits.val.ids(), 64, 100), n=100)


def test_random_windows_past_the_exact_shuffle_are_a_permutation_each_epoch(monkeypatch):
    import tasks.char_lm.streams as streams

    for n in (1, 2, 3, 7, 100, 1000, 4097):
        for key in (0, 1, -5, 2 ** 62):
            assert sorted(streams.permuted(np.arange(n, dtype=np.uint64), n, key).tolist()) == list(range(n))
    monkeypatch.setattr(streams, "EXACT_SHUFFLE_WINDOWS", 0)
    ids = np.arange(1, 16 * 200 + 2, dtype=np.int32)  # 200 windows of 16
    ds = streams.random_window_dataset(ids, 8, 16, seed=3)
    assert int(ds.cardinality()) == 25

    def epoch(ds):
        batches = list(ds.as_numpy_iterator())
        for x, y in batches:
            np.testing.assert_array_equal(y, x + 1)
            np.testing.assert_array_equal(np.diff(x, axis=1), 1)
        return np.concatenate([x[:, 0] for x, _ in batches]) - 1

    one, two = epoch(ds), epoch(ds)
    assert len(one) == 200 and sorted(set(np.minimum(one // 16, 199))) == list(range(200))  # every window once
    assert (one % 16).std() > 0 and not np.array_equal(one, two)  # jittered, reshuffled each epoch
    np.testing.assert_array_equal(epoch(streams.random_window_dataset(ids, 8, 16, seed=3)), one)  # seeded


# -- the export reads text with the same ids ----------------------------------------------------------
def test_the_exports_lookup_gives_the_training_ids(cache, tmp_path):
    import tensorflow as tf

    from tasks.char_lm.data import CharVocab, load_char_ids

    rng = random.Random(1)
    alphabet = list("abcdefgh ,.\n\tÉé—€😀") + [chr(0x4E00 + i) for i in range(20)]
    text = "".join(rng.choice(alphabet) for _ in range(5000)) + "ßΩ"  # the last two never trained
    (tmp_path / "t.txt").write_text(text, encoding="utf-8")
    splits = load_char_ids([tmp_path / "t.txt"], 0.1, 0.0, verbose=False)
    vocab = CharVocab.fit(None, splits)
    lookup = vocab.lookup()

    def graph_ids(s):  # as tasks.char_lm.serving.reader reads its input
        return lookup(tf.strings.unicode_split(tf.constant([s]), "UTF-8", errors="replace")).numpy()[0].tolist()

    stored = np.concatenate([splits.train.ids(), splits.val.ids()])
    for _ in range(30):
        start = rng.randrange(len(text) - 60)
        piece = text[start:start + rng.randrange(1, 60)]
        assert graph_ids(piece) == stored[start:start + len(piece)].tolist() == vocab.encode(piece).tolist()
    assert graph_ids("ßΩ") == [0, 0] == stored[-2:].tolist()


@pytest.mark.slow
def test_training_and_scoring_from_a_file(cache, tmp_path):
    import seqapps

    path = tmp_path / "play.txt"
    from tasks.char_lm.demo import text as demo_text

    path.write_text(demo_text(20_000), encoding="utf-8")
    run = seqapps.train("char_lm", str(path), epochs=1, run_dir=tmp_path / "run", verbose=0, preset="none",
                        overrides=["model.units=8", "model.embedding_dim=8", "train.batch_size=8", "train.bptt=16",
                                   "train.steps_per_epoch=5", "train.patience=0", "data.eval_streams=4"])
    vocab, _, val, _ = in_memory(path.read_text(encoding="utf-8"))
    saved = run.task.load_preprocessing(run.config, run.dir)
    assert (saved.chars, saved.warmup) == (vocab.chars, vocab.warmup)
    assert run.metrics["val"]["chars"] == len(val) - 1

"""The one data layer: split helper, split-file finder, TFDS reader and its missing-split rule."""

from __future__ import annotations

import numpy as np
import pytest

from seqapps.core.config import DataConfig
from seqapps.data import sources
from seqapps.data.splits import find_split_files, split, split_indices, split_sizes
from seqapps.core.errors import DataError


def test_split_sizes_round_and_give_a_positive_fraction_one_item():
    assert split_sizes(1000, 0.1, 0.0) == (900, 100, 0)
    assert split_sizes(2001, 0.1, 0.0) == (1801, 200, 0)  # ud_english_ewt: the dev file's last 10% validates
    assert split_sizes(5, 0.1, 0.1) == (3, 1, 1)
    with pytest.raises(DataError, match="x: 2 examples are too few to split"):
        split_sizes(2, 0.5, 0.5, "x")


def test_split_orders_are_deterministic_and_disjoint():
    items = list(range(20))
    train, val, test = split(items, 0.2, 0.1)
    assert (train, val, test) == (items[:14], items[14:18], items[18:])  # sequential: train, then val, then test
    assert split("abcdefghij", 0.2, 0.0) == ("abcdefgh", "ij", None)   # strings are sliced, no test part
    a, b = split(items, 0.2, 0.1, order="shuffle", seed=3), split(items, 0.2, 0.1, order="shuffle", seed=3)
    assert a == b and sorted(a[0] + a[1] + a[2]) == items and a[0] != items[:14]
    assert split(items, 0.2, 0.1, order="shuffle", seed=4) != a
    pairs = ([f"s{i}" for i in range(200)], [f"t{i}" for i in range(200)])
    tr, va, te = split(pairs, 0.1, 0.1, keys=pairs[1])
    assert len(tr[0]) + len(va[0]) + len(te[0]) == 200 and va[0] and te[0]
    again = split((pairs[0][:50], pairs[1][:50]), 0.1, 0.1, keys=pairs[1][:50])
    assert set(again[1][1]) == set(va[1]) & set(pairs[1][:50])  # a key's part does not depend on the others
    tr_idx, va_idx, te_idx = split_indices(10, 0.2, 0.2)
    assert isinstance(tr_idx, range) and list(va_idx) == [6, 7] and list(te_idx) == [8, 9]


def test_find_split_files_by_word_and_suffix(tmp_path):
    for name in ["train.csv", "dev.tsv", "test_final.csv", "valid.csv", "notes.md", "train.md"]:
        (tmp_path / name).write_text("x")
    found = find_split_files(tmp_path, (".csv", ".tsv"))
    assert {k: v.name for k, v in found.items()} == {"train": "train.csv", "val": "dev.tsv", "test": "test_final.csv"}
    assert find_split_files(tmp_path, (".txt",), required=False) == {}
    with pytest.raises(DataError, match="expected a file with 'train' in its name.*for example train.txt"):
        find_split_files(tmp_path, (".txt",))


def _fake_tfds(monkeypatch, splits: dict):
    """tfds_load answering from ``splits`` (name -> examples); others are missing splits."""
    def load(name, split_name, data_dir=None):
        if split_name not in splits:
            raise DataError(f"tfds:{name} has no split {split_name!r}")
        return splits[split_name]
    monkeypatch.setattr(sources, "tfds_load", load)
    import tensorflow_datasets as tfds

    monkeypatch.setattr(tfds, "as_numpy", lambda ds: ds)


def test_tfds_reader_carves_a_missing_validation_split_and_leaves_test_absent(monkeypatch):
    _fake_tfds(monkeypatch, {"train": list(range(10)), "test": [100, 101]})
    parts = sources.read_tfds("fake", lambda examples, split_name: list(examples), 0.2)
    assert parts == {"train": list(range(8)), "val": [8, 9], "test": [100, 101]}
    _fake_tfds(monkeypatch, {"train": list(range(10)), "dev": [7]})
    parts = sources.read_tfds("fake", lambda examples, split_name: list(examples), 0.2)
    assert parts == {"train": list(range(10)), "val": [7], "test": None}  # its own dev split; no test is carved
    _fake_tfds(monkeypatch, {"test": [1]})
    with pytest.raises(DataError, match="has no split 'train'"):
        sources.read_tfds("fake", lambda examples, split_name: list(examples), 0.2)


def test_every_task_reads_tfds_through_the_one_reader(monkeypatch):
    """Each task's ``tfds:`` source goes through ``sources.read_tfds`` (and forecasting refuses it)."""
    from seqapps.core import registry
    from seqapps.training.fit import resolve_config

    calls = []
    real = sources.read_tfds
    monkeypatch.setattr(sources, "read_tfds", lambda name, *a, **k: calls.append(name) or real(name, *a, **k))
    examples = {
        "sentiment": {"text": b"good film", "label": 1},
        "pos": {"tokens": np.array([b"the", b"dog"]), "upos": np.array([b"DET", b"NOUN"])},
        "translation": {"fr": b"bonjour", "en": b"hello"},
        "char_lm": {"text": b"to be or not to be, that is the question " * 4},
    }
    for task_name, example in examples.items():
        # distinct texts: sentiment and translation split by the hash of a text, so copies of one text
        # share a split
        rows = [{k: (v + b" %d" % i if k in ("fr", "en", "text") and task_name != "char_lm" else v)
                 for k, v in example.items()} for i in range(20)]
        rows = [dict(row, label=i % 2) if "label" in row else row for i, row in enumerate(rows)]
        _fake_tfds(monkeypatch, {"train": rows, "test": rows[:4]})
        task = registry.get(task_name)
        splits = task.load_data(resolve_config(task, "tfds:fake"))
        assert splits.val is not None and len(splits.val) and splits.test is not None, task_name
    assert calls == ["fake"] * len(examples)
    task = registry.get("forecasting")
    with pytest.raises(DataError, match="tfds:fake: the forecasting task reads CSV files"):
        task.load_data(resolve_config(task, "tfds:fake"))


def test_tfds_captions_offline_with_mock_data():
    import tensorflow_datasets as tfds

    from tasks.captioning.data import load_caption_data

    with tfds.testing.mock_data(num_examples=3):
        splits = load_caption_data(DataConfig(source="tfds:coco_captions"), "captioning")
    assert (len(splits.train), len(splits.val), len(splits.test)) == (3, 3, 3)
    assert splits.train.read(0)[:2] == b"\xff\xd8" and all(isinstance(c, str) for c in splits.train.captions[0])


def test_tfds_pos_and_char_lm_offline_with_mock_data():
    import tensorflow_datasets as tfds

    from seqapps.core import registry
    from seqapps.core.task import whole
    from seqapps.training.fit import resolve_config

    pos, char_lm = registry.get("pos"), registry.get("char_lm")
    with tfds.testing.mock_data(num_examples=4):
        tagged = pos.load_data(resolve_config(pos, "tfds:xtreme_pos/xtreme_pos_en"))
        text = char_lm.load_data(resolve_config(char_lm, "tfds:tiny_shakespeare"))
    assert len(tagged.train) == len(tagged.val) == len(tagged.test) == 4
    words, tags = whole(tagged.train)[0]
    assert len(words) == len(tags) and all(isinstance(t, str) for t in tags)
    assert isinstance(text.train, str) and text.val and text.test

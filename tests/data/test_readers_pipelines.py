"""Readers and pipelines: table errors, bucketed and full batches, text standardization."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf

from seqapps.core import registry
from seqapps.data.pipeline import bucketed_batches, default_boundaries
from seqapps.data.readers import read_table
from seqapps.core.errors import ConfigError, DataError


def test_read_table_errors_name_the_file(tmp_path):
    good = tmp_path / "a.tsv"
    good.write_text("label\tsentence\n1\tgood \"quoted\" film\n0\tbad\n")
    frame = read_table(good, ["label", "sentence"])
    assert frame["sentence"].tolist() == ['good "quoted" film', "bad"]
    with pytest.raises(DataError, match=r"a.tsv: no column 'text'; columns are: label, sentence"):
        read_table(good, ["text"])
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match="empty.csv: the file is empty"):
        read_table(tmp_path / "empty.csv")
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n1,2,3,4\n")
    with pytest.raises(DataError, match="bad.csv: malformed CSV"):
        read_table(tmp_path / "bad.csv")
    (tmp_path / "latin.csv").write_bytes("a,b\n\xe9t\xe9,1\n".encode("latin-1"))
    with pytest.raises(DataError, match="not UTF-8"):
        read_table(tmp_path / "latin.csv")


def test_bucketing_groups_similar_lengths_and_keeps_every_example():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 60, size=300)
    rows = tf.ragged.constant([list(range(1, n + 1)) for n in lengths])
    ds = bucketed_batches(rows, tf.range(300), lengths, 16, shuffle=True, seed=1)
    seen, batches, widths = [], 0, set()
    for x, y in ds:
        batches += 1
        row_lengths = (x.numpy() != 0).sum(1)
        edges = default_boundaries(int(lengths.max()) + 1) + [int(lengths.max()) + 1]
        bucket = np.searchsorted(edges, row_lengths, side="right")
        assert len(set(bucket)) == 1  # one bucket per batch
        assert x.shape[1] == edges[bucket[0]] - 1  # padded to the bucket's edge: a few shapes in all
        widths.add(x.shape[1])
        seen += y.numpy().tolist()
    assert sorted(seen) == list(range(300))
    assert batches == int(ds.cardinality()) and len(widths) <= len(edges)


@pytest.mark.parametrize("shuffle", [True, False])
def test_full_batches_leave_no_odd_sized_batch_and_cut_no_example(shuffle):
    rng = np.random.default_rng(2)
    lengths = rng.integers(1, 40, size=301)
    rows = tf.ragged.constant([list(range(1, n + 1)) for n in lengths])
    ds = bucketed_batches(rows, tf.range(301), lengths, 16, shuffle=shuffle, seed=4, full=True)
    sizes, shapes, seen = [], set(), []
    for x, y in ds:
        x, y = x.numpy(), y.numpy()
        sizes.append(len(y))
        shapes.add(x.shape)
        np.testing.assert_array_equal((x != 0).sum(1), lengths[y])  # every row whole, padded further at most
        seen += y.tolist()
    assert len(sizes) == int(ds.cardinality())
    if shuffle:  # training: one shape per bucket; the only repeats top up the longest bucket's last batch
        assert set(sizes) == {16} and len(shapes) == len({s[1] for s in shapes})
        assert set(seen) == set(range(301)) and len(seen) == 16 * math.ceil(301 / 16)
    else:  # validation: every example once; only the longest bucket's batch may end short
        assert sorted(seen) == list(range(301))
        assert [s for s in sizes if s != 16] == [301 % 16] and sizes[-1] == 301 % 16
    partial = bucketed_batches(rows, tf.range(301), lengths, 16, shuffle=shuffle, seed=4)
    assert len({x.shape for x, _ in partial}) > len(shapes)  # without it, more shapes to compile


def test_full_batches_follow_the_backend_unless_set():
    train = registry.get("sentiment").default_config().train
    for backend, setting, full in [("jax", "auto", True), ("tensorflow", "auto", False), ("torch", "auto", False),
                                   ("tensorflow", "true", True), ("jax", "false", False)]:
        train.backend, train.full_batches = backend, setting
        assert train.fills_batches() is full
    cfg = registry.get("sentiment").default_config()
    with pytest.raises(ConfigError, match="train.full_batches"):
        registry.get("sentiment").validate(cfg.override(["train.full_batches=yes"]))


def test_bucketed_batches_are_the_batches_bucketing_the_examples_gives():
    """Only indices are shuffled and bucketed; the batches (order, rows, padding) are the ones the
    examples themselves give through tf.data's shuffle + bucket_by_sequence_length."""
    rng = np.random.default_rng(3)
    lengths = rng.integers(1, 30, size=200)
    words = tf.ragged.constant([[list(range(1, rng.integers(1, 6) + 1)) for _ in range(n)] for n in lengths])
    tags = tf.ragged.constant([list(rng.integers(1, 9, size=n)) for n in lengths])
    features = {"words": words, "chars": words}
    ds = bucketed_batches(features, tags, lengths, 16, shuffle=True, seed=5, padding_value=-1)
    edges = default_boundaries(int(lengths.max()) + 1) + [int(lengths.max()) + 1]
    examples = tf.data.Dataset.from_tensor_slices(
        (words.to_tensor(-1, shape=[None, None, 5]), tags.to_tensor(-1), lengths.astype(np.int32)))
    # the reference: every example densified on its own, then shuffled and bucketed (rows trimmed to their length)
    reference = examples.map(lambda w, t, n: (w[:n], t[:n], n)).shuffle(200, seed=5).bucket_by_sequence_length(
        lambda w, t, n: n, edges, [16] * (len(edges) + 1), padding_values=(-1, -1, 0), pad_to_bucket_boundary=True)
    for _ in range(2):  # a second epoch reshuffles the same way
        got = [(x["words"].numpy(), y.numpy()) for x, y in ds]
        want = [(w.numpy(), t.numpy()) for w, t, _ in reference]
        assert len(got) == len(want) == int(ds.cardinality())
        for (w, t), (w_ref, t_ref) in zip(got, want):
            # within a real word, its missing characters are 0; padding words are -1 throughout
            w_ref = np.where((w_ref == -1) & (t_ref[..., None] != -1), 0, w_ref)
            np.testing.assert_array_equal(t, t_ref)
            np.testing.assert_array_equal(w, w_ref)
    unshuffled = [y.numpy() for _, y in bucketed_batches(features, tags, lengths, 16, shuffle=False)]
    assert sorted(len(b) for b in unshuffled) == sorted(len(b) for b, _ in got)


def test_standardize_keeps_accented_words_whole_and_splits_punctuation():
    from seqapps.data.text import standardize

    out = [x.decode() for x in standardize(tf.constant(["It's GREAT! Don't go, Élan.", "crème brûlée 東京!", ""])).numpy()]
    assert out == ["it 's great ! do n't go , élan .", "crème brûlée 東京 !", ""]

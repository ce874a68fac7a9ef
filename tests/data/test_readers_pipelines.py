"""The shared core: registry, configs, CLI errors, readers, pipelines, layers, strategies."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import ROOT, needs_data, run_cli, run_main
from seqapps.core import registry
from seqapps.core.config import keys
from seqapps.data.pipeline import bucketed_batches, default_boundaries
from seqapps.data.readers import read_table
from seqapps.core.errors import ConfigError, DataError, SeqappsError
from seqapps.layers import MaskedPooling, recurrent_layer, recurrent_stack


# -- registry and config --------------------------------------------------------------------
def test_registry_lists_sentiment_and_rejects_unknown():
    assert "sentiment" in registry.names()
    assert registry.get("sentiment").topology == "many-to-one"
    with pytest.raises(SeqappsError, match="unknown task 'nope'; expected one of: .*sentiment"):
        registry.get("nope")


def test_config_overrides_parse_types_and_reject_unknown_keys():
    cfg = registry.get("sentiment").default_config()
    cfg.override(["model.cell=gru", "model.bidirectional=false", "train.learning_rate=0.01",
                  "model.layers=2", "data.label_names=neg,pos"])
    assert (cfg.model.cell, cfg.model.bidirectional, cfg.train.learning_rate, cfg.model.layers) == ("gru", False, 0.01, 2)
    assert cfg.data.label_names == ["neg", "pos"]
    with pytest.raises(ConfigError, match=r"unknown config key 'model.celll'; valid keys: .*model\.cell"):
        cfg.override(["model.celll=gru"])
    with pytest.raises(ConfigError, match="model.units expects int, got 'many'"):
        cfg.override(["model.units=many"])
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        cfg.override(["model.units"])


def test_config_json_round_trip(tmp_path):
    task = registry.get("sentiment")
    cfg = task.default_config().override(["model.cell=rnn", "data.label_names=a,b"])
    cfg.save(tmp_path / "c.json")
    again = task.config_class.load(tmp_path / "c.json")
    assert again == cfg and "train.clipnorm" in keys(again)


# -- CLI ---------------------------------------------------------------------------------------
@needs_data
def test_cli_lists_tasks_and_datasets():
    out = run_cli("tasks")
    assert out.returncode == 0 and "sentiment" in out.stdout and "many-to-one" in out.stdout
    out = run_cli("datasets")
    assert out.returncode == 0
    line = next(x for x in out.stdout.splitlines() if x.startswith("sst2 "))
    assert " yes " in line  # SEQAPPS_DATA points at the shared datasets


@pytest.mark.parametrize("args, message", [
    (["train", "nope"], "unknown task 'nope'"),
    (["train", "sentiment", "--set", "model.nope=1"], "unknown config key 'model.nope'"),
    (["train", "sentiment", "--epochs", "ten"], "expected a whole number, got 'ten'"),
    (["train", "sentiment", "--data", "no_such_set"], "no such dataset or file 'no_such_set'"),
    (["train", "sentiment", "--data", "/no/such/file.csv"], "no such dataset or file"),
    (["train", "sentiment", "--data", "tfds:imdb_reviews"], "tfds:imdb_reviews is not downloaded yet and there is no internet"),
    pytest.param(["train", "sentiment", "--data", "sst2", "--set", "data.text_column=review"],
                 "no text column 'review'; columns are: label, sentence", marks=needs_data),
    (["predict", "/no/such/export", "hi"], "no such export or run directory"),
])
def test_cli_errors_are_one_line_with_exit_code_2(args, message, tmp_path, capsys):
    """In process (one TensorFlow import for all cases); the subprocess test below checks a real exit."""
    argv = [*args, "--run-dir", str(tmp_path / "run")] if args[0] == "train" else list(args)
    code, lines = run_main(argv, capsys)
    assert code == 2, lines
    assert len(lines) == 1 and message in lines[0], lines
    assert not any("Traceback" in x for x in lines)
    assert not (tmp_path / "run").exists()  # nothing written on bad input


def test_cli_error_exits_the_process_with_code_2(tmp_path):
    out = run_cli("train", "sentiment", "--set", "model.nope=1", "--run-dir", tmp_path / "run")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    lines = [x for x in out.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: unknown config key 'model.nope'"), out.stderr


# -- readers and pipelines ---------------------------------------------------------------------
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


# -- layers ----------------------------------------------------------------------------------------
def test_recurrent_factory_keeps_cudnn_eligible_defaults():
    cfg = registry.get("sentiment").default_config().model
    for cell, cls in [("lstm", keras.layers.LSTM), ("gru", keras.layers.GRU), ("rnn", keras.layers.SimpleRNN)]:
        cfg.cell, cfg.bidirectional = cell, True
        layer = recurrent_layer(cfg, return_sequences=True)
        assert isinstance(layer, keras.layers.Bidirectional) and isinstance(layer.forward_layer, cls)
        inner = layer.forward_layer
        assert inner.cell.recurrent_dropout == 0 and not inner.unroll and inner.cell.use_bias
        if cell in ("lstm", "gru"):
            assert inner.cell.activation is keras.activations.tanh
            assert inner.cell.recurrent_activation is keras.activations.sigmoid
        if cell == "gru":
            assert inner.cell.reset_after
    cfg.cell = "transformer"
    with pytest.raises(ConfigError, match="model.cell must be one of rnn, lstm, gru"):
        recurrent_layer(cfg)


def test_recurrent_stack_masks_padding():
    cfg = registry.get("sentiment").default_config().model
    cfg.units, cfg.layers, cfg.bidirectional = 8, 2, True
    inputs = keras.Input((None,), dtype="int32")
    x = keras.layers.Embedding(10, 4, mask_zero=True)(inputs)
    model = keras.Model(inputs, recurrent_stack(x, cfg))
    short = model(np.array([[3, 4, 5]])).numpy()
    padded = model(np.array([[3, 4, 5, 0, 0, 0]])).numpy()
    np.testing.assert_allclose(short, padded, atol=1e-6)


def test_masked_pooling_ignores_padding_and_serializes():
    x = np.array([[[1.0, -2.0], [5.0, 7.0], [100.0, 100.0]]], dtype="float32")
    mask = np.array([[True, True, False]])
    layer = MaskedPooling("max_mean")
    out = layer(x, mask=mask).numpy()
    np.testing.assert_allclose(out, [[5.0, 7.0, 3.0, 2.5]])
    np.testing.assert_allclose(layer(x, mask=np.zeros((1, 3), bool)).numpy(), [[0, 0, 0, 0]])
    again = MaskedPooling.from_config(layer.get_config())
    assert again.mode == "max_mean"


# -- training infrastructure ---------------------------------------------------------------------
def test_killed_run_resumes_from_its_backup(tmp_path):
    run_dir = tmp_path / "run"
    args = [sys.executable, "-m", "seqapps", "train", "sentiment", "--data", "demo", "--epochs", "3",
            "--run-dir", str(run_dir), "--set", "train.steps_per_epoch=100", "--set", "train.backup_every=5",
            "--set", "model.units=8", "--set", "train.patience=0"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    history = run_dir / "history.csv"
    deadline = time.time() + 240

    def backed_up_epoch():  # the file may be mid-write or just replaced: read it when it is whole
        try:
            return json.loads((run_dir / "backup" / "training_metadata.json").read_text())["epoch"]
        except (OSError, ValueError, KeyError):
            return -1

    while time.time() < deadline:  # wait until epoch 1 is logged and epoch 2 has a mid-epoch backup
        if history.exists() and len(history.read_text().splitlines()) >= 2 and backed_up_epoch() >= 1:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    epochs_before = len(history.read_text().splitlines()) - 1
    assert 1 <= epochs_before < 3, "the run finished before it could be interrupted"
    again = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "resuming the interrupted run" in again.stderr
    epochs = [int(line.split(",")[0]) for line in history.read_text().splitlines()[1:]]
    assert epochs == [0, 1, 2]  # continued; did not start over at epoch 0
    assert not (run_dir / "backup").exists() and (run_dir / "metrics.json").exists()


def test_subword_vectors_give_unseen_words_a_vector_and_padding_zeros():
    from seqapps.layers.subwords import SubwordEmbedding, dense_char_ngram_ids

    ids = dense_char_ngram_ids(tf.constant([["unwatchable", "", "a"], ["unwatchably", "film", ""]]), 500)
    assert ids.dtype == tf.int64 and ids.shape[:2] == (2, 3)
    assert np.all(ids[0, 1] == 0) and np.all(ids[1, 2] == 0) and np.all(ids[0, 2, :1] > 0)
    assert int(tf.reduce_max(ids)) <= 500  # ids are 1..buckets; 0 is padding
    layer = SubwordEmbedding(6, buckets=500)
    out = keras.ops.convert_to_numpy(layer(ids))
    assert out.shape == (2, 3, 6)
    assert np.all(out[0, 1] == 0) and np.all(out[1, 2] == 0) and np.any(out[0, 2] != 0)
    # words sharing most n-grams get close vectors; an unrelated word does not
    near, far = np.linalg.norm(out[0, 0] - out[1, 0]), np.linalg.norm(out[0, 0] - out[1, 1])
    assert near < far
    # the padding of the n-gram axis does not change a word's vector
    wider = tf.pad(ids, [[0, 0], [0, 0], [0, 7]])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(wider)), out, atol=1e-6)
    again = SubwordEmbedding.from_config(layer.get_config())
    assert (again.dim, again.buckets, again.output_dim) == (6, 500, 0)
    # a narrow table projected to the model's width: same padding rules, one more weight
    narrow = SubwordEmbedding(3, buckets=500, output_dim=6)
    projected = keras.ops.convert_to_numpy(narrow(ids))
    assert projected.shape == (2, 3, 6) and np.all(projected[0, 1] == 0) and np.any(projected[0, 2] != 0)
    assert [tuple(w.shape) for w in narrow.weights] == [(501, 3), (3, 6)]
    assert SubwordEmbedding.from_config(narrow.get_config()).output_dim == 6
    empty = dense_char_ngram_ids(tf.zeros([0, 4], tf.string), 500)
    assert empty.shape[0] == 0 and empty.shape[1] == 4


def test_standardize_keeps_accented_words_whole_and_splits_punctuation():
    from seqapps.data.text import standardize

    out = [x.decode() for x in standardize(tf.constant(["It's GREAT! Don't go, Élan.", "crème brûlée 東京!", ""])).numpy()]
    assert out == ["it 's great ! do n't go , élan .", "crème brûlée 東京 !", ""]


def _rates(opt, steps) -> list[float]:
    """The optimizer's learning rate at each step count (its current rate follows ``iterations``)."""
    out = []
    for step in steps:
        opt.iterations.assign(step)
        out.append(float(opt.learning_rate))
    return out


def test_cosine_decay_falls_to_zero_over_all_steps_and_needs_them():
    from seqapps.core.config import TrainConfig
    from seqapps.training.fit import make_optimizer

    rates = _rates(make_optimizer(TrainConfig(learning_rate=0.01, decay="cosine"), total_steps=100), (0, 50, 100))
    assert rates[0] == pytest.approx(0.01) and rates[1] == pytest.approx(0.005)
    assert rates[2] == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ConfigError, match="set train.steps_per_epoch"):
        make_optimizer(TrainConfig(decay="cosine"))
    with pytest.raises(ConfigError, match="train.decay must be none or cosine"):
        make_optimizer(TrainConfig(decay="linear"), total_steps=10)


def test_warmup_rises_linearly_then_decays_or_holds():
    from seqapps.core.config import TrainConfig
    from seqapps.training.fit import make_optimizer

    cosine = _rates(make_optimizer(TrainConfig(learning_rate=0.01, decay="cosine", warmup=10), total_steps=110),
                   (0, 5, 10, 60, 110))
    assert cosine == pytest.approx([0.0, 0.005, 0.01, 0.005, 0.0], abs=1e-7)
    held = _rates(make_optimizer(TrainConfig(learning_rate=0.01, warmup=4)), (0, 2, 4, 1000))
    assert held == pytest.approx([0.0, 0.005, 0.01, 0.01], abs=1e-7)
    with pytest.raises(ConfigError, match="train.warmup=10 leaves no batch"):
        make_optimizer(TrainConfig(decay="cosine", warmup=10), total_steps=10)

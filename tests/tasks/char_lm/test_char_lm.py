"""char_lm: TBPTT batching, carried state, sampling, export signatures, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import run_cli
from seqapps.core.errors import DataError

TINY = ["model.units=24", "model.embedding_dim=16", "train.batch_size=8", "train.bptt=24", "train.patience=0",
        "data.eval_streams=4"]


def decode_all(strings):
    return [s.decode("utf-8") for s in strings]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    import seqapps

    root = tmp_path_factory.mktemp("char_lm")
    run = seqapps.train("char_lm", "demo", epochs=2, overrides=TINY, run_dir=root / "run", verbose=0)
    export_dir = run.export(root / "export")
    return run, export_dir


# -- batching ------------------------------------------------------------------------------
def test_stateful_batches_continue_each_stream_in_the_same_row():
    from tasks.char_lm.streams import stateful_dataset, stream_windows

    ids = np.arange(1, 200, dtype=np.int32)
    x, y = stream_windows(ids, batch_size=3, bptt=10)
    assert x.shape == (6, 3, 10) and y.shape == (6, 3, 10)
    np.testing.assert_array_equal(y, x + 1)  # targets are the next character
    for k in range(len(x) - 1):
        for row in range(3):
            assert x[k + 1, row, 0] == x[k, row, -1] + 1, (k, row)  # the next window of the same stream
    assert len({int(x[0, r, 0]) for r in range(3)}) == 3           # rows are different streams
    batches = list(stateful_dataset(ids, 3, 10, "text").as_numpy_iterator())
    np.testing.assert_array_equal(np.stack([b[0] for b in batches]), x)


def test_random_windows_are_shifted_pairs_and_too_short_text_fails():
    from seqapps.core.errors import DataError
    from tasks.char_lm.streams import random_window_dataset, stream_windows

    ids = np.arange(1, 500, dtype=np.int32)
    batches = list(random_window_dataset(ids, 4, 16, seed=1).as_numpy_iterator())
    assert len(batches) == (len(ids) - 1) // 16 // 4
    for x, y in batches:
        assert x.shape == (4, 16)
        np.testing.assert_array_equal(y, x + 1)
        np.testing.assert_array_equal(np.diff(x, axis=1), 1)  # contiguous windows
    with pytest.raises(DataError, match="too short"):
        stream_windows(np.arange(50), batch_size=8, bptt=10)


def test_reset_callback_zeroes_the_carried_state():
    import keras

    from seqapps.training.callbacks import ResetStates

    inp = keras.Input(batch_shape=(2, None), dtype="int32")
    x = keras.layers.Embedding(5, 4)(inp)
    layer = keras.layers.GRU(3, stateful=True, return_sequences=True)
    model = keras.Model(inp, layer(x))
    model(np.ones((2, 4), dtype="int32"))
    assert np.abs(layer.states[0].numpy()).sum() > 0
    cb = ResetStates()
    cb.set_model(model)
    cb.on_epoch_begin(0)
    assert np.abs(layer.states[0].numpy()).sum() == 0


# -- reading text ---------------------------------------------------------------------------
def test_text_sources_and_contiguous_split(tmp_path):
    from tasks.char_lm.data import read_text_source
    from seqapps.data.splits import split
    from tasks.char_lm.task import CharLMData

    (tmp_path / "b.txt").write_text("second file\n")
    (tmp_path / "a.txt").write_text("first file\n")
    (tmp_path / ".hidden.txt").write_text("not read")
    assert read_text_source(tmp_path) == "first file\n\n\nsecond file\n"
    text = "".join(chr(97 + i % 26) for i in range(1000))
    data = CharLMData()
    train, val, test = split(text, data.val_fraction, data.test_fraction)
    assert train + val == text and len(val) == 100 and test is None


@pytest.mark.slow
def test_binary_and_undecodable_files_fail_with_one_line(tmp_path):
    from seqapps.core.errors import DataError
    from tasks.char_lm.data import read_text_source

    (tmp_path / "bin.txt").write_bytes(b"abc\x00\x01\x02")
    (tmp_path / "latin1.txt").write_bytes("café".encode("latin-1"))
    with pytest.raises(DataError, match="binary"):
        read_text_source(tmp_path / "bin.txt")
    with pytest.raises(DataError, match="not UTF-8"):
        read_text_source(tmp_path / "latin1.txt")
    proc = run_cli("train", "char_lm", "--data", tmp_path / "bin.txt", "--run-dir", tmp_path / "run")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"error: {tmp_path / 'bin.txt'}: looks like a binary file "
                                                "(NUL bytes); expected UTF-8 text"]
    assert not (tmp_path / "run").exists()


# -- the model ---------------------------------------------------------------------------------
@pytest.mark.slow
def test_carried_state_changes_the_loss(trained):
    import keras

    from tasks.char_lm.data import CharVocab

    from tasks.char_lm.streams import stream_windows

    run, _ = trained
    model = run.load_model()
    from tasks.char_lm.demo import text

    ids = CharVocab.load(run.dir).encode(text(5000, seed=9))
    x, y = stream_windows(ids, batch_size=8, bptt=24)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    rnn = [layer for layer in model.layers if getattr(layer, "stateful", False)]
    assert rnn, "the stateful run trains a stateful model"

    def loss_on(k, warm):
        for layer in rnn:
            layer.reset_state()
        for j in range(k - warm, k):
            model(x[j], training=False)
        return float(loss(y[k], model(x[k], training=False)))

    reset, carried = loss_on(5, 0), loss_on(5, 5)
    assert abs(reset - carried) > 1e-3
    assert carried < reset  # context from earlier windows helps a model trained with it


@pytest.mark.slow
def test_tiny_batch_overfits():
    import keras

    from tasks.char_lm.task import CharLM

    from tasks.char_lm.data import CharVocab

    from tasks.char_lm.streams import stream_windows

    task = CharLM()
    cfg = task.default_config().override(["model.units=32", "train.batch_size=2", "train.stateful=false"])
    text = "to be or not to be, that is the question. " * 3
    vocab = CharVocab.from_text(text)
    x, y = stream_windows(vocab.encode(text), batch_size=2, bptt=60)
    model = task.build_model(cfg, vocab)
    task.compile(model, cfg, keras.optimizers.Adam(0.02), vocab)
    history = model.fit(x[0], y[0], epochs=80, verbose=0)
    assert history.history["loss"][-1] < 0.3 < history.history["loss"][0]


@pytest.mark.slow
def test_sampling_at_temperature_to_zero_is_greedy_and_seeds_repeat(trained):
    run, export_dir = trained
    import seqapps

    p = seqapps.load(export_dir)
    greedy = p.generate("ALDA:\n", length=60, temperature=0)
    for seed in (1, 2, 3):
        assert p.generate("ALDA:\n", length=60, temperature=1e-6, seed=seed) == greedy
    a = p.generate("ALDA:\n", length=80, temperature=1.0, seed=7)
    assert a == p.generate("ALDA:\n", length=80, temperature=1.0, seed=7)
    assert a != p.generate("ALDA:\n", length=80, temperature=1.0, seed=8)
    assert len(a) == 80 and set(a) <= set(p.metadata["chars"])
    k1 = p.generate("ALDA:\n", length=40, temperature=1.0, top_k=1, seed=3)
    assert k1 == p.generate("ALDA:\n", length=40, temperature=0)  # top-1 is greedy
    assert len(p.generate("ALDA:\n", length=40, temperature=1.0, top_p=0.5, seed=3)) == 40


@pytest.mark.slow
def test_bad_generation_inputs_have_documented_behaviour(trained):
    from seqapps.core.errors import ConfigError

    _, export_dir = trained
    import seqapps

    p = seqapps.load(export_dir)
    assert p.generate("ALDA", length=0, seed=1) == ""
    assert len(p.generate("", length=30, seed=1)) == 30         # empty prime: right after the warm-up passage
    assert p.metadata["warmup"].endswith("\n\n") and len(p.metadata["warmup"]) == 256
    # characters outside the vocabulary are skipped
    assert p.generate("AL\u20acDA", length=30, temperature=0) == p.generate("ALDA", length=30, temperature=0)
    assert len(p.generate("\u20ac\u20ac", length=10, seed=1)) == 10
    batch = p.generate(["ALDA", "", "BERIC:"], length=12, seed=4)  # one text per prime, repeatable
    assert batch == p.generate(["ALDA", "", "BERIC:"], length=12, seed=4) and len(set(batch)) == 3
    assert batch[0] == p.generate("ALDA", length=12, seed=4)
    for kwargs, match in [({"length": 100_000}, "length"), ({"length": -1}, "length"),
                          ({"temperature": -0.5}, "temperature"), ({"top_k": -1}, "top_k"),
                          ({"top_p": 0.0}, "top_p")]:
        with pytest.raises(ConfigError, match=match):
            p.generate("ALDA", **kwargs)
    # the raw signature clips the length, and refuses a temperature or top_p outside its range by name
    out = p.call(prime=["ALDA"], length=-5, temperature=1.0, top_k=0, top_p=1.0, seed=1)
    assert out["text"].tolist() == [b""] and out["length"].tolist() == [0]
    for bad, name in [({"temperature": -1.0}, "temperature"), ({"temperature": float("inf")}, "temperature"),
                      ({"top_p": float("nan")}, "top_p")]:
        with pytest.raises(DataError, match=name):
            p.call(prime=["ALDA"], **{"length": 20, "temperature": 1.0, "top_k": 0, "top_p": 1.0, "seed": 1, **bad})


@pytest.mark.slow
def test_score_matches_the_training_loss_scale(trained):
    run, _ = trained
    metrics = run.metrics["val"]
    assert metrics["chars"] == len(run.task.load_data(run.config).val) - 1
    assert 0 < metrics["nats_per_char"] < np.log(len(run.task.load_preprocessing(run.config, run.dir).chars))
    assert metrics["bits_per_char"] == pytest.approx(metrics["nats_per_char"] / np.log(2))
    # the export's score reads the validation text as Keras' validation loss did (same nats per character)
    import pandas as pd

    best_val_loss = float(pd.read_csv(run.history_path)["val_loss"].min())  # the kept checkpoint's
    assert metrics["nats_per_char"] == pytest.approx(best_val_loss, rel=0.05)


@pytest.mark.slow
def test_score_of_a_text_longer_than_the_bound_splits_its_calls(trained, tmp_path, monkeypatch):
    """A text whose pieces together are over ``score_values`` (Tiny Shakespeare's validation split, 16 pieces)
    is scored in several calls, and a piece too long for one call makes more pieces."""
    import seqapps
    from seqapps.core import bounds

    run, export_dir = trained
    text = run.task.load_data(run.config).val * 3
    want = seqapps.load(export_dir).score(text, streams=8)
    per_char = len(run.task.load_preprocessing(run.config, run.dir).chars) + 1
    monkeypatch.setattr(bounds, "SCORE_VALUES", per_char * (len(text) // 4))  # two pieces of eight per call
    small = seqapps.load(run.export(tmp_path / "small"))
    with pytest.raises(DataError, match="the bound is"):
        small.call("score", text=[text[:len(text) // 8 + 1]] * 8)  # the call score used to make
    got = small.score(text, streams=8)
    assert got["chars"] == want["chars"] == len(text) - 1
    assert got["nats_per_char"] == pytest.approx(want["nats_per_char"], abs=1e-5)
    more = small.score(text, streams=1)  # one piece would be over the bound: at least 5 pieces are read
    assert more["chars"] == len(text) - 1 and np.isfinite(more["nats_per_char"])


@pytest.mark.slow
def test_export_samples_like_the_run_with_a_seed_and_its_signatures_shapes(trained):
    """Seeded sampling (not only greedy, which the contract tests cover) and the raw signatures' outputs."""
    run, export_dir = trained
    import seqapps

    in_memory, p = seqapps.load(run.dir), seqapps.load(export_dir)
    expected = in_memory.generate(["ALDA:\n", "Good"], length=50, temperature=0.8, top_k=20, top_p=0.95, seed=11)
    assert p.generate(["ALDA:\n", "Good"], length=50, temperature=0.8, top_k=20, top_p=0.95, seed=11) == expected
    out = p.call(prime=["ALDA:\n", "Good"], length=50, temperature=0.8, top_k=20, top_p=0.95, seed=11)
    assert decode_all(out["text"]) == expected and out["length"].tolist() == [50, 50]
    text = "ALDA:\nMy lord, I will walk by the river."
    got = p.call("score", text=[text])
    assert got["log_likelihood"][0] == pytest.approx(float(in_memory.call("score", text=[text])["log_likelihood"][0]),
                                                     rel=1e-5)
    assert int(got["count"][0]) == len(text) - 1
    assert list(p.call("states", text=["ab"])["hidden"].shape) == [1, 2, 1, 24]
    meta = json.loads((export_dir / "metadata.json").read_text())
    assert set(meta["signatures"]) == {"serving_default", "score", "states"}


@pytest.mark.slow
def test_cli_generate_and_predict(trained):
    _, export_dir = trained
    import seqapps

    expected = seqapps.load(export_dir).generate("BERIC:", length=40, temperature=0.7, seed=5)
    proc = run_cli("generate", export_dir, "--prime", "BERIC:", "--length", 40, "--temperature", 0.7, "--seed", 5)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "BERIC:" + expected + "\n"
    proc = run_cli("generate", export_dir, "--length", 100000)
    assert proc.returncode == 2 and proc.stderr.startswith("error: length must be between 0 and")
    proc = run_cli("generate", export_dir, "--temperature", "-1")
    assert proc.returncode == 2 and "temperature must be a finite number >= 0" in proc.stderr
    proc = run_cli("predict", export_dir, "ALDA:")
    assert proc.returncode == 0 and proc.stdout.startswith("ALDA:")


@pytest.mark.slow
def test_non_stateful_training_runs_and_bidirectional_is_refused(tmp_path):
    import seqapps
    from seqapps.core.errors import ConfigError

    run = seqapps.train("char_lm", "demo", epochs=1, overrides=[*TINY, "train.stateful=false",
                                                                 "train.steps_per_epoch=5", "model.cell=gru"],
                        run_dir=tmp_path / "run", verbose=0)
    assert not any(getattr(layer, "stateful", False) for layer in run.load_model().layers)
    assert len(run.predictor().generate("A", length=5, seed=1)) == 5
    with pytest.raises(ConfigError, match="bidirectional"):
        seqapps.train("char_lm", "demo", epochs=1, overrides=[*TINY, "model.bidirectional=true"],
                      run_dir=tmp_path / "run2", verbose=0)

"""inspect: property signals, unit ranking, and the HTML/PNG written from a trained char_lm."""

from __future__ import annotations

import re

import numpy as np
import pytest

from conftest import run_cli, run_main


def test_property_signals():
    from seqapps.analysis.states import property_signal

    chars = list('say "hi" ok\n  ab\n')
    np.testing.assert_array_equal(property_signal(chars, "quotes"),
                                  [0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(property_signal(chars, "line-position"),
                                  [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0, 1, 2, 3, 4, 0])
    np.testing.assert_array_equal(property_signal(chars, "indent"),
                                  [0] * 12 + [2] * 5)
    np.testing.assert_array_equal(property_signal(list("\u201ca\u201d b"), "quotes"), [1, 1, 0, 0, 0])


def test_ranking_finds_a_planted_unit():
    from seqapps.analysis.states import correlations, rank_units

    rng = np.random.default_rng(0)
    signal = (rng.random(500) > 0.5).astype(float)
    hidden = rng.uniform(-1, 1, (500, 2, 6))
    hidden[:, 1, 4] = np.tanh(2 * signal - 1) + 0.1 * rng.standard_normal(500)   # tracks the signal
    cell = rng.standard_normal((500, 2, 6))
    cell[:, 0, 2] = -3 * signal + 0.2 * rng.standard_normal(500)                  # tracks it, negatively
    cell[:, 0, 3] = 1.0                                                           # constant: r = 0, no NaN
    ranking = rank_units({"hidden": hidden, "cell": cell}, signal, top=3)
    assert {(u["state"], u["layer"], u["unit"]) for u in ranking[:2]} == {("hidden", 2, 4), ("cell", 1, 2)}
    assert next(u for u in ranking if u["state"] == "cell")["r"] < -0.9
    assert correlations(cell[:, 0, 3:4], signal).tolist() == [0.0]


@pytest.fixture(scope="module")
def model_and_text(tmp_path_factory):
    import seqapps
    from tasks.char_lm.demo import text

    root = tmp_path_factory.mktemp("inspect")
    run = seqapps.train("char_lm", "demo", epochs=1, overrides=[
        "model.units=16", "model.embedding_dim=8", "train.batch_size=8", "train.bptt=24", "train.steps_per_epoch=20",
        "data.eval_streams=2"], run_dir=root / "run", verbose=0)
    sample = root / "sample.txt"
    sample.write_text(text(1500, seed=3))
    return run, sample, root


@pytest.mark.slow
def test_inspect_writes_html_png_and_ranking(model_and_text):
    from seqapps.analysis.states import inspect

    run, sample, root = model_and_text
    result = inspect(run.dir, sample, root / "out", find="line-position", top=5)
    assert len(result["ranking"]) == 5
    assert abs(result["ranking"][0]["r"]) >= abs(result["ranking"][-1]["r"])
    shown = result["shown"]
    assert (shown["state"], shown["layer"], shown["unit"]) == tuple(
        result["ranking"][0][k] for k in ("state", "layer", "unit"))
    page = (root / "out" / "inspect.html").read_text()
    assert len(re.findall(r'<span style="background:rgb\(\d+,\d+,\d+\)" title="[-+]', page)) == len(
        sample.read_text())
    assert (root / "out" / "inspect.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    states = np.load(root / "out" / "states.npz")
    assert states["hidden"].shape == (len(sample.read_text()), 1, 16) and states["cell"].shape == states[
        "hidden"].shape
    # hidden, cell and the four LSTM gates, 16 units each
    assert (root / "out" / "units-line-position.csv").read_text().count("\n") == 6 * 16 + 1
    assert states["forget"].shape == states["hidden"].shape
    assert (root / "out" / "keep-gate.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_the_recorded_gates_rebuild_the_lstm_states(model_and_text):
    """c_t = f * c_(t-1) + i * g and h_t = o * tanh(c_t), from the export's recorded gates and states."""
    run, sample, _ = model_and_text
    from seqapps.inference.loading import load

    states = load(run.dir).states(sample.read_text()[:300])
    g, c, h = states["gates"], states["cell"][:, 0], states["hidden"][:, 0]
    assert sorted(g) == ["candidate", "forget", "input", "output"]
    i, f, o, cand = (g[k][:, 0] for k in ("input", "forget", "output", "candidate"))
    assert 0 <= f.min() and f.max() <= 1 and -1 <= cand.min() and cand.max() <= 1
    np.testing.assert_allclose(c[1:], f[1:] * c[:-1] + i[1:] * cand[1:], atol=1e-5)
    np.testing.assert_allclose(h, o * np.tanh(c), atol=1e-5)


def test_gru_gates_rebuild_the_cell_update():
    """h' = z * h + (1 - z) * tanh(x W_h + b_h + r * (h U_h + b'_h)) with z, r from cell_gates."""
    import keras

    from seqapps.layers.recurrent import cell_gates

    cell = keras.layers.GRUCell(5)
    cell.build((None, 3))
    rng = np.random.default_rng(0)
    cell.bias.assign(rng.normal(size=cell.bias.shape))
    x, h = rng.normal(size=(4, 3)).astype("float32"), rng.normal(size=(4, 5)).astype("float32")
    z, r = np.moveaxis(np.asarray(cell_gates(cell, x, [h])), 1, 0)
    new = np.asarray(cell(x, [h])[0])
    kernel, recurrent, bias = (w.numpy() for w in (cell.kernel, cell.recurrent_kernel, cell.bias))
    candidate = np.tanh(x @ kernel[:, 10:] + bias[0, 10:] + r * (h @ recurrent[:, 10:] + bias[1, 10:]))
    np.testing.assert_allclose(new, z * h + (1 - z) * candidate, atol=1e-5)
    assert np.asarray(cell_gates(keras.layers.SimpleRNNCell(5), x, [h])).shape == (4, 0, 5)


@pytest.mark.slow
def test_states_match_the_keras_layer(model_and_text):
    """The stepped cells reproduce the trained layer's outputs (same weights, same maths)."""
    import keras

    run, sample, _ = model_and_text
    from seqapps.inference.loading import load
    from tasks.char_lm.data import CharVocab

    text = sample.read_text()[:200]
    states = load(run.dir).states(text)
    model = run.load_model()
    layer = next(lay for lay in model.layers if isinstance(lay, keras.layers.RNN))
    vocab = CharVocab.load(run.dir)
    ids = vocab.encode(vocab.warmup + text)[None, :]  # the serving functions read the warm-up passage first
    fresh = keras.layers.LSTM(16, return_sequences=True)
    fresh.build((None, None, 8))
    fresh.set_weights(layer.get_weights())
    expected = fresh(model.get_layer("embedding")(ids)).numpy()[0, -len(text):]
    np.testing.assert_allclose(states["hidden"][:, 0], expected, atol=1e-5)


@pytest.mark.slow
def test_inspect_cli_and_its_errors(model_and_text, tmp_path, capsys):
    run, sample, _ = model_and_text
    proc = run_cli("inspect", run.dir, "--text", sample, "--find", "quotes", "--top", 3, "--out", tmp_path / "q")
    assert proc.returncode == 0, proc.stderr
    assert "units tracking quotes" in proc.stdout and (tmp_path / "q" / "inspect.html").exists()
    (tmp_path / "plain.txt").write_text("no quotes at all here")
    (tmp_path / "bin.dat").write_bytes(b"\x00\x01\x02")
    for args, message in [
        (["--text", tmp_path / "plain.txt", "--find", "quotes"], "no passage in double quotes"),
        (["--text", tmp_path / "bin.dat"], "binary"),
        (["--text", tmp_path / "missing.txt"], "No such file"),
        (["--text", sample, "--unit", 16], "--unit must be between 0 and 15"),
        (["--text", sample, "--layer", 2], "--layer must be between 1 and 1"),
        (["--text", sample, "--state", "update"], "this model has no update gate (its gates: input, forget"),
    ]:
        code, err = run_main(["inspect", run.dir, *args, "--out", tmp_path / "x"], capsys)  # in process: faster
        assert code == 2, (args, err)
        assert len(err) == 1 and message in err[0], err


@pytest.mark.slow
def test_inspect_draws_the_transformer_lms_attention(tmp_path):
    import seqapps
    from tasks.char_lm.demo import text
    from seqapps.analysis.states import attention_by_position, inspect

    run = seqapps.train("char_lm", "demo", epochs=1, overrides=[
        "model.architecture=transformer", "model.units=8", "model.heads=2", "model.layers=2", "train.batch_size=8",
        "train.bptt=12", "train.steps_per_epoch=4", "data.eval_streams=2"], run_dir=tmp_path / "run", verbose=0)
    sample = tmp_path / "sample.txt"
    sample.write_text(text(200, seed=3))
    result = inspect(run.dir, sample, tmp_path / "out", find="line-position", top=3)
    assert (tmp_path / "out" / "attention.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "keep_gate" not in result["written"]  # no gates in a transformer
    states = seqapps.load(run.dir).states(sample.read_text())
    attention = states["attention"]
    assert attention.shape == (len(sample.read_text()), 2, 2, 12) and states["gates"] == {}
    np.testing.assert_allclose(attention.sum(-1), 1.0, atol=1e-5)  # each head's weights over what it saw
    assert (attention[:, :, :, 1:] > 0).any()  # it reads back (the first characters also see the warm-up)
    grid = attention_by_position(attention, 1, 0, 30)
    assert np.allclose(np.triu(grid, 1), 0) and np.allclose(np.tril(grid, -12), 0)  # causal, within the window

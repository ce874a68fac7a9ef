"""diagnose memory: exact task generators, equal parameter counts, one row per model and lag, an LSTM
that learns a short lag, pruning and budget, the command's files and one-line errors."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from conftest import run_cli
from seqapps.analysis import memory
from seqapps.core.errors import ConfigError


def test_copy_target_is_the_input_after_the_delay():
    x, y = memory.copy_batch(np.random.default_rng(0), 64, lag=7, symbols=4)
    assert x.shape == y.shape == (64, 7 + 8)
    assert set(np.unique(x[:, :4])) <= set(range(1, 9))
    assert (x[:, 4 + 7 - 1] == memory.MARK).all()                     # the delimiter, T - 1 blanks after the data
    assert (np.delete(x, [0, 1, 2, 3, 10], axis=1) == memory.BLANK).all()
    np.testing.assert_array_equal(y[:, 4 + 7:], x[:, :4])              # recalled T + S steps after it was shown
    assert (y[:, :4 + 7] == memory.BLANK).all()


def test_adding_target_is_the_sum_of_the_marked_values():
    x, y = memory.adding_batch(np.random.default_rng(1), 200, lag=10)
    assert x.shape == (200, 10, 2) and y.shape == (200,)
    markers = x[..., 1]
    assert (markers.sum(1) == 2).all()
    assert (markers[:, :5].sum(1) == 1).all() and (markers[:, 5:].sum(1) == 1).all()  # one in each half
    np.testing.assert_allclose(y, (x[..., 0] * markers).sum(1), rtol=1e-6)
    assert 0 <= x[..., 0].min() and x[..., 0].max() < 1
    # the documented baseline: always answering 1 scores the sum's variance, 1/6
    _, many = memory.adding_batch(np.random.default_rng(2), 200_000, lag=10)
    assert np.mean((many - 1.0) ** 2) == pytest.approx(memory.ADDING_BASELINE, rel=0.02)
    with pytest.raises(ConfigError, match="at least 2"):
        memory.adding_batch(np.random.default_rng(0), 4, lag=1)


def test_recall_target_is_the_first_symbol():
    x, y = memory.recall_batch(np.random.default_rng(3), 100, lag=6)
    assert x.shape == (100, 8)
    np.testing.assert_array_equal(y, x[:, 0] - 1)
    assert (x[:, -1] == memory.MARK).all() and set(np.unique(x[:, :-1])) <= set(range(1, 9))
    again, _ = memory.recall_batch(np.random.default_rng(3), 100, lag=6)
    np.testing.assert_array_equal(again, x)                           # generated from the seed


def test_scoring_counts_only_the_recalled_symbols():
    task = memory.TASKS["copy"]
    x, y = memory.copy_batch(np.random.default_rng(0), 8, lag=3, symbols=2)
    perfect = np.eye(9)[y]
    assert task.score(perfect, y, 2) == 1.0
    blanks = np.eye(9)[np.zeros_like(y)]                               # right on every blank step, wrong on the data
    assert task.score(blanks, y, 2) == 0.0
    assert memory.TASKS["adding"].score(np.ones((4, 1)), np.array([1.0, 1.5, 0.5, 1.0]), 2) == pytest.approx(0.125)


@pytest.mark.slow
@pytest.mark.parametrize("task", list(memory.TASKS))
def test_every_model_gets_about_the_same_parameters(task):
    t = memory.TASKS[task]
    counts = {}
    for kind in memory.MODELS:
        width = memory.width_for(kind, t, 6000)
        counts[kind] = memory.build_model(kind, t, width).count_params()
        assert counts[kind] == memory.parameter_count(kind, t, width)
    assert max(counts.values()) / min(counts.values()) < 1.15, counts


@pytest.mark.slow
def test_every_model_trains_and_reports_its_row_and_gradients(tmp_path):
    settings = memory.Settings(steps=2, batch=4, params=400, eval_every=1, eval_examples=8, copy_symbols=2)
    lines = []
    rows = memory.diagnose_memory(["copy", "recall"], list(memory.MODELS), [2, 3], settings, tmp_path, log=lines.append)
    assert len(rows) == 2 * 4 * 2
    first = [r for r in rows if r["lag"] == 2]
    assert all(r["status"] == "run" and r["steps_run"] == 2 for r in first)
    for r in first:
        assert 0.0 <= r["score"] <= 1.0 and r["metric"] == "accuracy" and r["chance"] == 1 / 8
        length = 2 + 2 * 2 if r["task"] == "copy" else 2 + 2
        if r["model"] == "transformer":
            assert "grad_trained" not in r
        else:
            assert len(r["grad_trained"]) == len(r["grad_untrained"]) == length
            assert np.all(np.isfinite(r["grad_trained"])) and r["grad_trained"] != r["grad_untrained"]
    # a model that did not solve lag 2 in two steps is not trained on lag 3
    for r in (r for r in rows if r["lag"] == 3):
        previous = next(p for p in first if (p["task"], p["model"]) == (r["task"], r["model"]))
        assert (r["status"] == "run") == previous["solved"]
        if not previous["solved"]:
            assert r["status"].startswith("skipped")
    assert len(lines) == sum(r["status"] == "run" for r in rows)
    table = list(csv.DictReader(open(tmp_path / "memory.csv")))
    assert [(t["task"], t["model"], int(t["lag"])) for t in table] == [(r["task"], r["model"], r["lag"]) for r in rows]
    saved = json.load(open(tmp_path / "memory.json"))
    assert saved["settings"]["steps"] == 2 and len(saved["rows"]) == len(rows)
    for name in ("memory.png", "memory_gradients.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
    summary = memory.summary(rows)
    assert "SimpleRNN" in summary[1] and "Transformer" in summary[1] and len(summary) == 4


def test_a_spent_budget_runs_nothing_more(tmp_path):
    settings = memory.Settings(steps=1, batch=2, params=200, eval_every=1, eval_examples=4)
    rows = memory.diagnose_memory(["adding"], ["gru"], [2, 4], settings, tmp_path, budget_minutes=1e-9,
                                  all_lags=True, gradients=False, log=lambda line: None)
    assert [r["status"] for r in rows] == ["out of budget"] * 2
    assert "out of budget: adding lag 2, adding lag 4" in memory.summary(rows)


def test_forget_bias_switch_sets_the_lstm_forget_gate():
    t = memory.TASKS["recall"]
    for bias in (0.0, 1.0, 3.0):
        model = memory.build_model("lstm", t, 5, forget_bias=bias)
        b = np.asarray(model.get_layer("lstm").cell.bias)
        np.testing.assert_array_equal(b[5:10], bias)                   # Keras' order: input, forget, cell, output
        assert not b[:5].any() and not b[10:].any()


@pytest.mark.slow
def test_an_lstm_learns_a_short_lag():
    settings = memory.Settings(steps=800, batch=32, params=3000, eval_every=50, eval_examples=300, lr=3e-3)
    row = memory.train_one("lstm", memory.TASKS["recall"], 5, settings, gradients=False, log=lambda line: None)
    assert row["solved"] and row["score"] >= 0.99, row


@pytest.mark.slow
def test_diagnose_memory_command(tmp_path):
    proc = run_cli("diagnose", "memory", "--tasks", "adding", "--cells", "rnn,transformer", "--lags", "2,3",
                   "--steps", 2, "--params", 300, "--eval-examples", 8, "--eval-every", 1, "--all-lags", "--out", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "longest lag solved" in proc.stdout and "Transformer" in proc.stdout
    assert len(list(csv.DictReader(open(tmp_path / "memory.csv")))) == 4
    for args, message in [(["--tasks", "copy,sort"], "unknown task 'sort'"), (["--cells", "lstm,tcn"], "unknown model 'tcn'"),
                          (["--lags", "5,x"], "--lags expects whole numbers"), (["--lags", "0"], "--lags must be"),
                          (["--tasks", "adding", "--lags", "1"], "at least 2"), (["--clip", "-1"], "--clip"),
                          (["--lr", "0"], "--lr"), (["--steps", "0"], "--steps")]:
        proc = run_cli("diagnose", "memory", *args, "--out", tmp_path / "x")
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1

"""diagnose gradients: vanishing in SimpleRNN against LSTM, exploding when scaled up, clipping, files."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from conftest import run_cli


def test_simple_rnn_gradient_falls_faster_than_lstm():
    from seqapps.analysis.diagnose import gradient_norms

    rnn = gradient_norms("rnn", 80, units=32, seed=0)
    lstm = gradient_norms("lstm", 80, units=32, seed=0)
    assert rnn["norms"].shape == (80,)
    # what reaches the first step, relative to what the last step gets
    assert rnn["norms"][0] / rnn["norms"][-1] < 1e-3 * lstm["norms"][0] / lstm["norms"][-1]
    assert rnn["norms"][0] / rnn["norms"][-1] < 1e-6
    again = gradient_norms("rnn", 80, units=32, seed=0)
    np.testing.assert_allclose(again["norms"], rnn["norms"])  # fixed seed, same figures


def test_scaled_up_recurrent_weights_explode_and_clipping_bounds_the_update():
    from seqapps.analysis.diagnose import gradient_norms

    r = gradient_norms("rnn", 40, units=32, scale=3.0, clip=1.0, seed=0)
    assert r["norms"][0] > 100 * r["norms"][-1]        # grows going back in time
    assert r["param_norm"] > 10
    assert r["clipped_param_norm"] == pytest.approx(1.0)
    np.testing.assert_allclose(r["clipped"], r["norms"] / r["param_norm"], rtol=1e-6)


@pytest.mark.slow
def test_diagnose_cli_writes_csv_and_png(tmp_path):
    proc = run_cli("diagnose", "gradients", "--cells", "rnn,gru", "--length", 12, "--units", 8, "--scales", "1,2",
                   "--out", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "SimpleRNN" in proc.stdout and "GRU" in proc.stdout
    rows = list(csv.DictReader(open(tmp_path / "gradients.csv")))
    assert len(rows) == 2 * 2 * 12
    assert {r["cell"] for r in rows} == {"rnn", "gru"} and {r["scale"] for r in rows} == {"1.0", "2.0"}
    assert (tmp_path / "gradients.png").read_bytes()[:4] == b"\x89PNG"
    for args, message in [(["--cells", "rnn,foo"], "unknown cell 'foo'"), (["--scales", "1,x"], "--scales"),
                          (["--scales", "0"], "--scales must be > 0"), (["--clip", "-1"], "--clip")]:
        proc = run_cli("diagnose", "gradients", "--length", 3, *args, "--out", tmp_path / "x")
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1

"""The forecasting benchmark's classical peers (benchmarks/peers/forecasting.py): one-step
forecasts of the right length from the past only, the causal gap filling, and MASE."""

import numpy as np
import pytest

pytest.importorskip("statsforecast")

from benchmarks.peers.forecasting import PEERS, fill_past, one_step_forecasts  # noqa: E402
from tasks.forecasting import data as ts  # noqa: E402
from seqapps.analysis.metrics import mase  # noqa: E402

SEASON, FIT_STOP, N = 4, 48, 64


def series():
    rng = np.random.default_rng(0)
    t = np.arange(N)
    return 20 + 0.2 * t + 3 * np.sin(2 * np.pi * t / SEASON) + rng.normal(0, 0.5, N)


@pytest.mark.parametrize("name", PEERS)
def test_one_step_forecasts_use_only_the_past(name):
    y, times = series(), np.arange(FIT_STOP, N)
    out = one_step_forecasts(name, y, 0, FIT_STOP, times, SEASON, theta_context=40)
    assert out.forecast.shape == (len(times),) and np.isfinite(out.forecast).all()
    assert np.mean(np.abs(out.forecast - y[times])) < 3.0   # it forecasts this series, not noise
    t0 = 55
    changed = y.copy()
    changed[t0] += 100.0   # a jump at t0: no forecast up to t0 may see it, some later one must
    again = one_step_forecasts(name, changed, 0, FIT_STOP, times, SEASON, theta_context=40)
    upto = times <= t0
    np.testing.assert_allclose(again.forecast[upto], out.forecast[upto], rtol=0, atol=1e-9)
    assert np.abs(again.forecast[~upto] - out.forecast[~upto]).max() > 1.0
    assert out.fit_seconds >= 0 and out.model


def test_seasonal_naive_peer_is_the_value_one_season_earlier():
    y, times = series(), np.arange(FIT_STOP, N)
    out = one_step_forecasts("SeasonalNaive", y, 0, FIT_STOP, times, SEASON)
    np.testing.assert_allclose(out.forecast, ts.seasonal_naive_forecast(y, times, 1, SEASON)[:, 0])


def test_fill_past_carries_the_last_observed_value_forward():
    np.testing.assert_array_equal(fill_past([1.0, np.nan, np.nan, 4.0, np.nan]), [1, 1, 1, 4, 4])
    with pytest.raises(ValueError, match="starts with a missing value"):
        fill_past([np.nan, 1.0])


def test_forecast_times_must_follow_the_fit_part():
    with pytest.raises(ValueError, match="forecast times"):
        one_step_forecasts("SeasonalNaive", series(), 0, FIT_STOP, [FIT_STOP - 1], SEASON)


def test_mase_on_a_hand_example():
    # training part 1, 3, 2, 6 with season 2: seasonal differences |2-1|, |6-3| -> scale 2.0
    y = np.array([1.0, 3.0, 2.0, 6.0, 5.0, 7.0])
    scale = ts.mase_scale(y, np.ones(6, bool), 4, 2)
    assert scale == pytest.approx(2.0)
    # forecasts 4 and 8 for 5 and 7: MAE 1.0 -> MASE 0.5
    assert mase(y[4:], [4.0, 8.0], scale) == pytest.approx(0.5)
